//! a9s-ls: which backups are there, which are complete, and which is the newest.
//!
//! Replaces the runbook's `aws s3 ls` / `az storage blob list | jq` and picking the newest timestamp by eye:
//! objects are grouped into backups by the naming model and each backup is checked the way a9s-cat-parts and
//! a9s-fetch check it, so "complete" here means those programs will take it. With `--backup-manager` it asks
//! the a9s Backup Manager's API instead, as the runbook does with curl ([`backup_manager`]).

pub mod backup_manager;
pub mod http;

use std::ffi::OsString;
use std::io::Write;

use a9s_core::error::{Error, Result};
use a9s_core::io::human_bytes;
use a9s_core::store::{self, Backup, EndpointArgs, InstanceSummary, Location, Selection, Store};
use clap::{CommandFactory, Parser};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "a9s-ls",
    version = a9s_core::VERSION,
    about = "List the a9s backups in an S3 bucket, an Azure container or a local directory",
    long_about = None,
)]
struct Args {
    /// Where to look: `s3://BUCKET[/PREFIX]`, `az://CONTAINER[/PREFIX]` or a directory. A last component that is
    /// an instance id (`s3://bucket/<uuid>`) lists that instance's backups, one that is a backup id
    /// (`…/<uuid>-<milliseconds>`) that backup; anything else (a bucket, a folder) lists the instances found.
    /// With --backup-manager: the Cloud Foundry service instance GUID (`cf service NAME --guid`).
    #[arg(value_name = "LOCATION|GUID")]
    location: String,

    /// Ask the a9s Backup Manager at URL (`http://[USER@]HOST:3000`, user admin when none is given) for the
    /// backups of the service instance GUID, as the runbook's `curl …/instances/<guid>` does. The password is
    /// read from A9S_BACKUP_MANAGER_PASSWORD, else asked on the terminal.
    #[arg(long, value_name = "URL")]
    backup_manager: Option<String>,

    /// With --backup-manager: give up when the Backup Manager has not answered within SECONDS.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..), requires = "backup_manager")]
    timeout: u64,

    /// Print only the id of the newest complete backup, for `$(…)`. Exit status 1 when there is none.
    #[arg(long, conflicts_with = "json")]
    latest: bool,

    /// Print one JSON object per line (JSON Lines) with every field, including each part's name and size.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    endpoints: EndpointArgs,

    #[command(flatten)]
    retry: store::RetryArgs,
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
    if let Some(url) = &args.backup_manager {
        return backup_manager::run(&backup_manager::Request {
            url,
            guid: &args.location,
            latest: args.latest,
            json: args.json,
            timeout: std::time::Duration::from_secs(args.timeout),
        });
    }
    let loc = Location::parse(&args.location)?;
    let opts = args.endpoints.options(args.retry.policy("a9s-ls"));
    let rt = store::runtime()?;
    let survey = rt.block_on(async {
        let st = Store::connect(&loc, &opts).await?;
        store::survey(&st, &loc, &opts.retry).await
    })?;
    // A stray key (any name at all) is skipped and mentioned once, never fatal to the listing.
    if let Some(note) = survey.skipped_note("a9s-ls") {
        eprintln!("{note}");
    }
    let skipped = survey.skipped.len();
    let backups = survey.backups;
    let mut out = std::io::stdout().lock();
    if backups.is_empty() {
        return Err(Error::failure(format!(
            "no a9s backups under {} (no object named <instance-uuid>-<milliseconds>[-<index>|.json])",
            args.location
        )));
    }
    if args.latest {
        let b = store::latest(&backups, &loc, &args.location)?;
        writeln!(out, "{}", b.id)?;
        return Ok(0);
    }
    let by_backup = matches!(loc.selection, Selection::Instance(_) | Selection::Backup(_));
    if by_backup {
        for b in &backups {
            let line = if args.json { with_skipped(backup_json(b, &loc), skipped) } else { backup_line(b) };
            writeln!(out, "{line}")?;
        }
    } else {
        let summaries = store::instances(&backups);
        for s in &summaries {
            let line = if args.json { with_skipped(instance_json(s, &loc), skipped) } else { instance_line(s, &loc) };
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    Ok(0)
}

/// Every JSON line says how many names under LOCATION were skipped as not a9s backup names.
fn with_skipped(mut v: serde_json::Value, skipped: usize) -> String {
    v["skipped_objects"] = json!(skipped);
    v.to_string()
}

/// `<id>  <created>  <n> parts  <bytes> bytes (<human>)  complete|INCOMPLETE: <problems>`
fn backup_line(b: &Backup) -> String {
    let parts = if b.whole {
        "1 blob".to_string()
    } else if b.parts.len() == 1 {
        "1 part".to_string()
    } else {
        format!("{} parts", b.parts.len())
    };
    let size = b.total_size();
    let status = if b.complete() {
        "complete".to_string()
    } else {
        format!("INCOMPLETE: {}", store::printable(&b.problem_text()))
    };
    format!("{}  {}  {parts:>9}  {size:>14} bytes ({})  {status}", b.id, b.id.created_iso8601(), human_bytes(size))
}

fn backup_json(b: &Backup, loc: &Location) -> serde_json::Value {
    let parts: Vec<serde_json::Value> = b
        .parts
        .iter()
        .map(|p| {
            let mut v = json!({"name": p.name(), "size": p.size});
            if let Some(e) = &p.etag {
                v["etag"] = json!(e);
            }
            if let Some(m) = &p.md5 {
                v["md5"] = json!(store::hex(m));
            }
            v
        })
        .collect();
    json!({
        "id": b.id.to_string(),
        "instance": b.id.instance,
        "created": b.id.created_iso8601(),
        "created_ms": b.id.millis,
        "location": loc.url_of(&b.key_prefix()),
        "complete": b.complete(),
        "problems": b.problems,
        "whole": b.whole,
        "part_count": b.parts.len(),
        "size": b.total_size(),
        "metadata": b.metadata.as_ref().map(|m| json!({"name": m.name(), "size": m.size})),
        "parts": parts,
    })
}

/// `<instance>  <n> backups (<c> complete)  newest <id> <created>  <location>`
fn instance_line(s: &InstanceSummary, loc: &Location) -> String {
    let newest = match &s.newest_complete {
        Some(n) if *n == s.newest => format!("newest {} {}", n, n.created_iso8601()),
        Some(n) => {
            format!("newest complete {} {} (newer {} incomplete)", n, n.created_iso8601(), s.newest.created_iso8601())
        }
        None => format!("none complete; newest {} {}", s.newest, s.newest.created_iso8601()),
    };
    let count = if s.backups == 1 { "1 backup".to_string() } else { format!("{} backups", s.backups) };
    format!(
        "{}  {count} ({} complete)  {newest}  {}",
        s.instance,
        s.complete,
        store::printable(&loc.url_of(&format!("{}{}", s.dir, s.instance)))
    )
}

fn instance_json(s: &InstanceSummary, loc: &Location) -> serde_json::Value {
    json!({
        "instance": s.instance,
        "location": loc.url_of(&format!("{}{}", s.dir, s.instance)),
        "backups": s.backups,
        "complete": s.complete,
        "newest": s.newest.to_string(),
        "newest_created": s.newest.created_iso8601(),
        "newest_complete": s.newest_complete.as_ref().map(|n| n.to_string()),
        "newest_complete_created": s.newest_complete.as_ref().map(|n| n.created_iso8601()),
    })
}
