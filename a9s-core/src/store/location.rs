//! Where backups are: `s3://BUCKET[/PREFIX]`, `az://CONTAINER[/PREFIX]` or a local directory, and which of
//! them the last path component selects (everything, one instance, one backup).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::naming::{self, BackupId};

/// The store a location is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    S3 { bucket: String },
    Azure { container: String },
    Local { dir: PathBuf },
}

/// What the last component of a location names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// A bucket, container or directory (`s3://bucket`, `s3://bucket/dir/`): every instance in it.
    All,
    /// Some other key prefix (`s3://bucket/backups`, `s3://bucket/b6f4`): every instance whose keys start so.
    Prefix(String),
    /// `…/<instance-uuid>`: the backups of one instance.
    Instance(String),
    /// `…/<instance-uuid>-<millis>`: one backup.
    Backup(BackupId),
}

/// A parsed LOCATION argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub backend: Backend,
    /// Key prefix of the "folder" the selection is in: empty or ending in `/`. Always empty for local
    /// directories (the directory is in [`Backend::Local`]).
    pub dir: String,
    pub selection: Selection,
}

impl Location {
    /// Parses a LOCATION argument. Local paths are checked against the file system.
    pub fn parse(text: &str) -> Result<Location> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = split_root(rest, text, "bucket")?;
            return Ok(Self::remote(Backend::S3 { bucket }, prefix));
        }
        if let Some(rest) = text.strip_prefix("az://") {
            let (container, prefix) = split_root(rest, text, "container")?;
            return Ok(Self::remote(Backend::Azure { container }, prefix));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(Error::usage(format!(
                "LOCATION {text}: unknown scheme {scheme}:// (use s3://BUCKET/…, az://CONTAINER/… or a local directory)"
            )));
        }
        Self::local(text)
    }

    fn remote(backend: Backend, prefix: &str) -> Location {
        let (dir, last) = match prefix.rfind('/') {
            Some(i) => prefix.split_at(i + 1),
            None => ("", prefix),
        };
        Location { backend, dir: dir.to_string(), selection: select(last) }
    }

    fn local(text: &str) -> Result<Location> {
        let path = Path::new(text);
        if path.is_dir() {
            return Ok(Location {
                backend: Backend::Local { dir: path.to_path_buf() },
                dir: String::new(),
                selection: Selection::All,
            });
        }
        let last = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent = match path.parent() {
            Some(p) if p.as_os_str().is_empty() => Path::new("."),
            Some(p) => p,
            None => Path::new("."),
        };
        let selection = select(last);
        if matches!(selection, Selection::Instance(_) | Selection::Backup(_)) && parent.is_dir() {
            return Ok(Location {
                backend: Backend::Local { dir: parent.to_path_buf() },
                dir: String::new(),
                selection,
            });
        }
        Err(Error::usage(format!(
            "LOCATION {text} is not a directory, nor DIR/<instance-id> or DIR/<backup-id> in one; for a store use s3://BUCKET/… or az://CONTAINER/…"
        )))
    }

    /// The key prefix to list: everything that can belong to the selection (and possibly more, filtered later).
    pub fn list_prefix(&self) -> String {
        match &self.selection {
            Selection::All => self.dir.clone(),
            Selection::Prefix(p) => format!("{}{p}", self.dir),
            Selection::Instance(u) => format!("{}{u}-", self.dir),
            Selection::Backup(id) => format!("{}{id}", self.dir),
        }
    }

    /// The location URL of a key prefix in the same store, e.g. to print where an instance's backups are.
    pub fn url_of(&self, key: &str) -> String {
        match &self.backend {
            Backend::S3 { bucket } => format!("s3://{bucket}/{key}"),
            Backend::Azure { container } => format!("az://{container}/{key}"),
            Backend::Local { dir } => dir.join(key).display().to_string(),
        }
    }

    /// How to name the store in messages: `s3://bucket`, `az://container`, `./dir`.
    pub fn root(&self) -> String {
        match &self.backend {
            Backend::S3 { bucket } => format!("s3://{bucket}"),
            Backend::Azure { container } => format!("az://{container}"),
            Backend::Local { dir } => dir.display().to_string(),
        }
    }

    /// Whether a backup split into parts must have its `<id>.json` to be complete. The Backup Manager writes
    /// metadata on S3; a local folder may hold parts someone downloaded without it.
    pub fn requires_metadata(&self) -> bool {
        matches!(self.backend, Backend::S3 { .. })
    }
}

fn split_root<'a>(rest: &'a str, text: &str, what: &str) -> Result<(String, &'a str)> {
    let (root, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if root.is_empty() {
        return Err(Error::usage(format!("LOCATION {text} has no {what} name")));
    }
    Ok((root.to_string(), prefix))
}

fn select(last: &str) -> Selection {
    if last.is_empty() {
        Selection::All
    } else if let Some(id) = BackupId::parse(last) {
        Selection::Backup(id)
    } else if naming::is_instance_id(last) {
        Selection::Instance(last.to_string())
    } else {
        Selection::Prefix(last.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "b6f4c071-ef44-4af2-9608-531b4ce4823f";

    #[test]
    fn s3_locations() {
        let l = Location::parse("s3://bkt").unwrap();
        assert_eq!(l.backend, Backend::S3 { bucket: "bkt".into() });
        assert_eq!((l.dir.as_str(), &l.selection), ("", &Selection::All));
        let l = Location::parse(&format!("s3://bkt/{U}")).unwrap();
        assert_eq!(l.selection, Selection::Instance(U.into()));
        assert_eq!(l.list_prefix(), format!("{U}-"));
        let l = Location::parse(&format!("s3://bkt/a/b/{U}-1548967947154")).unwrap();
        assert_eq!(l.dir, "a/b/");
        assert!(matches!(&l.selection, Selection::Backup(id) if id.millis == 1548967947154));
        assert_eq!(l.list_prefix(), format!("a/b/{U}-1548967947154"));
        let l = Location::parse("s3://bkt/backups").unwrap();
        assert_eq!(l.selection, Selection::Prefix("backups".into()));
        let l = Location::parse("s3://bkt/backups/").unwrap();
        assert_eq!((l.dir.as_str(), &l.selection), ("backups/", &Selection::All));
        assert_eq!(l.url_of("backups/x"), "s3://bkt/backups/x");
    }

    #[test]
    fn azure_and_errors() {
        let l = Location::parse(&format!("az://c/{U}")).unwrap();
        assert_eq!(l.backend, Backend::Azure { container: "c".into() });
        assert!(!l.requires_metadata());
        assert_eq!(Location::parse("s3://").unwrap_err().code, 2);
        assert_eq!(Location::parse("gs://x").unwrap_err().code, 2);
        assert_eq!(Location::parse("/nonexistent/dir/x").unwrap_err().code, 2);
    }

    #[test]
    fn local_locations() {
        let d = std::env::temp_dir();
        let l = Location::parse(d.to_str().unwrap()).unwrap();
        assert_eq!(l.selection, Selection::All);
        let l = Location::parse(d.join(U).to_str().unwrap()).unwrap();
        assert_eq!(l.backend, Backend::Local { dir: d.clone() });
        assert_eq!(l.selection, Selection::Instance(U.into()));
        let l = Location::parse(&format!("{U}-5")).unwrap();
        assert_eq!(l.backend, Backend::Local { dir: PathBuf::from(".") });
    }
}
