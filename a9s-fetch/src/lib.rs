//! a9s-fetch: bring a backup home, or stream it straight into the restore pipe.
//!
//! Replaces the runbook's `aws s3 cp --recursive --exclude/--include` and `az storage blob download`. The
//! backup is listed and checked (complete, contiguous) before anything is written. `-o DIR` downloads each
//! object to `.<name>.part` and renames it when its length (and MD5, where the store states one) is right, so
//! a rerun resumes and never trusts a half file. `-o -` streams the parts in natural order to stdout: fixed
//! chunks are fetched in parallel by ranged GETs within a bounded read-ahead window and leave in order.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use a9s_core::error::{Error, IoContext, Result};
use a9s_core::io::{human_bytes, parse_size, refuse_binary_to_terminal};
use a9s_core::progress::{Mode, Progress, ProgressArgs};
use a9s_core::store::{self, Backup, EndpointArgs, Location, Object, RetryPolicy, Selection, Store};
use clap::{CommandFactory, Parser};
use md5::{Digest, Md5};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

mod safedir;

use safedir::{file_id, ours, SafeDir};

const PROG: &str = "a9s-fetch";

#[derive(Parser, Debug)]
#[command(
    name = "a9s-fetch",
    version = a9s_core::VERSION,
    about = "Download an a9s backup from S3, Azure or a directory, or stream its parts in order to stdout",
    long_about = None,
)]
struct Args {
    /// The backup: `s3://BUCKET/[PREFIX/]<instance-uuid>-<milliseconds>`, `az://CONTAINER/…` or
    /// `DIR/<backup-id>`. With --latest, an instance instead: `s3://BUCKET/<instance-uuid>`.
    #[arg(value_name = "LOCATION")]
    location: String,

    /// Where to: `-` streams the parts concatenated in natural order to standard output (for a9s-decrypt);
    /// a directory (created if missing) receives every part and the metadata under their own names.
    #[arg(short = 'o', long = "output", value_name = "DIR|-")]
    output: PathBuf,

    /// LOCATION names an instance (or a bucket holding one instance): fetch its newest complete backup. Its id
    /// is printed on standard error.
    #[arg(long)]
    latest: bool,

    /// Parallel requests: objects downloaded at once with -o DIR, ranged GETs in flight with -o -.
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: u32,

    /// With -o -: how far ahead of the output the download may run. The data in memory is bounded by this plus
    /// two chunks, whatever the size of the backup; the program itself adds about 16 MiB. Accepts K, M, G
    /// (powers of 1024), e.g. `256M`.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    read_ahead: u64,

    /// With -o -: the size of each ranged GET.
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = parse_size)]
    chunk_size: u64,

    #[command(flatten)]
    retry: store::RetryArgs,

    /// Fetch a split S3 backup even though its `<backup-id>.json` metadata is missing (normally a sign that the
    /// upload did not finish). The parts must still be complete and contiguous.
    #[arg(long)]
    ignore_metadata: bool,

    #[command(flatten)]
    endpoints: EndpointArgs,

    #[command(flatten)]
    progress: ProgressArgs,
}

pub fn command() -> clap::Command {
    Args::command()
}

#[cfg(feature = "man")]
pub fn man_page() -> String {
    a9s_core::man::render(command(), include_str!("../man.roff"))
}

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<i32> {
    let args: Args = a9s_core::error::parse_args(command(), args)?;
    bound_allocator();
    let loc = Location::parse(&args.location)?;
    match (&loc.selection, args.latest) {
        (Selection::Backup(_), true) => {
            return Err(Error::usage(format!(
                "LOCATION {} names a backup; --latest wants an instance (…/<instance-uuid>)",
                args.location
            )))
        }
        (Selection::Instance(_) | Selection::All | Selection::Prefix(_), false) => {
            return Err(Error::usage(format!(
                "LOCATION {} does not name a backup (…/<instance-uuid>-<milliseconds>): add --latest for the newest \
                 complete one, or pick one with `a9s-ls {}`",
                args.location, args.location
            )))
        }
        _ => {}
    }
    if args.chunk_size > args.read_ahead {
        return Err(Error::usage("--chunk-size must not exceed --read-ahead"));
    }
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout {
        refuse_binary_to_terminal("backup data")?;
    }
    let opts = args.endpoints.options(args.retry.policy(PROG));
    // With -o - the next program in the pipe reports progress; with -o DIR this one is the last.
    let mode = args.progress.mode(to_stdout, false);
    let rt = store::runtime()?;
    rt.block_on(async {
        let st = Arc::new(Store::connect(&loc, &opts).await?);
        let backups = store::inventory(&st, &loc, &opts.retry).await?;
        let backup = choose(&backups, &loc, &args)?;
        if args.latest {
            eprintln!(
                "{PROG}: newest complete backup: {} (created {}, {} part{}, {})",
                backup.id,
                backup.id.created_iso8601(),
                backup.parts.len(),
                if backup.parts.len() == 1 { "" } else { "s" },
                human_bytes(backup.total_size())
            );
        }
        if to_stdout {
            stream(st, backup.clone(), &args, &opts.retry, mode).await
        } else {
            download(st, &backup, &args.output, args.jobs as usize, &opts.retry, mode).await
        }
    })?;
    Ok(0)
}

