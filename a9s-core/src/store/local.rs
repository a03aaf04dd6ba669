//! A local directory of downloaded parts, listed and read like a store.

use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{Failure, Object};
use crate::error::io_message;

pub struct LocalStore {
    pub dir: PathBuf,
}

impl LocalStore {
    /// The directory's regular files (not its subdirectories) whose names start with `prefix`. Hidden files are
    /// skipped: a9s-fetch's unfinished downloads are `.<name>.part`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Object>, Failure> {
        let what = self.dir.display().to_string();
        let mut rd = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|e| Failure::permanent(io_message(format_args!("cannot read directory {what}"), &e)))?;
        let mut out = Vec::new();
        while let Some(entry) = rd
            .next_entry()
            .await
            .map_err(|e| Failure::permanent(io_message(format_args!("cannot read directory {what}"), &e)))?
        {
            let Ok(name) = entry.file_name().into_string() else { continue };
            if name.starts_with('.') || !name.starts_with(prefix) {
                continue;
            }
            let meta = match tokio::fs::metadata(entry.path()).await {
                Ok(m) if m.is_file() => m,
                _ => continue,
            };
            out.push(Object::new(name, meta.len(), None).with_modified(mtime(&meta)));
        }
        Ok(out)
    }

    pub async fn open(&self, obj: &Object, start: u64, end: u64) -> Result<LocalBody, Failure> {
        let path = self.dir.join(&obj.key);
        let err =
            |e: std::io::Error| Failure::permanent(io_message(format_args!("cannot read {}", path.display()), &e));
        let mut file = tokio::fs::File::open(&path).await.map_err(err)?;
        let meta = file.metadata().await.map_err(err)?;
        let len = meta.len();
        if len != obj.size || (obj.modified.is_some() && mtime(&meta) != obj.modified) {
            return Err(Failure::permanent(format!(
                "{} changed while being read ({} bytes, was {}, or a new modification time)",
                path.display(),
                len,
                obj.size
            )));
        }
        file.seek(std::io::SeekFrom::Start(start)).await.map_err(err)?;
        Ok(LocalBody { file, remaining: end - start, path })
    }
}

pub struct LocalBody {
    file: tokio::fs::File,
    remaining: u64,
    path: PathBuf,
}

impl LocalBody {
    pub async fn next(&mut self) -> Option<Result<bytes::Bytes, Failure>> {
        if self.remaining == 0 {
            return None;
        }
        let n = self.remaining.min(1 << 20) as usize;
        let mut buf = vec![0u8; n];
        match self.file.read(&mut buf).await {
            Ok(0) => None,
            Ok(got) => {
                buf.truncate(got);
                self.remaining -= got as u64;
                Some(Ok(buf.into()))
            }
            Err(e) => {
                Some(Err(Failure::permanent(io_message(format_args!("cannot read {}", self.path.display()), &e))))
            }
        }
    }
}

/// A file's modification time to the nanosecond: with its size, what tells a rewritten file from the one listed.
fn mtime(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    Some(format!("{}.{:09}", meta.mtime(), meta.mtime_nsec()))
}
