//! a9s-cat-parts: `cat $(ls -1v <backup-id>-*)`, but the set of parts is checked before a byte is written.
//!
//! The parts of a split backup are given in any order (typically a shell glob, which sorts `-10` before
//! `-2`). They are ordered by index, and the set must be one backup, contiguous, without duplicates, with
//! every part but the last of full size; otherwise nothing is written and the problem is named.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use a9s_core::error::{Error, IoContext, Result};
use a9s_core::io::{human_bytes, open_input};
use a9s_core::output::Output;
use a9s_core::parts::{self, Candidate, Plan};
use a9s_core::progress::{Progress, ProgressArgs};
use clap::{CommandFactory, Parser};

#[derive(Parser, Debug)]
#[command(
    name = "a9s-cat-parts",
    version = a9s_core::VERSION,
    about = "Concatenate the parts of an a9s backup in natural order, after checking that none is missing",
    long_about = None,
)]
struct Args {
    /// The part files of one backup, `<instance-uuid>-<milliseconds>-<index>`, in any order (a shell glob
    /// is fine), or one file `<instance-uuid>-<milliseconds>` holding a whole backup (Azure).
    #[arg(value_name = "PART", required = true)]
    parts: Vec<PathBuf>,

    /// Print the planned order with sizes and the total instead of the data.
    #[arg(long)]
    list: bool,

    /// With --list: print the plan as one JSON object.
    #[arg(long, requires = "list")]
    json: bool,

    /// Write to FILE instead of standard output (`-` is standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE", default_value = "-")]
    output: PathBuf,

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
    let plan = plan_files(&args.parts)?;
    if args.list {
        let text = if args.json { list_json(&plan) } else { list_text(&plan) };
        io::stdout().lock().write_all(text.as_bytes())?;
        return Ok(0);
    }
    // Open every part before writing: an unreadable part must stop us before the first byte, not at part 37.
    let files = plan.parts.iter().map(|p| open_input(&p.item)).collect::<Result<Vec<File>>>()?;
    let to_stdout = args.output.as_os_str() == "-";
    let mode = args.progress.mode(to_stdout, false);
    let mut progress = Progress::with_mode("a9s-cat-parts", Some(plan.total_size()), mode);
    if to_stdout {
        // Quiet in a pipe, but it tells the pipe's last program how far through the backup it is.
        progress = progress.publish_stdout(&plan.id.to_string());
    }
    // A FILE is complete or not at all: a full disk or a signal leaves no partial FILE behind. Stdout is a
    // `File`, so the copy stays zero-copy.
    let mut out = Output::open(&args.output, "a9s-cat-parts", "backup data")?;
    copy_parts(&plan, files, out.file(), &mut progress)?;
    out.commit()?;
    progress.finish();
    Ok(0)
}

/// Stats the files and checks the set.
fn plan_files(paths: &[PathBuf]) -> Result<Plan<PathBuf>> {
    let mut candidates = Vec::with_capacity(paths.len());
    for path in paths {
        let meta = std::fs::metadata(path).context_io(|| format!("cannot read {}", path.display()))?;
        if !meta.is_file() {
            return Err(Error::failure(format!("{} is not a regular file", path.display())));
        }
        candidates.push(Candidate { name: path.display().to_string(), size: meta.len(), item: path.clone() });
    }
    parts::plan(candidates).map_err(|problems| Error::failure(parts::describe(&problems)))
}

// 64 MiB steps keep progress lively at no cost to the zero-copy path.
const STEP: u64 = 64 << 20;
// Into a pipe a step waits for the reader: 1 MiB steps keep the position the pipe's last program reads moving.
const PIPE_STEP: u64 = 1 << 20;

/// Copies each part in order. Each part must yield exactly the size that was checked: a file that changes
/// under us is an error, not a silently different backup.
fn copy_parts(plan: &Plan<PathBuf>, files: Vec<File>, out: &mut File, progress: &mut Progress) -> Result<()> {
    let step_size = if a9s_core::pipeline::PipeId::of_fd(out.as_raw_fd()).is_some() { PIPE_STEP } else { STEP };
    let mut zero_copy = true;
    for (part, mut file) in plan.parts.iter().zip(files) {
        progress.set_detail(part.name.clone());
        let mut copied = 0u64;
        loop {
            let step = if zero_copy {
                match sendfile(&file, out, step_size) {
                    Ok(n) => n,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => {
                        // Not supported between these two (an old kernel, an odd file system): copy by hand.
                        zero_copy = false;
                        continue;
                    }
                    Err(e) => return Err(copy_error(&part.name, e)),
                }
            } else {
                buffered_copy(&mut file, out, step_size).map_err(|e| copy_error(&part.name, e))?
            };
            if step == 0 {
                break;
            }
            copied += step;
            progress.add(step);
        }
        if copied != part.size {
            return Err(Error::failure(format!(
                "{} changed while being read: expected {} bytes, read {copied}; the output is incomplete",
                part.name, part.size
            )));
        }
    }
    Ok(())
}

fn copy_error(name: &str, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Error::from(e)
    } else {
        Error::io(format_args!("copying {name}"), &e)
    }
}

/// Up to `max` bytes from the file's current offset with sendfile(2), which moves pages inside the kernel to
/// a pipe, socket or file: the data never passes through our memory, so we run as fast as `cat`.
fn sendfile(from: &File, to: &File, max: u64) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: both descriptors are open for the duration of the call; a null offset uses and advances
        // the input file's own offset.
        let n = unsafe { libc::sendfile(to.as_raw_fd(), from.as_raw_fd(), std::ptr::null_mut(), max as usize) };
        if n >= 0 {
            return Ok(n as u64);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn buffered_copy(from: &mut File, to: &mut File, max: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    while total < max {
        let want = buf.len().min((max - total) as usize);
        let n = match from.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok(total)
}

fn list_text(plan: &Plan<PathBuf>) -> String {
    let mut s = String::new();
    for p in &plan.parts {
        let index = p.index.map_or("-".to_string(), |i| i.to_string());
        s += &format!("{index:>6} {:>15} {}\n", p.size, p.name);
    }
    let n = plan.parts.len();
    s += &format!(
        "total: {n} part{} of {}, {} bytes ({}), created {}\n",
        if n == 1 { "" } else { "s" },
        plan.id,
        plan.total_size(),
        human_bytes(plan.total_size()),
        plan.id.created_iso8601()
    );
    s
}

fn list_json(plan: &Plan<PathBuf>) -> String {
    let parts: Vec<serde_json::Value> =
        plan.parts.iter().map(|p| serde_json::json!({ "index": p.index, "name": p.name, "size": p.size })).collect();
    let v = serde_json::json!({
        "backup_id": plan.id.to_string(),
        "instance_id": plan.id.instance,
        "created": plan.id.created_iso8601(),
        "parts": parts,
        "total_size": plan.total_size(),
    });
    format!("{v}\n")
}
