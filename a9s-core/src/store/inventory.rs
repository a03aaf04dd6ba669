//! Objects grouped into backups by the naming model, each checked with [`crate::parts::plan`]: what a9s-ls
//! prints and what a9s-fetch refuses or fetches.

use std::collections::BTreeMap;

use crate::naming::{classify_path, BackupId, ObjectName};
use crate::parts::{plan, Candidate};

use super::location::{Location, Selection};

/// One object (or file) in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Full key (S3/Azure) or file name (local directory).
    pub key: String,
    pub size: u64,
    /// The ETag as the store gives it, quotes removed.
    pub etag: Option<String>,
    /// MD5 of the content when the store states it (an S3 ETag of a single-request upload is the MD5, Azure's
    /// Content-MD5).
    pub md5: Option<[u8; 16]>,
    /// Last-Modified (or a local file's mtime) as the store gives it: with the ETag and size, what identifies
    /// this version of the object when a download is resumed.
    pub modified: Option<String>,
}

impl Object {
    pub fn new(key: impl Into<String>, size: u64, etag: Option<String>) -> Object {
        let etag = etag.map(|e| e.trim_matches('"').to_string()).filter(|e| !e.is_empty());
        let md5 = etag.as_deref().and_then(md5_of_etag);
        Object { key: key.into(), size, etag, md5, modified: None }
    }

    pub fn with_modified(mut self, modified: Option<String>) -> Object {
        self.modified = modified;
        self
    }

    pub fn with_md5(mut self, md5: Option<[u8; 16]>) -> Object {
        if md5.is_some() {
            self.md5 = md5;
        }
        self
    }

    /// The last component of the key.
    pub fn name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }

    /// The key's "folder": empty or ending in `/`.
    pub fn dir(&self) -> &str {
        &self.key[..self.key.len() - self.name().len()]
    }
}

