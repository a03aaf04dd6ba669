//! The a9s Backup Manager's naming model.
//!
//! A backup id is `<instance-uuid>-<epoch-milliseconds>`. On S3 a backup is stored as parts
//! `<backup-id>-<index>` (decimal, not zero-padded, first index 0 or 1) plus metadata `<backup-id>.json`;
//! on Azure as one blob `<backup-id>`. The uuid has hyphens of its own, so names are parsed from its fixed
//! 8-4-4-4-12 shape rather than by splitting on `-`.

use std::fmt;

/// `<instance-uuid>-<epoch-milliseconds>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackupId {
    /// The Backup Manager's instance id (a uuid), as written in the name.
    pub instance: String,
    /// Creation time, milliseconds since the Unix epoch (UTC).
    pub millis: u64,
}

impl BackupId {
    /// Parses exactly `<uuid>-<millis>`.
    pub fn parse(s: &str) -> Option<BackupId> {
        let (instance, rest) = split_instance(s)?;
        let millis = parse_decimal(rest.strip_prefix('-')?)?;
        Some(BackupId { instance: instance.to_string(), millis })
    }

    /// Creation time as ISO 8601 UTC with milliseconds, e.g. `2019-01-31T20:52:27.154Z`.
    pub fn created_iso8601(&self) -> String {
        iso8601_from_millis(self.millis)
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.instance, self.millis)
    }
}

/// What an object (or file) name is in the naming model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectName {
    /// `<backup-id>-<index>`; `index_text` keeps the digits as written, to name `-02` beside `-2`.
    Part { id: BackupId, index: u64, index_text: String },
    /// `<backup-id>.json`
    Metadata { id: BackupId },
    /// `<backup-id>`: a whole backup in one object (Azure).
    Whole { id: BackupId },
}

impl ObjectName {
    pub fn id(&self) -> &BackupId {
        match self {
            ObjectName::Part { id, .. } | ObjectName::Metadata { id } | ObjectName::Whole { id } => id,
        }
    }

    /// Classifies a bare name (no directory; see [`classify_path`]). `None` when it is not in the model.
    pub fn parse(name: &str) -> Option<ObjectName> {
        let (instance, rest) = split_instance(name)?;
        let rest = rest.strip_prefix('-')?;
        let (millis_text, tail) = split_digits(rest);
        let millis = parse_decimal(millis_text)?;
        let id = BackupId { instance: instance.to_string(), millis };
        if tail.is_empty() {
            return Some(ObjectName::Whole { id });
        }
        if tail == ".json" {
            return Some(ObjectName::Metadata { id });
        }
        let index_text = tail.strip_prefix('-')?;
        let index = parse_decimal(index_text)?;
        Some(ObjectName::Part { id, index, index_text: index_text.to_string() })
    }
}

/// Classifies the last component of a path or object key (`dir/x`, `prefix/x`).
pub fn classify_path(path: &str) -> Option<ObjectName> {
    let base = path.rsplit('/').next().unwrap_or(path);
    ObjectName::parse(base)
}

/// Is `s` an instance id (a uuid, either case)?
pub fn is_instance_id(s: &str) -> bool {
    split_instance(s).is_some_and(|(_, rest)| rest.is_empty())
}

fn split_instance(s: &str) -> Option<(&str, &str)> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let b = s.as_bytes();
    let mut pos = 0;
    for (i, len) in GROUPS.iter().enumerate() {
        if i > 0 {
            if b.get(pos) != Some(&b'-') {
                return None;
            }
            pos += 1;
        }
        let group = b.get(pos..pos + len)?;
        if !group.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        pos += len;
    }
    Some((&s[..pos], &s[pos..]))
}

fn split_digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s.split_at(n)
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// ISO 8601 UTC for milliseconds since the epoch (proleptic Gregorian calendar).
pub fn iso8601_from_millis(millis: u64) -> String {
    let secs = millis / 1000;
    let ms = millis % 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", sod / 3600, (sod / 60) % 60, sod % 60)
}

