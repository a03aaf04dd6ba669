//! a9s-cat-parts against parts made by the real `split`.

use std::path::{Path, PathBuf};

use a9s_tests::fixtures::{backup_id, random_bytes, split_into_parts};
use a9s_tests::{assert_status, cmd, stderr};

fn make(dir: &Path, len: usize, part: usize, first: u64) -> (Vec<u8>, Vec<PathBuf>) {
    let data = random_bytes(len, len as u64);
    let parts = split_into_parts(&data, dir, &backup_id(), part, first);
    (data, parts)
}

fn run(args: &[&Path]) -> std::process::Output {
    cmd("a9s-cat-parts").args(args).output().unwrap()
}

#[test]
fn joins_more_than_ten_parts_in_natural_order_whatever_the_argument_order() {
    for first in [0, 1] {
        let dir = tempfile::tempdir().unwrap();
        let (data, parts) = make(dir.path(), 12 * 1000 + 17, 1000, first);
        assert_eq!(parts.len(), 13);
        // Glob order: lexical, `-10` before `-2`.
        let mut glob: Vec<&Path> = parts.iter().map(|p| p.as_path()).collect();
        glob.sort_by_key(|p| p.to_string_lossy().into_owned());
        let out = run(&glob);
        assert_status(&out, 0);
        assert!(out.stdout == data, "glob order, first index {first}");
        // Shuffled.
        let mut shuffled = glob.clone();
        shuffled.reverse();
        shuffled.swap(2, 9);
        let out = run(&shuffled);
        assert_status(&out, 0);
        assert!(out.stdout == data, "shuffled, first index {first}");
        // To a file with -o.
        let dst = dir.path().join("out.bin");
        let out = cmd("a9s-cat-parts").arg("-o").arg(&dst).args(&shuffled).output().unwrap();
        assert_status(&out, 0);
        assert!(std::fs::read(&dst).unwrap() == data);
    }
}

#[test]
fn a_whole_backup_alone_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(backup_id());
    let data = random_bytes(5000, 7);
    std::fs::write(&path, &data).unwrap();
    let out = run(&[&path]);
    assert_status(&out, 0);
    assert!(out.stdout == data);
}

#[test]
fn refuses_a_gap_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (_, parts) = make(dir.path(), 15 * 100 - 3, 100, 0);
    let given: Vec<&Path> =
        parts.iter().filter(|p| !p.to_string_lossy().ends_with("-3")).map(|p| p.as_path()).collect();
    let out = run(&given);
    assert_status(&out, 1);
    assert!(out.stdout.is_empty());
    assert_eq!(stderr(&out), format!("a9s-cat-parts: missing part 3 of {}: have 0-2, 4-14\n", backup_id()));
    // A missing first part (numbering starts at 0 or 1, so part 1 is the one surely missing).
    let out = run(&[&parts[2], &parts[3]]);
    assert_status(&out, 1);
    assert!(stderr(&out).contains("missing part 1 of"), "{}", stderr(&out));
}

#[test]
fn refuses_duplicate_indices() {
    let dir = tempfile::tempdir().unwrap();
    let (_, parts) = make(dir.path(), 350, 100, 0);
    let dup = dir.path().join(format!("{}-02", backup_id()));
    std::fs::copy(&parts[2], &dup).unwrap();
    let mut given: Vec<&Path> = parts.iter().map(|p| p.as_path()).collect();
    given.push(&dup);
    let out = run(&given);
    assert_status(&out, 1);
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains("part 2 of") && err.contains("given 2 times") && err.contains("-02, "), "{err}");
    assert!(err.trim_end().ends_with(&format!("{}-2", backup_id())), "{err}");
}

#[test]
fn refuses_parts_of_two_backups_and_names_that_are_not_parts() {
    let dir = tempfile::tempdir().unwrap();
    let (_, parts) = make(dir.path(), 350, 100, 0);
    let other = dir.path().join("b6f4c071-ef44-4af2-9608-531b4ce4823f-1600000000000-4");
    std::fs::write(&other, b"x").unwrap();
    let mut given: Vec<&Path> = parts.iter().map(|p| p.as_path()).collect();
    given.push(&other);
    let out = run(&given);
    assert_status(&out, 1);
    assert!(stderr(&out).contains("parts of 2 backups"), "{}", stderr(&out));

    let stray = dir.path().join("notes.txt");
    std::fs::write(&stray, b"x").unwrap();
    let out = run(&[&parts[0], &stray]);
    assert_status(&out, 1);
    assert!(stderr(&out).contains("notes.txt is not a backup part"), "{}", stderr(&out));

    let meta = dir.path().join(format!("{}.json", backup_id()));
    std::fs::write(&meta, b"{}").unwrap();
    let out = run(&[&parts[0], &meta]);
    assert_status(&out, 1);
    assert!(stderr(&out).contains("metadata"), "{}", stderr(&out));
}

#[test]
fn refuses_a_truncated_part_in_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let (_, parts) = make(dir.path(), 1050, 100, 1);
    let f = std::fs::OpenOptions::new().write(true).open(&parts[4]).unwrap();
    f.set_len(60).unwrap();
    let given: Vec<&Path> = parts.iter().map(|p| p.as_path()).collect();
    let out = run(&given);
    assert_status(&out, 1);
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains(&format!("{}-5 is 60 bytes but the other parts are 100", backup_id())), "{err}");
}

#[test]
fn refuses_an_unreadable_part() {
    let dir = tempfile::tempdir().unwrap();
    let (_, parts) = make(dir.path(), 350, 100, 0);
    // Root reads every file, so unreadability is made with a dangling link.
    std::fs::remove_file(&parts[1]).unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone"), &parts[1]).unwrap();
    let given: Vec<&Path> = parts.iter().map(|p| p.as_path()).collect();
    let out = run(&given);
    assert_status(&out, 1);
    assert!(stderr(&out).contains("cannot read") && stderr(&out).contains("-1"), "{}", stderr(&out));
}

#[test]
fn list_shows_the_plan_and_the_total() {
    let dir = tempfile::tempdir().unwrap();
    let (_, parts) = make(dir.path(), 1105, 100, 0);
    let mut given: Vec<&Path> = parts.iter().map(|p| p.as_path()).collect();
    given.reverse();
    let out = cmd("a9s-cat-parts").arg("--list").args(&given).output().unwrap();
    assert_status(&out, 0);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 13, "{text}");
    assert!(lines[0].trim_start().starts_with("0 ") && lines[11].trim_start().starts_with("11 "), "{text}");
    assert!(lines[12].starts_with("total: 12 parts of") && lines[12].contains("1105 bytes"), "{text}");

    let out = cmd("a9s-cat-parts").args(["--list", "--json"]).args(&given).output().unwrap();
    assert_status(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total_size"], 1105);
    assert_eq!(v["parts"].as_array().unwrap().len(), 12);
    assert_eq!(v["created"], "2019-01-31T20:52:27.154Z");
}

#[test]
fn refuses_to_write_to_a_terminal_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (_, parts) = make(dir.path(), 250, 100, 0);
    let bin = a9s_tests::bin("a9s-cat-parts");
    let script = format!("{} {} {} {}", bin.display(), parts[0].display(), parts[1].display(), parts[2].display());
    // `script` gives the program a pseudo-terminal as stdout.
    let out = std::process::Command::new("script").args(["-qec", &script, "/dev/null"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("refusing to write backup data to a terminal"));

    let out = cmd("a9s-cat-parts").output().unwrap();
    assert_status(&out, 2);
    let out = cmd("a9s-cat-parts").arg("--bogus").output().unwrap();
    assert_status(&out, 2);
}