/// Chunk buffers are allocated on the I/O threads and freed on the writer thread. glibc's malloc would raise
/// its mmap threshold after the first such buffer is freed and then serve the next ones from per-thread
/// arenas, which keep freed memory: the peak RSS grew to twice the documented bound. A fixed threshold of
/// 1 MiB keeps every chunk buffer its own mapping, returned to the system when freed.
fn bound_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// The backup to fetch, refused unless complete.
fn choose(backups: &[Backup], loc: &Location, args: &Args) -> Result<Backup> {
    if args.latest {
        if backups.is_empty() {
            return Err(Error::failure(format!("no a9s backups under {}", args.location)));
        }
        return store::latest(backups, loc, &args.location).cloned();
    }
    let Some(b) = backups.first() else {
        return Err(Error::failure(format!(
            "no backup {} found (`a9s-ls` on its bucket or instance lists what is there)",
            args.location
        )));
    };
    let mut b = b.clone();
    if args.ignore_metadata {
        b.problems.retain(|p| !p.starts_with("no metadata "));
    }
    if !b.complete() {
        return Err(Error::failure(format!(
            "refusing incomplete backup {}: {}",
            b.id,
            store::printable(&b.problem_text())
        )));
    }
    Ok(b)
}

/// One chunk of the output: bytes `start..end` of part `part`.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    part: usize,
    start: u64,
    end: u64,
}

/// A chunk and its bytes.
type Fetched = (Chunk, Vec<u8>);

fn chunks(parts: &[Object], chunk: u64) -> Vec<Chunk> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let mut s = 0;
        while s < p.size {
            let e = (s + chunk).min(p.size);
            out.push(Chunk { part: i, start: s, end: e });
            s = e;
        }
    }
    out
}

