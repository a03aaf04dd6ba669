//! Ordering and validation of the parts of one backup.
//!
//! `cat $(ls -1v <id>-*)` trusts whatever the glob finds. Here the whole set is checked before a byte is
//! written: one backup only, every name a part, no index twice, no gap, every part but the last of full
//! size. The same check serves local files (a9s-cat-parts) and object listings (a9s-ls, a9s-fetch).

use std::collections::BTreeMap;
use std::fmt;

use crate::naming::{BackupId, ObjectName};

/// One candidate: a name as given (path or key), its size, and whatever the caller needs back.
#[derive(Debug, Clone)]
pub struct Candidate<T> {
    pub name: String,
    pub size: u64,
    pub item: T,
}

/// One part in its place in the backup.
#[derive(Debug, Clone)]
pub struct Part<T> {
    pub name: String,
    /// `None` for a whole backup in one object.
    pub index: Option<u64>,
    pub size: u64,
    pub item: T,
}

/// A checked backup: its parts in natural order.
#[derive(Debug, Clone)]
pub struct Plan<T> {
    pub id: BackupId,
    pub parts: Vec<Part<T>>,
}

impl<T> Plan<T> {
    pub fn total_size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

/// What is wrong with a set of parts. Each names the parts concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Nothing was given.
    Empty,
    /// A name outside the naming model.
    NotAPart { name: String },
    /// `<id>.json` where parts were expected.
    Metadata { name: String },
    /// Parts of more than one backup.
    SeveralBackups { ids: Vec<String> },
    /// The same index under two names (`-2` and `-02`) or twice.
    Duplicate { id: String, index: u64, names: Vec<String> },
    /// Indices missing from the run (or before it: the first part is 0 or 1).
    Missing { id: String, missing: Vec<u64>, have: Vec<u64> },
    /// A part other than the last is shorter than the others: a truncated download.
    Short { name: String, size: u64, expected: u64 },
    /// The last part is larger than the others: the others were cut short, or parts of two splits mix.
    LastLarger { name: String, size: u64, expected: u64 },
    /// An empty part.
    EmptyPart { name: String },
    /// A whole backup (`<id>`) given together with parts of the same backup.
    WholeAndParts { id: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => write!(f, "no parts given"),
            Problem::NotAPart { name } => {
                write!(f, "{name} is not a backup part (expected <instance-uuid>-<milliseconds>-<index>)")
            }
            Problem::Metadata { name } => write!(f, "{name} is backup metadata, not a part: leave it out"),
            Problem::SeveralBackups { ids } => {
                write!(f, "parts of {} backups given ({}): pass the parts of one backup", ids.len(), ids.join(", "))
            }
            Problem::Duplicate { id, index, names } => {
                write!(f, "part {index} of {id} given {} times: {}", names.len(), names.join(", "))
            }
            Problem::Missing { id, missing, have } => {
                let which = if missing.len() == 1 { "part" } else { "parts" };
                write!(f, "missing {which} {} of {id}: have {}", ranges(missing), ranges(have))
            }
            Problem::Short { name, size, expected } => write!(
                f,
                "{name} is {size} bytes but the other parts are {expected}: truncated download? fetch it again"
            ),
            Problem::LastLarger { name, size, expected } => write!(
                f,
                "the last part {name} is {size} bytes, larger than the others ({expected}): the others are cut short or from another split"
            ),
            Problem::EmptyPart { name } => write!(f, "{name} is empty: fetch it again"),
            Problem::WholeAndParts { id } => {
                write!(f, "{id} given both as one whole file and as parts: pass one or the other")
            }
        }
    }
}

/// Formats sorted indices as ranges: `0-2, 4-14`.
pub fn ranges(indices: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    if out.is_empty() {
        "none".to_string()
    } else {
        out.join(", ")
    }
}

/// A candidate with its index: `None` for a whole backup in one object.
type Indexed<T> = (Option<u64>, Candidate<T>);