/// An ETag is the content's MD5 when it is 32 hex digits; multipart uploads give `<hex>-<parts>` and
/// encrypted (SSE-KMS) objects something else again, which is then only an opaque version tag.
pub fn md5_of_etag(etag: &str) -> Option<[u8; 16]> {
    let e = etag.trim_matches('"').as_bytes();
    if e.len() != 32 || !e.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in e.chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

pub use crate::encode::hex;

/// One backup found in a store, complete or not.
#[derive(Debug, Clone)]
pub struct Backup {
    pub id: BackupId,
    /// The key prefix it is under (empty or ending in `/`).
    pub dir: String,
    /// Its data objects: parts in natural order, or the one whole object.
    pub parts: Vec<Object>,
    /// Stored as one object `<id>` rather than parts.
    pub whole: bool,
    /// `<id>.json`, if there.
    pub metadata: Option<Object>,
    /// What makes it incomplete; empty when it is complete.
    pub problems: Vec<String>,
}

impl Backup {
    pub fn complete(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn total_size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }

    /// Key prefix naming this backup: `<dir><id>`.
    pub fn key_prefix(&self) -> String {
        format!("{}{}", self.dir, self.id)
    }

    /// The problems as one line.
    pub fn problem_text(&self) -> String {
        self.problems.join("; ")
    }
}

/// Groups objects into backups, oldest first. Objects outside the naming model are skipped.
pub fn group(objects: Vec<Object>, requires_metadata: bool) -> Vec<Backup> {
    group_counting(objects, requires_metadata).0
}

/// [`group`], and the keys it skipped.
pub fn group_counting(objects: Vec<Object>, requires_metadata: bool) -> (Vec<Backup>, Vec<String>) {
    let mut skipped = Vec::new();
    #[derive(Default)]
    struct Found {
        data: Vec<Object>,
        metadata: Option<Object>,
    }
    let mut found: BTreeMap<(u64, String, String), (BackupId, Found)> = BTreeMap::new();
    for o in objects {
        let Some(name) = classify_path(&o.key) else {
            skipped.push(o.key);
            continue;
        };
        let id = name.id().clone();
        let key = (id.millis, id.instance.to_ascii_lowercase(), o.dir().to_string());
        let entry = found.entry(key).or_insert_with(|| (id, Found::default()));
        match name {
            ObjectName::Metadata { .. } => entry.1.metadata = Some(o),
            ObjectName::Part { .. } | ObjectName::Whole { .. } => entry.1.data.push(o),
        }
    }
    let backups = found
        .into_iter()
        .map(|((_, _, dir), (id, f))| {
            let mut problems = Vec::new();
            let whole = f.data.len() == 1 && matches!(classify_path(&f.data[0].key), Some(ObjectName::Whole { .. }));
            let parts = if f.data.is_empty() {
                let name = f.metadata.as_ref().map(|m| m.name().to_string()).unwrap_or_default();
                problems.push(format!("metadata {name} without parts (deleted, or never uploaded)"));
                Vec::new()
            } else {
                let candidates =
                    f.data.iter().map(|o| Candidate { name: o.key.clone(), size: o.size, item: o.clone() }).collect();
                match plan(candidates) {
                    Ok(p) => p.parts.into_iter().map(|p| p.item).collect(),
                    Err(ps) => {
                        problems.extend(ps.iter().map(|p| p.to_string()));
                        let mut data = f.data;
                        data.sort_by_key(|o| match classify_path(&o.key) {
                            Some(ObjectName::Part { index, .. }) => (index, o.key.clone()),
                            _ => (0, o.key.clone()),
                        });
                        data
                    }
                }
            };
            if requires_metadata && !whole && !parts.is_empty() && f.metadata.is_none() {
                problems.push(format!("no metadata {id}.json (upload unfinished or interrupted?)"));
            }
            Backup { id, dir, parts, whole, metadata: f.metadata, problems }
        })
        .collect();
    (backups, skipped)
}

/// Keeps the backups a location selects.
pub fn select(backups: Vec<Backup>, loc: &Location) -> Vec<Backup> {
    backups
        .into_iter()
        .filter(|b| match &loc.selection {
            Selection::All => b.dir.starts_with(&loc.dir),
            Selection::Prefix(_) => b.key_prefix().starts_with(&loc.list_prefix()),
            Selection::Instance(u) => b.dir == loc.dir && b.id.instance.eq_ignore_ascii_case(u),
            Selection::Backup(id) => {
                b.dir == loc.dir && b.id.millis == id.millis && b.id.instance.eq_ignore_ascii_case(&id.instance)
            }
        })
        .collect()
}

/// What a bucket holds for one instance.
#[derive(Debug, Clone)]
pub struct InstanceSummary {
    pub instance: String,
    pub dir: String,
    pub backups: usize,
    pub complete: usize,
    pub newest: BackupId,
    pub newest_complete: Option<BackupId>,
}

/// One summary per instance (and folder), the instance with the newest backup last.
pub fn instances(backups: &[Backup]) -> Vec<InstanceSummary> {
    let mut by: BTreeMap<(String, String), InstanceSummary> = BTreeMap::new();
    for b in backups {
        let s = by.entry((b.dir.clone(), b.id.instance.to_ascii_lowercase())).or_insert_with(|| InstanceSummary {
            instance: b.id.instance.clone(),
            dir: b.dir.clone(),
            backups: 0,
            complete: 0,
            newest: b.id.clone(),
            newest_complete: None,
        });
        s.backups += 1;
        if b.id.millis >= s.newest.millis {
            s.newest = b.id.clone();
        }
        if b.complete() {
            s.complete += 1;
            if s.newest_complete.as_ref().is_none_or(|n| b.id.millis >= n.millis) {
                s.newest_complete = Some(b.id.clone());
            }
        }
    }
    let mut out: Vec<InstanceSummary> = by.into_values().collect();
    out.sort_by(|a, b| (a.newest.millis, &a.instance, &a.dir).cmp(&(b.newest.millis, &b.instance, &b.dir)));
    out
}

/// The newest complete backup, if any.
pub fn latest_complete(backups: &[Backup]) -> Option<&Backup> {
    backups.iter().filter(|b| b.complete()).max_by_key(|b| b.id.millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "b6f4c071-ef44-4af2-9608-531b4ce4823f";
    const V: &str = "0a1b2c3d-0000-4000-8000-00000000000a";

    fn o(key: &str, size: u64) -> Object {
        Object::new(key, size, None)
    }

    #[test]
    fn etags() {
        assert_eq!(
            md5_of_etag("\"d41d8cd98f00b204e9800998ecf8427e\"").map(|m| hex(&m)),
            Some("d41d8cd98f00b204e9800998ecf8427e".into())
        );
        assert_eq!(md5_of_etag("d41d8cd98f00b204e9800998ecf8427e-3"), None);
        assert_eq!(md5_of_etag("0x8DC3A1B2C3D4E5F"), None);
        let ob = Object::new("a/b/c", 1, Some("\"x\"".into()));
        assert_eq!((ob.name(), ob.dir(), ob.etag.as_deref()), ("c", "a/b/", Some("x")));
    }

    #[test]
    fn groups_and_checks() {
        let objs = vec![
            o(&format!("{U}-2000-1"), 10),
            o(&format!("{U}-2000-0"), 10),
            o(&format!("{U}-2000-2"), 3),
            o(&format!("{U}-2000.json"), 99),
            o(&format!("{U}-1000-0"), 10),
            o(&format!("{U}-1000-2"), 3),
            o(&format!("{U}-1000.json"), 99),
            o(&format!("{U}-3000-0"), 10),
            o(&format!("{U}-500.json"), 99),
            o(&format!("{V}-4000"), 77),
            o("README.txt", 1),
        ];
        let bs = group(objs, true);
        let ids: Vec<u64> = bs.iter().map(|b| b.id.millis).collect();
        assert_eq!(ids, vec![500, 1000, 2000, 3000, 4000]);
        assert!(bs[0].problems[0].contains("without parts"), "{:?}", bs[0].problems);
        assert!(bs[1].problems[0].contains("missing part 1"), "{:?}", bs[1].problems);
        assert!(bs[2].complete());
        let names: Vec<&str> = bs[2].parts.iter().map(|p| p.name()).collect();
        assert_eq!(names, vec![format!("{U}-2000-0"), format!("{U}-2000-1"), format!("{U}-2000-2")]);
        assert_eq!(bs[2].total_size(), 23);
        assert!(bs[3].problems[0].contains("no metadata"));
        assert!(bs[4].complete() && bs[4].whole);
        assert_eq!(latest_complete(&bs).unwrap().id.millis, 4000);
        let inst = instances(&bs);
        assert_eq!(inst.len(), 2);
        assert_eq!((inst[0].instance.as_str(), inst[0].backups, inst[0].complete), (U, 4, 1));
        assert_eq!(inst[0].newest.millis, 3000);
        assert_eq!(inst[0].newest_complete.as_ref().unwrap().millis, 2000);
        let loc = Location::parse(&format!("s3://b/{U}")).unwrap();
        assert_eq!(select(bs.clone(), &loc).len(), 4);
        let loc = Location::parse(&format!("s3://b/{U}-200")).unwrap();
        assert_eq!(select(bs.clone(), &loc).len(), 0);
        let loc = Location::parse(&format!("s3://b/{U}-2000")).unwrap();
        assert_eq!(select(bs.clone(), &loc).len(), 1);
        let bs = group(vec![o(&format!("{U}-1000-0"), 10)], false);
        assert!(bs[0].complete());
    }
}
