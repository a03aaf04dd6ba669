//! `a9s-ls --backup-manager URL GUID`: the runbook's
//! `curl -u admin:<password> http://<backup-manager-host>:3000/instances/<service-instance-guid>`, read for the
//! operator.
//!
//! The answer's format is not publicly documented; the runbook only says it holds the backup (and restore)
//! history with `backup_id`, `created_at` and `updated_at` fields. So no shape is assumed: every JSON object
//! anywhere in the answer that has a string `backup_id` is a backup record.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use a9s_core::error::{Error, Result};
use a9s_core::io::human_bytes;
use a9s_core::naming::{iso8601_from_millis, millis_from_iso8601, BackupId};
use a9s_core::sanitize::{one_line, untrusted, MAX_QUOTED};
use a9s_core::secret::{prompt_on_terminal, Secret};
use serde_json::{json, Value};

use crate::http::{self, Url};

const PROG: &str = "a9s-ls";

/// The variable the Backup Manager password is read from (`credhub get -n /backup_manager_password`).
pub const PASSWORD_ENV: &str = "A9S_BACKUP_MANAGER_PASSWORD";

/// The user when the URL names none: the runbook's Backup Manager user.
pub const DEFAULT_USER: &str = "admin";

/// One backup as the Backup Manager recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub backup_id: String,
    /// `created_at` when it parses, else the milliseconds in the backup id.
    pub created_ms: Option<i64>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub status: Option<String>,
    pub size: Option<Value>,
    /// The object itself, for `--json`: fields we do not know may be the ones the operator needs.
    pub raw: Value,
}

impl Record {
    fn from_object(o: &serde_json::Map<String, Value>) -> Option<Record> {
        let backup_id = o.get("backup_id")?.as_str()?.to_string();
        let text = |k: &str| match o.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let created_at = text("created_at");
        let created_ms = created_at
            .as_deref()
            .and_then(millis_from_iso8601)
            .or_else(|| BackupId::parse(&backup_id).map(|id| id.millis as i64));
        let size = o.get("size").filter(|v| !v.is_null()).cloned();
        Some(Record {
            backup_id,
            created_ms,
            created_at,
            updated_at: text("updated_at"),
            status: text("status"),
            size,
            raw: Value::Object(o.clone()),
        })
    }

    /// Whether the backup id is one in the a9s naming model (`<instance-uuid>-<milliseconds>`): only such an id
    /// is printed as an id; anything else the server sends (`x --endpoint-url http://evil`, escape sequences)
    /// is reported, escaped, and never handed on.
    pub fn valid(&self) -> bool {
        BackupId::parse(&self.backup_id).is_some()
    }

    /// The backup id as it may be shown in a message.
    pub fn shown_id(&self) -> String {
        one_line(&self.backup_id, 100)
    }

    /// The Backup Manager instance id: the uuid the backup id starts with.
    pub fn instance(&self) -> Option<String> {
        BackupId::parse(&self.backup_id).map(|id| id.instance)
    }