/// Milliseconds since the epoch for an ISO 8601 / RFC 3339 time as services write it:
/// `2019-01-31T20:52:27.154Z`, `2019-01-31 20:52:27 UTC`, `2019-01-31T21:52:27+01:00`, `…+0100`. A time
/// without a zone is taken as UTC. `None` for anything else (the caller falls back to another source).
pub fn millis_from_iso8601(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let t = s.get(from..from + len)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (num(0, 4)?, num(5, 2)?, num(8, 2)?, num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let first3 = format!("{:0<3}", &frac[..digits.min(3)]);
        ms = first3.parse().ok()?;
        rest = &frac[digits..];
    }
    let rest = rest.trim();
    let offset_min = match rest {
        "" | "Z" | "z" | "UTC" | "GMT" | "+00:00" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hm = rest[1..].replace(':', "");
            if hm.len() != 4 || !hm.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            sign * (hm[..2].parse::<i64>().ok()? * 60 + hm[2..].parse::<i64>().ok()?)
        }
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
}

// The inverse of civil_from_days (same author, same range).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// Howard Hinnant's days-to-civil algorithm: exact for every day count we can meet, no calendar crate needed.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "b6f4c071-ef44-4af2-9608-531b4ce4823f-1548967947154";

    #[test]
    fn parses_the_runbook_example() {
        let id = BackupId::parse(ID).unwrap();
        assert_eq!(id.instance, "b6f4c071-ef44-4af2-9608-531b4ce4823f");
        assert_eq!(id.millis, 1548967947154);
        assert_eq!(id.to_string(), ID);
        assert_eq!(id.created_iso8601(), "2019-01-31T20:52:27.154Z");
    }

    #[test]
    fn classifies_names() {
        assert!(matches!(ObjectName::parse(ID), Some(ObjectName::Whole { .. })));
        assert!(matches!(ObjectName::parse(&format!("{ID}.json")), Some(ObjectName::Metadata { .. })));
        match ObjectName::parse(&format!("{ID}-10")).unwrap() {
            ObjectName::Part { index, index_text, id } => {
                assert_eq!((index, index_text.as_str()), (10, "10"));
                assert_eq!(id.to_string(), ID);
            }
            other => panic!("{other:?}"),
        }
        match classify_path(&format!("some/dir/{ID}-02")).unwrap() {
            ObjectName::Part { index, index_text, .. } => assert_eq!((index, index_text.as_str()), (2, "02")),
            other => panic!("{other:?}"),
        }
        for bad in [
            "",
            "dump.sql",
            "b6f4c071-ef44-4af2-9608-531b4ce4823f",
            "b6f4c071-ef44-4af2-9608-531b4ce4823f-",
            &format!("{ID}-"),
            &format!("{ID}-1a"),
            &format!("{ID}.gz"),
            &format!("{ID}-1-2"),
            "b6f4c071-ef44-4af2-9608-531b4ce4823-1548967947154",
            "x6f4c071-ef44-4af2-9608-531b4ce4823f-1548967947154",
        ] {
            assert_eq!(ObjectName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn instance_ids() {
        assert!(is_instance_id("b6f4c071-ef44-4af2-9608-531b4ce4823f"));
        assert!(!is_instance_id(ID));
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601_from_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_from_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601_from_millis(1_569_935_509_279), "2019-10-01T13:11:49.279Z");
        for (text, ms) in [
            ("2019-10-01T13:11:49.279Z", 1_569_935_509_279),
            ("2019-10-01T13:11:49.2791234Z", 1_569_935_509_279),
            ("2019-10-01 13:11:49 UTC", 1_569_935_509_000),
            ("2019-10-01T15:11:49.279+02:00", 1_569_935_509_279),
            ("2019-10-01T08:11:49.279-0500", 1_569_935_509_279),
            ("2000-02-29T00:00:00Z", 951_782_400_000),
            ("1970-01-01T00:00:00", 0),
        ] {
            assert_eq!(millis_from_iso8601(text), Some(ms), "{text}");
        }
        for bad in [
            "",
            "2019-10-01",
            "2019-13-01T00:00:00Z",
            "2019-10-01T13:11:49.Z",
            "2019-10-01T13:11:49 CEST",
            "1548967947154",
        ] {
            assert_eq!(millis_from_iso8601(bad), None, "{bad}");
        }
    }
}