/// Streams the parts in order to stdout. Chunks are fetched by spawned tasks, at most `jobs` at a time, and
/// at most `read_ahead / chunk_size` of them exist (running or finished, waiting their turn) at once; the
/// oldest is awaited, handed to the writer thread, and only then is the next one started. So memory stays
/// below read-ahead plus the chunk being written plus one in the channel, and bytes leave in order however the
/// transfers finish.
async fn stream(st: Arc<Store>, backup: Backup, args: &Args, policy: &RetryPolicy, mode: Mode) -> Result<()> {
    let parts = Arc::new(backup.parts.clone());
    let all = chunks(&parts, args.chunk_size);
    let window = (args.read_ahead / args.chunk_size).max(1) as usize;
    let permits = Arc::new(tokio::sync::Semaphore::new(args.jobs as usize));
    let (tx, rx) = tokio::sync::mpsc::channel::<Fetched>(1);
    let writer = {
        let parts = parts.clone();
        let total = backup.total_size();
        let id = backup.id.to_string();
        std::thread::spawn(move || write_in_order(rx, &parts, total, &id, mode))
    };
    let mut pending: VecDeque<tokio::task::JoinHandle<Result<Fetched>>> = VecDeque::new();
    let mut next = 0;
    let mut result: Result<()> = Ok(());
    loop {
        while pending.len() < window && next < all.len() {
            let c = all[next];
            next += 1;
            let (st, parts, permits, policy) = (st.clone(), parts.clone(), permits.clone(), policy.clone());
            pending.push_back(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore never closed");
                let mut buf = Vec::with_capacity((c.end - c.start) as usize);
                let mut r = st.reader(&parts[c.part], c.start, c.end, &policy);
                while let Some(b) = r.next().await? {
                    buf.extend_from_slice(&b);
                }
                Ok((c, buf))
            }));
        }
        let Some(h) = pending.pop_front() else { break };
        let got = match h.await {
            Ok(r) => r,
            Err(e) => Err(Error::failure(format!("download task failed: {e}"))),
        };
        match got {
            Ok(item) => {
                if tx.send(item).await.is_err() {
                    // The writer stopped: its error says why.
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    for h in pending {
        h.abort();
    }
    drop(tx);
    let written = writer.join().unwrap_or_else(|_| Err(Error::failure("writer thread panicked")));
    // A write error (closed pipe) comes first: the download error it caused is only a consequence.
    written?;
    result
}

/// The writer thread: writes chunks as they come (already in order), checks each part's MD5 where the
/// store gave one, and draws progress.
fn write_in_order(
    mut rx: tokio::sync::mpsc::Receiver<Fetched>,
    parts: &[Object],
    total: u64,
    id: &str,
    mode: Mode,
) -> Result<()> {
    let mut out = a9s_core::output::stdout_file()?;
    // Quiet in a pipe, but it tells the pipe's last program how far through the backup it is.
    let mut progress = Progress::with_mode(PROG, Some(total), mode).publish_stdout(id);
    let mut hasher = Md5::new();
    let mut done_in_part = 0u64;
    while let Some((c, data)) = rx.blocking_recv() {
        let p = &parts[c.part];
        debug_assert_eq!(c.start, done_in_part, "chunks arrive in order");
        progress.set_detail(format!("part {} of {}", c.part + 1, parts.len()));
        // A chunk (8 MiB) can take seconds to go into a pipe: counted by the MiB, so the position the last
        // program reads moves with the restore.
        for piece in data.chunks(1 << 20) {
            out.write_all(piece).context_io(|| "writing standard output")?;
            progress.add(piece.len() as u64);
        }
        if p.md5.is_some() {
            hasher.update(&data);
        }
        done_in_part += data.len() as u64;
        if done_in_part == p.size {
            if let Some(want) = p.md5 {
                let got: [u8; 16] = std::mem::take(&mut hasher).finalize().into();
                if got != want {
                    progress.finish();
                    return Err(Error::failure(format!(
                        "{}: MD5 {} differs from the store's {}: the data written is corrupt; fetch again",
                        p.name(),
                        store::hex(&got),
                        store::hex(&want)
                    )));
                }
            }
            done_in_part = 0;
        }
    }
    out.flush().context_io(|| "writing standard output")?;
    progress.finish();
    Ok(())
}

/// Downloads every part and the metadata into `dir`, `jobs` objects at a time.
async fn download(
    st: Arc<Store>,
    backup: &Backup,
    dir: &Path,
    jobs: usize,
    policy: &RetryPolicy,
    mode: Mode,
) -> Result<()> {
    let dir = Arc::new(SafeDir::open(dir)?);
    let mut objects: Vec<Object> = backup.parts.clone();
    objects.extend(backup.metadata.clone());
    let total: u64 = objects.iter().map(|o| o.size).sum();
    let count = objects.len();
    let progress = Arc::new(Mutex::new(Progress::with_mode(PROG, Some(total), mode)));
    let finished = Arc::new(Mutex::new(0usize));
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = objects.into_iter();
    let mut first_error: Option<Error> = None;
    loop {
        while tasks.len() < jobs && first_error.is_none() {
            let Some(obj) = queue.next() else { break };
            let (st, dir, policy, progress, finished) =
                (st.clone(), dir.clone(), policy.clone(), progress.clone(), finished.clone());
            tasks.spawn(async move {
                let r = fetch_file(&st, &obj, &dir, &policy, &progress).await;
                if r.is_ok() {
                    let mut f = finished.lock().expect("lock");
                    *f += 1;
                    let mut p = progress.lock().expect("lock");
                    p.set_detail(format!("{} of {count} files", *f));
                    // In a log, each object that is safely in place: a long download shows its life.
                    p.event(format!("{} ({}) complete, {} of {count} files", obj.name(), human_bytes(obj.size), *f));
                }
                r
            });
        }
        let Some(joined) = tasks.join_next().await else { break };
        let r = joined.unwrap_or_else(|e| Err(Error::failure(format!("download task failed: {e}"))));
        if let Err(e) = r {
            // Let the others finish their object: each is resumable, and one failure says nothing about them.
            first_error.get_or_insert(e);
        }
    }
    progress.lock().expect("lock").finish();
    if let Some(e) = first_error {
        return Err(Error::failure(format!("{} (run the same command again to resume)", e.message)));
    }
    // The renames must survive a crash too.
    dir.sync();
    Ok(())
}

/// What identifies the object a file came from: key, size, ETag, Last-Modified. Debug-quoted, so that one
/// line holds it whatever the store sent, and compared as a whole.
fn identity(obj: &Object) -> String {
    format!("object {:?} {} {:?} {:?}", obj.key, obj.size, obj.etag, obj.modified)
}

const RECORD_MAGIC: &str = "a9s-fetch resume record 1";

/// `file <dev:ino>` for a partial file; `done <dev:ino:size:mtime>` for a finished one, whose content must not
/// have changed since.
fn record_text(obj: &Object, file: &str) -> String {
    format!("{RECORD_MAGIC}\n{}\n{file}\n", identity(obj))
}

/// The file line of a record, when the record is ours and names this very object.
fn record_file(dir: &SafeDir, rec: &str, obj: &Object) -> Result<Option<String>> {
    let Some(bytes) = dir.read_small(rec)? else { return Ok(None) };
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    if lines.next() != Some(RECORD_MAGIC) || lines.next() != Some(identity(obj).as_str()) {
        return Ok(None);
    }
    Ok(lines.next().map(str::to_string))
}

/// The record line of a finished file: its identity, size and modification time.
fn done_line(f: &std::fs::File) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    Ok(format!("done {}:{}:{}:{}.{:09}", m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// One object into `dir/<name>` through `dir/.<name>.part`, with `dir/.<name>.a9s-fetch` beside it naming the
/// object (key, size, ETag, Last-Modified) and the partial file (device and inode) it belongs to. A partial
/// file is resumed only when its record names the object as the store lists it now and names that very file,
/// and both are ours (not planted by another user); anything else starts again from byte 0. The finished
/// file is checked: its length, and its MD5 where the store states one (S3 single-part ETag, Azure
/// Content-MD5); every response was checked against the listing's ETag on the way. The record stays beside
/// a finished file only when there was no MD5: it is what lets a rerun keep that file.
async fn fetch_file(
    st: &Store,
    obj: &Object,
    dir: &SafeDir,
    policy: &RetryPolicy,
    progress: &Mutex<Progress>,
) -> Result<()> {
    let name = obj.name().to_string();
    let part = format!(".{name}.part");
    let rec = format!(".{name}.a9s-fetch");

    if let Some(f) = dir.open_existing(&name, false)? {
        let len = f.metadata().context_io(|| dir.show(&name))?.len();
        let proven = len == obj.size
            && ours(&f)
            && match obj.md5 {
                Some(want) => hash_file(f.try_clone()?, dir.show(&name)).await? == want,
                None => record_file(dir, &rec, obj)? == Some(done_line(&f)?),
            };
        if proven {
            progress.lock().expect("lock").add(obj.size);
            if obj.md5.is_some() {
                dir.remove(&rec)?;
            }
            dir.remove(&part)?;
            return Ok(());
        }
        eprintln!(
            "{PROG}: {} is not provably the object in the store (size, MD5 or record differ): fetching it again",
            dir.show(&name)
        );
    }

    let mut fresh = false;
    loop {
        let resumed = if fresh { None } else { resumable(dir, &part, &rec, obj)? };
        let (file, have) = match resumed {
            Some(r) => r,
            None => {
                let f = dir.create_new(&part)?;
                let id = file_id(&f)?;
                dir.write_small(&rec, record_text(obj, &format!("file {id}")).as_bytes())?;
                (f, 0)
            }
        };
        fill(st, obj, file, have, &dir.show(&part), policy, progress).await?;
        let Some(want) = obj.md5 else { break };
        let f = dir
            .open_existing(&part, false)?
            .ok_or_else(|| Error::failure(format!("{} vanished while being written", dir.show(&part))))?;
        let got = hash_file(f, dir.show(&part)).await?;
        if got == want {
            break;
        }
        if have > 0 && !fresh {
            // The bytes kept from an earlier run were not the object's after all: fetch it whole once.
            eprintln!(
                "{PROG}: {name}: MD5 {} after resuming at byte {have} is not the store's: fetching it whole",
                store::hex(&got)
            );
            fresh = true;
            continue;
        }
        dir.remove(&part)?;
        dir.remove(&rec)?;
        return Err(Error::failure(format!(
            "{name}: MD5 {} differs from the store's {}: the download is corrupt and was removed",
            store::hex(&got),
            store::hex(&want)
        )));
    }
    if obj.md5.is_none() {
        // Without an MD5 the record is what will let a rerun keep this file: it names the finished file.
        let f = dir
            .open_existing(&part, false)?
            .ok_or_else(|| Error::failure(format!("{} vanished while being written", dir.show(&part))))?;
        dir.write_small(&rec, record_text(obj, &done_line(&f)?).as_bytes())?;
    }
    dir.rename(&part, &name)?;
    if obj.md5.is_some() {
        dir.remove(&rec)?;
    }
    Ok(())
}

/// The partial file and its length, when its record proves it is this object's; else `None` (after saying
/// why, when there was a partial file).
fn resumable(dir: &SafeDir, part: &str, rec: &str, obj: &Object) -> Result<Option<(std::fs::File, u64)>> {
    let Some(f) = dir.open_existing(part, true)? else { return Ok(None) };
    let id = file_id(&f)?;
    let len = f.metadata()?.len();
    if ours(&f) && record_file(dir, rec, obj)? == Some(format!("file {id}")) && len <= obj.size {
        return Ok(Some((f, len)));
    }
    eprintln!(
        "{PROG}: {}: not provably a part of the object as the store lists it now (no matching record of ETag, \
         date and size): fetching {} from byte 0",
        dir.show(part),
        obj.name()
    );
    Ok(None)
}

/// Appends bytes `have..size` of the object to `file`, syncs it and checks its length.
async fn fill(
    st: &Store,
    obj: &Object,
    file: std::fs::File,
    have: u64,
    shown: &str,
    policy: &RetryPolicy,
    progress: &Mutex<Progress>,
) -> Result<()> {
    let io_err = |e: std::io::Error| Error::io(shown, &e);
    let mut file = tokio::fs::File::from_std(file);
    file.set_len(have).await.map_err(io_err)?;
    file.seek(std::io::SeekFrom::Start(have)).await.map_err(io_err)?;
    progress.lock().expect("lock").add(have);
    let mut r = st.reader(obj, have, obj.size, policy);
    while let Some(b) = r.next().await? {
        file.write_all(&b).await.map_err(io_err)?;
        progress.lock().expect("lock").add(b.len() as u64);
    }
    file.flush().await.map_err(io_err)?;
    file.sync_all().await.map_err(io_err)?;
    let len = file.metadata().await.map_err(io_err)?.len();
    if len != obj.size {
        return Err(Error::failure(format!("{shown}: {len} bytes written, the object has {}", obj.size)));
    }
    Ok(())
}

/// MD5 of an open file from its start, off the async threads.
async fn hash_file(mut f: std::fs::File, shown: String) -> Result<[u8; 16]> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek};
        let err = |e: std::io::Error| Error::io(&shown, &e);
        f.seek(std::io::SeekFrom::Start(0)).map_err(err)?;
        let mut h = Md5::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let k = f.read(&mut buf).map_err(err)?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
        }
        Ok(h.finalize().into())
    })
    .await
    .map_err(|e| Error::failure(format!("hashing task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_covers_every_byte_once() {
        let parts = vec![Object::new("a-0", 20, None), Object::new("a-1", 20, None), Object::new("a-2", 5, None)];
        let c = chunks(&parts, 8);
        let spans: Vec<(usize, u64, u64)> = c.iter().map(|c| (c.part, c.start, c.end)).collect();
        assert_eq!(spans, vec![(0, 0, 8), (0, 8, 16), (0, 16, 20), (1, 0, 8), (1, 8, 16), (1, 16, 20), (2, 0, 5)]);
    }
}