    pub fn size_bytes(&self) -> Option<u64> {
        match &self.size {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Whether the status, when there is one, says the backup cannot be used.
    pub fn unusable(&self) -> Option<&str> {
        let s = self.status.as_deref()?;
        let l = s.to_ascii_lowercase();
        const FAILED: &[&str] =
            &["fail", "error", "abort", "cancel", "delet", "timeout", "timed out", "killed", "invalid"];
        const UNFINISHED: &[&str] = &[
            "running",
            "in_progress",
            "in progress",
            "pending",
            "queued",
            "started",
            "starting",
            "creating",
            "uploading",
            "scheduled",
        ];
        if FAILED.iter().any(|f| l.contains(f)) || UNFINISHED.iter().any(|u| l == *u) {
            Some(s)
        } else {
            None
        }
    }
}

/// Every backup record in an answer, oldest first, one per backup id.
///
/// A backup id can appear twice: once as a backup and once in a restore that used it. The record found
/// outside any key naming restores wins; among equals, the first in the document.
pub fn records(answer: &Value) -> Vec<Record> {
    let mut found: Vec<(bool, Record)> = Vec::new();
    walk(answer, false, &mut found);
    let mut by_id: BTreeMap<String, (bool, Record)> = BTreeMap::new();
    for (in_restore, r) in found {
        let replace = match by_id.get(&r.backup_id) {
            None => true,
            // A backup's own record replaces one found in a restore; otherwise the first one stays.
            Some((prev_in_restore, _)) => *prev_in_restore && !in_restore,
        };
        if replace {
            by_id.insert(r.backup_id.clone(), (in_restore, r));
        }
    }
    let mut out: Vec<Record> = by_id.into_values().map(|(_, r)| r).collect();
    // Unknown times sort first: a record without a time cannot be claimed to be the newest.
    out.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then_with(|| a.backup_id.cmp(&b.backup_id)));
    out
}

fn walk(v: &Value, in_restore: bool, out: &mut Vec<(bool, Record)>) {
    match v {
        Value::Object(o) => {
            if let Some(r) = Record::from_object(o) {
                out.push((in_restore, r));
            }
            for (k, child) in o {
                walk(child, in_restore || k.to_ascii_lowercase().contains("restore"), out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| walk(c, in_restore, out)),
        _ => {}
    }
}

/// The newest record whose status does not say it failed or is unfinished.
pub fn latest(records: &[Record]) -> Option<&Record> {
    records.iter().rev().find(|r| r.unusable().is_none())
}

/// `<backup-id>  <created UTC>  <status>  <size>`
pub fn line(r: &Record) -> String {
    let created = r.created_ms.map(iso8601_from_millis_i64).unwrap_or_else(|| "-".into());
    let status = r.status.as_deref().map(|s| one_line(s, 40)).unwrap_or_else(|| "-".into());
    let size = match (r.size_bytes(), &r.size) {
        (Some(n), _) => format!("{n} bytes ({})", human_bytes(n)),
        (None, Some(v)) => one_line(&v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()), 40),
        (None, None) => "-".into(),
    };
    format!("{}  {created}  {status:<9}  {size}", r.backup_id)
}

fn iso8601_from_millis_i64(ms: i64) -> String {
    if ms >= 0 {
        iso8601_from_millis(ms as u64)
    } else {
        ms.to_string()
    }
}

pub fn json_line(r: &Record, guid: &str) -> Value {
    json!({
        "id": r.backup_id,
        "instance": r.instance(),
        "service_instance": guid,
        "created": r.created_ms.map(iso8601_from_millis_i64),
        "created_ms": r.created_ms,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "status": r.status,
        "size": r.size_bytes().map(Value::from).or_else(|| r.size.clone()),
        "usable": r.unusable().is_none(),
        "record": r.raw,
    })
}

/// What the command line asked for.
pub struct Request<'a> {
    pub url: &'a str,
    pub guid: &'a str,
    pub latest: bool,
    pub json: bool,
    pub timeout: Duration,
}

/// Asks the Backup Manager and prints the backups.
pub fn run(req: &Request) -> Result<i32> {
    let url =
        Url::parse(req.url).map_err(|e| Error::usage(format!("--backup-manager {}: {e}", redact_url(req.url))))?;
    if req.guid.is_empty() || req.guid.contains(['/', '?', '#', ' ', '%']) {
        return Err(Error::usage(format!(
            "{:?} is not a service instance GUID (give the Cloud Foundry one: `cf service NAME --guid`)",
            req.guid
        )));
    }
    let user = url.user.clone().unwrap_or_else(|| DEFAULT_USER.to_string());
    let password = password(&user, &url)?;
    let mut basic = Vec::with_capacity(user.len() + 1 + password.expose().len());
    basic.extend_from_slice(user.as_bytes());
    basic.push(b':');
    basic.extend_from_slice(password.expose());
    let basic = Secret::new(basic);
    let authorization = Secret::new(format!("Basic {}", a9s_core::encode::base64(basic.expose())).into_bytes());
    let path = format!("{}/instances/{}", url.base, req.guid);
    let shown = format!("{}{path}", url.display());
    let auth = std::str::from_utf8(authorization.expose()).expect("base64 is ASCII");
    // An error page or a proxy may echo the request: whatever the server says is quoted with these hidden.
    let password_text = String::from_utf8_lossy(password.expose());
    let secrets = [&auth["Basic ".len()..], password_text.as_ref(), auth];
    let quote = |text: &str, max: usize| untrusted(text, &secrets, max);
    let resp = http::get(&url, &path, Some(auth), req.timeout).map_err(|f| match f {
        http::Failure::Timeout => Error::unreachable(format!(
            "the Backup Manager at {} did not answer within {} s (--timeout); is it the right host and port?",
            url.display(),
            req.timeout.as_secs()
        )),
        http::Failure::Connect(e) => {
            Error::unreachable(format!("cannot reach the Backup Manager at {}: {e}", url.display()))
        }
        http::Failure::Protocol(e) => Error::failure(format!("GET {shown}: {}", quote(&e, MAX_QUOTED))),
    })?;
    match resp.status {
        200..=299 => {}
        401 => {
            return Err(Error::failure(format!(
                "the Backup Manager at {} refused user {user:?} or its password (HTTP 401): check the user in the \
                 URL and {PASSWORD_ENV} (`credhub get -n /backup_manager_password`)",
                url.display()
            )))
        }
        403 => {
            return Err(Error::failure(format!(
                "the Backup Manager at {} does not let user {user:?} read service instance {} (HTTP 403)",
                url.display(),
                req.guid
            )))
        }
        404 => {
            return Err(Error::failure(format!(
                "the Backup Manager at {} does not know service instance {} (HTTP 404): give the Cloud Foundry \
                 service instance GUID (`cf service NAME --guid`), not the Backup Manager's instance id",
                url.display(),
                req.guid
            )))
        }
        s => {
            let excerpt = quote(&String::from_utf8_lossy(&resp.body), 300);
            let location = resp.header("location").map(|l| format!(" (to {})", quote(l, 200))).unwrap_or_default();
            let reason = quote(&resp.reason, 80);
            let message = format!("GET {shown}: HTTP {s} {reason}{location}: {excerpt}");
            // A server error (a gateway, a restart) may be over at the next try; anything else says the same again.
            return Err(if s >= 500 { Error::unreachable(message) } else { Error::failure(message) });
        }
    }
    let answer: Value = serde_json::from_slice(&resp.body).map_err(|e| {
        let start = quote(&String::from_utf8_lossy(&resp.body), 60);
        Error::failure(format!("GET {shown}: the answer is not JSON ({e}); it starts \"{start}\""))
    })?;
    let found = records(&answer);
    if found.is_empty() {
        return Err(Error::failure(format!(
            "the Backup Manager has no backup of service instance {} (no JSON object with a string \"backup_id\" \
             in its answer)",
            req.guid
        )));
    }
    let mut instances: Vec<String> = found.iter().filter_map(Record::instance).collect();
    instances.sort();
    instances.dedup();
    let bad: Vec<&Record> = found.iter().filter(|r| !r.valid()).collect();
    let ignored = |bad: &[&Record]| {
        let Some(first) = bad.first() else { return };
        let n = bad.len();
        eprintln!(
            "{PROG}: ignoring {n} record{} whose backup_id is not an a9s backup id (<instance-uuid>-<milliseconds>), \
             e.g. \"{}\"",
            plural(n),
            first.shown_id()
        );
    };
    let mut out = std::io::stdout().lock();
    if req.latest {
        let Some(best) = latest(&found) else {
            return Err(Error::failure(format!(
                "none of the {} backups of service instance {} is usable: every one has a failed or unfinished status",
                found.len(),
                req.guid
            )));
        };
        if !best.valid() {
            return Err(Error::failure(format!(
                "the newest usable backup the Backup Manager names, \"{}\", is not an a9s backup id \
                 (<instance-uuid>-<milliseconds>): not printing it; check the Backup Manager",
                best.shown_id()
            )));
        }
        ignored(&bad);
        for newer in found.iter().filter(|r| r.created_ms > best.created_ms && r.valid()) {
            eprintln!(
                "{PROG}: skipping the newer backup {} (status {})",
                newer.backup_id,
                one_line(newer.unusable().unwrap_or("?"), 40)
            );
        }
        writeln!(out, "{}", best.backup_id)?;
        out.flush()?;
        return Ok(0);
    }
    ignored(&bad);
    let good: Vec<&Record> = found.iter().filter(|r| r.valid()).collect();
    if good.is_empty() {
        return Err(Error::failure(format!(
            "none of the {} backup records of service instance {} has an a9s backup id",
            found.len(),
            req.guid
        )));
    }
    if !req.json {
        let which = match instances.as_slice() {
            [one] => {
                format!("Backup Manager instance {one}: its backups are s3://BUCKET/{one}-… or az://CONTAINER/{one}-…")
            }
            many => format!("Backup Manager instances {}", many.join(", ")),
        };
        eprintln!("{PROG}: service instance {}: {} backup{}, {which}", req.guid, good.len(), plural(good.len()));
    }
    for r in good {
        let l = if req.json { json_line(r, req.guid).to_string() } else { line(r) };
        writeln!(out, "{l}")?;
    }
    out.flush()?;
    Ok(0)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The password from [`PASSWORD_ENV`], else asked on the terminal.
fn password(user: &str, url: &Url) -> Result<Secret> {
    if let Some(v) = std::env::var_os(PASSWORD_ENV) {
        let v = std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec();
        if v.is_empty() {
            return Err(Error::usage(format!("{PASSWORD_ENV} is set but empty")));
        }
        return Ok(Secret::new(v));
    }
    let host = format!("{}:{}", url.host, url.port);
    match prompt_on_terminal(&format!("{PROG}: password of {user} at the Backup Manager {host}: "))? {
        Some(s) if !s.expose().is_empty() => Ok(s),
        Some(_) => Err(Error::usage("the password is empty")),
        None => Err(Error::usage(format!(
            "no Backup Manager password: set {PASSWORD_ENV} (`credhub get -n /backup_manager_password`); there is \
             no terminal to ask on"
        ))),
    }
}

/// A URL as typed, with any password in it replaced, for a message about the URL itself.
fn redact_url(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &text[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') { format!("{user}:***") } else { user.to_string() };
            format!("{}{hidden}{}", &text[..s + 3], &text[at..])
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "b6f4c071-ef44-4af2-9608-531b4ce4823f";

    #[test]
    fn finds_backups_anywhere_oldest_first_and_prefers_backups_over_restores() {
        let answer = json!({
            "instance_id": "cf-guid",
            "restores": [{"backup_id": format!("{U}-1700000000000"), "status": "done", "created_at": "2026-01-01T00:00:00Z"}],
            "data": {"history": [
                {"backup_id": format!("{U}-1700000000000"), "created_at": "2023-11-14T22:13:20.000Z", "status": "done", "size": 1234},
                {"backup_id": format!("{U}-1600000000000"), "status": "done", "size": "99"},
                {"backup_id": 5, "status": "done"},
                {"nested": {"backup_id": format!("{U}-1800000000000"), "created_at": "2027-01-15T08:00:00+01:00", "status": "failed"}},
            ]},
        });
        let r = records(&answer);
        let ids: Vec<_> = r.iter().map(|r| r.backup_id.as_str()).collect();
        assert_eq!(ids, [format!("{U}-1600000000000"), format!("{U}-1700000000000"), format!("{U}-1800000000000")]);
        assert_eq!(r[1].status.as_deref(), Some("done"));
        assert_eq!(r[1].size_bytes(), Some(1234));
        assert_eq!(r[0].size_bytes(), Some(99));
        assert_eq!(r[0].created_ms, Some(1_600_000_000_000));
        assert_eq!(r[2].created_ms, millis_from_iso8601("2027-01-15T07:00:00Z"));
        assert_eq!(latest(&r).unwrap().backup_id, format!("{U}-1700000000000"));
        assert_eq!(r[0].instance().as_deref(), Some(U));
        assert!(line(&r[1]).starts_with(&format!("{U}-1700000000000  2023-11-14T22:13:20.000Z  done")));
    }

    #[test]
    fn statuses() {
        let rec = |s: Option<&str>| Record {
            backup_id: "x".into(),
            created_ms: None,
            created_at: None,
            updated_at: None,
            status: s.map(str::to_string),
            size: None,
            raw: Value::Null,
        };
        for bad in ["failed", "Failure", "error", "ERRORED", "aborted", "canceled", "deleted", "running", "queued"] {
            assert!(rec(Some(bad)).unusable().is_some(), "{bad}");
        }
        for good in ["done", "success", "succeeded", "completed", "finished"] {
            assert!(rec(Some(good)).unusable().is_none(), "{good}");
        }
        assert!(rec(None).unusable().is_none());
    }

    #[test]
    fn only_naming_model_ids_are_valid() {
        let answer = json!([
            {"backup_id": format!("{U}-1700000000000")},
            {"backup_id": "x --endpoint-url http://evil"},
            {"backup_id": format!("\u{1b}[2J{U}-1700000000001")},
            {"backup_id": format!("{U}-1700000000002\n")},
        ]);
        let r = records(&answer);
        let valid: Vec<_> = r.iter().filter(|r| r.valid()).map(|r| r.backup_id.as_str()).collect();
        assert_eq!(valid, [format!("{U}-1700000000000")]);
        assert!(r.iter().all(|r| !r.shown_id().contains('\u{1b}') && !r.shown_id().contains('\n')));
    }

    #[test]
    fn redacts_a_password_typed_into_the_url() {
        assert_eq!(redact_url("http://admin:hunter2@h:3000"), "http://admin:***@h:3000");
        assert_eq!(redact_url("http://admin@h:3000"), "http://admin@h:3000");
    }
}