/// Checks a set of candidates and orders them. All problems found are returned, most fundamental first.
pub fn plan<T>(candidates: Vec<Candidate<T>>) -> Result<Plan<T>, Vec<Problem>> {
    if candidates.is_empty() {
        return Err(vec![Problem::Empty]);
    }
    let mut problems = Vec::new();
    let mut by_id: BTreeMap<BackupId, Vec<Indexed<T>>> = BTreeMap::new();
    for c in candidates {
        match crate::naming::classify_path(&c.name) {
            Some(ObjectName::Part { id, index, .. }) => by_id.entry(id).or_default().push((Some(index), c)),
            Some(ObjectName::Whole { id }) => by_id.entry(id).or_default().push((None, c)),
            Some(ObjectName::Metadata { .. }) => problems.push(Problem::Metadata { name: c.name }),
            None => problems.push(Problem::NotAPart { name: c.name }),
        }
    }
    if by_id.len() > 1 {
        problems.push(Problem::SeveralBackups { ids: by_id.keys().map(|id| id.to_string()).collect() });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let (id, entries) = by_id.into_iter().next().expect("one backup");
    let wholes = entries.iter().filter(|(ix, _)| ix.is_none()).count();
    if wholes > 0 && wholes < entries.len() {
        return Err(vec![Problem::WholeAndParts { id: id.to_string() }]);
    }
    if wholes > 0 {
        let mut entries = entries;
        if entries.len() > 1 {
            let names = entries.iter().map(|(_, c)| c.name.clone()).collect();
            return Err(vec![Problem::Duplicate { id: id.to_string(), index: 0, names }]);
        }
        let (_, c) = entries.pop().expect("one entry");
        if c.size == 0 {
            return Err(vec![Problem::EmptyPart { name: c.name }]);
        }
        return Ok(Plan { id, parts: vec![Part { name: c.name, index: None, size: c.size, item: c.item }] });
    }
    let mut by_index: BTreeMap<u64, Vec<Candidate<T>>> = BTreeMap::new();
    for (ix, c) in entries {
        by_index.entry(ix.expect("parts only")).or_default().push(c);
    }
    for (index, cs) in &by_index {
        if cs.len() > 1 {
            let mut names: Vec<String> = cs.iter().map(|c| c.name.clone()).collect();
            names.sort();
            problems.push(Problem::Duplicate { id: id.to_string(), index: *index, names });
        }
    }
    let have: Vec<u64> = by_index.keys().copied().collect();
    let first = have[0];
    let last = *have.last().expect("nonempty");
    // The first index is 0 or 1; a set starting later lacks its head. Count from 1 then, since 0 is optional.
    let start = if first == 0 { 0 } else { 1 };
    let missing: Vec<u64> = (start..=last).filter(|i| !by_index.contains_key(i)).collect();
    if !missing.is_empty() {
        problems.push(Problem::Missing { id: id.to_string(), missing, have: have.clone() });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let parts: Vec<Part<T>> = by_index
        .into_iter()
        .map(|(index, mut cs)| {
            let c = cs.pop().expect("one candidate");
            Part { name: c.name, index: Some(index), size: c.size, item: c.item }
        })
        .collect();
    let (last_part, body) = parts.split_last().expect("nonempty");
    let expected = body.iter().map(|p| p.size).max().unwrap_or(last_part.size);
    for p in body {
        if p.size == 0 {
            problems.push(Problem::EmptyPart { name: p.name.clone() });
        } else if p.size < expected {
            problems.push(Problem::Short { name: p.name.clone(), size: p.size, expected });
        }
    }
    if last_part.size == 0 {
        problems.push(Problem::EmptyPart { name: last_part.name.clone() });
    } else if last_part.size > expected {
        problems.push(Problem::LastLarger { name: last_part.name.clone(), size: last_part.size, expected });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Plan { id, parts })
}

/// One line for a list of problems: the first in full, and how many more there are.
pub fn describe(problems: &[Problem]) -> String {
    match problems {
        [] => "no problem".to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => {
            format!("{first} (and {} more problem{})", rest.len(), if rest.len() == 1 { "" } else { "s" })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "b6f4c071-ef44-4af2-9608-531b4ce4823f-1548967947154";

    fn cands(specs: &[(&str, u64)]) -> Vec<Candidate<()>> {
        specs.iter().map(|(n, s)| Candidate { name: n.to_string(), size: *s, item: () }).collect()
    }

    fn parts(indices: &[&str], size: u64, last: u64) -> Vec<Candidate<()>> {
        let n = indices.len();
        indices
            .iter()
            .enumerate()
            .map(|(i, ix)| Candidate {
                name: format!("{ID}-{ix}"),
                size: if i + 1 == n { last } else { size },
                item: (),
            })
            .collect()
    }

    #[test]
    fn orders_naturally_whatever_the_input_order() {
        let mut c = parts(&["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"], 100, 7);
        c.reverse();
        c.swap(0, 5); // the last part is no longer last in the input
                      // Sizes belong to names, so recompute: index 11 is the short one.
        for x in &mut c {
            x.size = if x.name.ends_with("-11") { 7 } else { 100 };
        }
        let p = plan(c).unwrap();
        let order: Vec<u64> = p.parts.iter().map(|p| p.index.unwrap()).collect();
        assert_eq!(order, (0..12).collect::<Vec<_>>());
        assert_eq!(p.total_size(), 11 * 100 + 7);
    }

    #[test]
    fn first_index_may_be_one() {
        let p = plan(parts(&["1", "2", "3"], 10, 10)).unwrap();
        assert_eq!(p.parts[0].index, Some(1));
    }

    #[test]
    fn names_the_gap() {
        let idx: Vec<String> = (0..15).filter(|i| *i != 3).map(|i| i.to_string()).collect();
        let idx: Vec<&str> = idx.iter().map(|s| s.as_str()).collect();
        let e = plan(parts(&idx, 10, 5)).unwrap_err();
        assert_eq!(describe(&e), format!("missing part 3 of {ID}: have 0-2, 4-14"));
        let e = plan(parts(&["2", "3"], 10, 5)).unwrap_err();
        assert_eq!(describe(&e), format!("missing part 1 of {ID}: have 2-3"));
    }

    #[test]
    fn refuses_duplicates() {
        let e = plan(parts(&["0", "1", "2", "02"], 10, 10)).unwrap_err();
        assert_eq!(
            e,
            vec![Problem::Duplicate { id: ID.into(), index: 2, names: vec![format!("{ID}-02"), format!("{ID}-2")] }]
        );
    }

    #[test]
    fn refuses_foreign_and_mixed() {
        let other = "b6f4c071-ef44-4af2-9608-531b4ce4823f-1548967999999";
        let e = plan(cands(&[(&format!("{ID}-0"), 1), (&format!("{other}-1"), 1)])).unwrap_err();
        assert!(matches!(&e[0], Problem::SeveralBackups { ids } if ids.len() == 2));
        let e = plan(cands(&[(&format!("{ID}-0"), 1), ("notes.txt", 1)])).unwrap_err();
        assert_eq!(e, vec![Problem::NotAPart { name: "notes.txt".into() }]);
        let e = plan(cands(&[(&format!("{ID}-0"), 1), (&format!("dir/{ID}.json"), 1)])).unwrap_err();
        assert!(matches!(&e[0], Problem::Metadata { .. }));
        let e = plan(cands(&[(&format!("{ID}-0"), 1), (ID, 1)])).unwrap_err();
        assert!(matches!(&e[0], Problem::WholeAndParts { .. }));
        assert_eq!(plan::<()>(vec![]).unwrap_err(), vec![Problem::Empty]);
    }

    #[test]
    fn refuses_short_parts() {
        let mut c = parts(&["0", "1", "2", "3"], 100, 50);
        c[1].size = 99;
        let e = plan(c).unwrap_err();
        assert_eq!(e, vec![Problem::Short { name: format!("{ID}-1"), size: 99, expected: 100 }]);
        let e = plan(parts(&["0", "1"], 100, 101)).unwrap_err();
        assert!(matches!(&e[0], Problem::LastLarger { .. }));
        let e = plan(parts(&["0", "1"], 100, 0)).unwrap_err();
        assert!(matches!(&e[0], Problem::EmptyPart { .. }));
    }

    #[test]
    fn whole_backup() {
        let p = plan(cands(&[(&format!("/tmp/{ID}"), 42)])).unwrap();
        assert_eq!(p.parts.len(), 1);
        assert_eq!(p.parts[0].index, None);
        assert_eq!(p.id.to_string(), ID);
    }

    #[test]
    fn ranges_format() {
        assert_eq!(ranges(&[0, 1, 2, 4, 5, 7]), "0-2, 4-5, 7");
        assert_eq!(ranges(&[]), "none");
    }
}
