//! The committed man pages under man/ must match what the code generates: NAME, SYNOPSIS and OPTIONS come
//! from the clap definitions, the rest from each crate's man.roff. `A9S_BLESS=1` rewrites them.

use std::path::PathBuf;

fn pages() -> Vec<(&'static str, String)> {
    a9s_gen::all().into_iter().map(|p| (p.name, (p.man_page)())).collect()
}

fn man_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../man")
}

#[test]
fn man_pages_are_current() {
    let bless = std::env::var_os("A9S_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, page) in pages() {
        let path = man_dir().join(format!("{name}.1"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != page {
            if bless {
                std::fs::write(&path, &page).expect("write man page");
            } else {
                stale.push(name);
            }
        }
    }
    assert!(stale.is_empty(), "stale man pages {stale:?}: run `A9S_BLESS=1 cargo test -p a9s-tests --test man_pages`");
}

#[test]
fn man_pages_render_and_have_every_section() {
    for (name, page) in pages() {
        for section in
            ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "\"EXIT STATUS\"", "ENVIRONMENT", "EXAMPLES", "\"SEE ALSO\""]
        {
            assert!(page.contains(&format!(".SH {section}")), "{name}: no {section} section");
        }
        assert!(roff_text(&page).contains("a9s-recovery (7)"), "{name}: SEE ALSO lacks a9s-recovery(7)");
        // man -l renders it without complaint (groff warnings go to stderr).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{name}.1"));
        std::fs::write(&path, &page).unwrap();
        let out = std::process::Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(&path)
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_STDERR", "1")
            .output();
        if let Ok(out) = out {
            assert!(out.status.success(), "{name}: man -l failed: {}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("EXIT STATUS"), "{name}: rendered page lacks EXIT STATUS");
            let warnings = String::from_utf8_lossy(&out.stderr);
            assert!(warnings.trim().is_empty(), "{name}: groff warnings: {warnings}");
        } else {
            panic!("man is not installed: run the README's test command, which installs man-db");
        }
    }
}

/// Plain text of roff: escapes and fonts removed, enough to read command lines.
fn roff_text(s: &str) -> String {
    s.replace("\\-", "-")
        .replace("\\e", "\\")
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\fI", "")
        .replace("\\fP", "")
}

/// The command lines of a page: every line of its `.nf`/`.fi` and `.EX`/`.EE` blocks, with `\` continuations joined.
fn example_lines(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut current = String::new();
    for line in page.lines() {
        match line.trim() {
            ".nf" | ".EX" => in_block = true,
            ".fi" | ".EE" => in_block = false,
            l if in_block && !l.starts_with('.') => {
                let text = roff_text(l);
                match text.strip_suffix('\\') {
                    Some(head) => current += &format!("{head} "),
                    None => {
                        current += &text;
                        out.push(std::mem::take(&mut current));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_example_uses_options_that_exist() {
    let programs = a9s_gen::all();
    let mut pages: Vec<(String, String)> = programs.iter().map(|p| (p.name.to_string(), (p.man_page)())).collect();
    pages.push(("a9s-recovery.7".into(), std::fs::read_to_string(man_dir().join("a9s-recovery.7")).unwrap()));
    let mut checked = 0;
    for (page_name, page) in &pages {
        for line in example_lines(page) {
            let mut current: Option<clap::Command> = None;
            for token in line.split_whitespace() {
                if ["|", ";", "&&", "||"].contains(&token) || token.starts_with("$(") {
                    current = None;
                    continue;
                }
                if let Some(p) = programs.iter().find(|p| p.name == token) {
                    current = Some((p.command)());
                    continue;
                }
                let Some(cmd) = &current else { continue };
                if let Some(long) = token.strip_prefix("--") {
                    let long = long.split('=').next().unwrap();
                    if long.is_empty() {
                        continue;
                    }
                    let known =
                        long == "help" || long == "version" || cmd.get_arguments().any(|a| a.get_long() == Some(long));
                    assert!(known, "{page_name}: `{}` has no option --{long}, in example: {line}", cmd.get_name());
                    checked += 1;
                } else if let Some(short) = token.strip_prefix('-') {
                    if short.is_empty() || !short.chars().next().unwrap().is_ascii_alphabetic() || short.len() > 1 {
                        continue;
                    }
                    let c = short.chars().next().unwrap();
                    let known = cmd.get_arguments().any(|a| a.get_short() == Some(c));
                    assert!(known, "{page_name}: `{}` has no option -{c}, in example: {line}", cmd.get_name());
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} options found in examples: is the example parser broken?");
}

#[test]
fn the_overview_names_every_program_and_every_page_points_to_it() {
    let overview = roff_text(&std::fs::read_to_string(man_dir().join("a9s-recovery.7")).unwrap());
    for p in a9s_gen::all() {
        assert!(
            overview.contains(&format!("{} (1)", p.name)) || overview.contains(&format!("{}(1)", p.name)),
            "a9s-recovery(7) does not name {}",
            p.name
        );
        let page = roff_text(&(p.man_page)());
        assert!(page.contains("a9s-recovery (7)"), "{}: SEE ALSO lacks a9s-recovery(7)", p.name);
    }
    // It renders without warnings.
    let out = std::process::Command::new("man")
        .args(["--warnings", "-l"])
        .arg(man_dir().join("a9s-recovery.7"))
        .env("MANWIDTH", "100")
        .output()
        .expect("man is not installed: run the README's test command, which installs man-db");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).trim().is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A `--dry-run` example is a promise: the command line that follows it runs exactly what it previewed.
/// So every command line with `--dry-run` must be followed, as the page's next command line, by the same
/// command without `--dry-run` — the whole line, or the last program of a pipe (a dry run of a9s-pgrestore
/// reads no script, so it previews the restore pipe's last command).
#[test]
fn every_dry_run_is_followed_by_the_command_it_previews() {
    let mut pages: Vec<(String, String)> =
        a9s_gen::all().iter().map(|p| (p.name.to_string(), (p.man_page)())).collect();
    pages.push(("a9s-recovery.7".into(), std::fs::read_to_string(man_dir().join("a9s-recovery.7")).unwrap()));
    let mut previews = 0;
    for (page_name, page) in &pages {
        let lines = example_lines(page);
        for (i, line) in lines.iter().enumerate() {
            let tokens: Vec<&str> = line.split_whitespace().collect();
            if !tokens.contains(&"--dry-run") {
                continue;
            }
            previews += 1;
            let previewed: Vec<&str> = tokens.iter().copied().filter(|t| *t != "--dry-run").collect();
            let next = lines.get(i + 1).map(String::as_str).unwrap_or("");
            let next_tokens: Vec<&str> = next.split_whitespace().collect();
            let last_of_pipe = next_tokens.rsplit(|t| *t == "|").next().unwrap_or(&[]);
            assert!(
                next_tokens == previewed || last_of_pipe == previewed.as_slice(),
                "{page_name}: the dry run\n    {line}\nis followed by\n    {next}\ninstead of the command it previews:\n    {}",
                previewed.join(" ")
            );
        }
    }
    assert!(previews >= 4, "only {previews} --dry-run examples found: is the example parser broken?");
}

/// The statuses an EXIT STATUS section lists: the numbers of its `.TP` tags (`.B 4`, `.BR 130 ", " 143`).
fn page_statuses(page: &str) -> std::collections::BTreeSet<u32> {
    let section = page.split(".SH \"EXIT STATUS\"").nth(1).expect("an EXIT STATUS section");
    let section = section.split("\n.SH ").next().unwrap();
    let lines: Vec<&str> = section.lines().collect();
    let mut out = std::collections::BTreeSet::new();
    for w in lines.windows(2) {
        if w[0].trim() == ".TP" {
            for n in w[1].split(|c: char| !c.is_ascii_digit()).filter(|t| !t.is_empty()) {
                out.insert(n.parse().unwrap());
            }
        }
    }
    out
}

/// The one table of statuses in a9s-recovery(7) agrees with every program's own page: the statuses the guide
/// gives a program are exactly those its page documents.
#[test]
fn the_guide_has_every_programs_statuses() {
    let guide = std::fs::read_to_string(man_dir().join("a9s-recovery.7")).unwrap();
    let section = guide.split(".SH \"EXIT STATUS\"").nth(1).expect("the guide has an EXIT STATUS section");
    let table = section.split(".TS").nth(1).and_then(|t| t.split(".TE").next()).expect("a table of statuses");
    // Rows: `N[, M]@meaning@programs`, cells possibly spread over T{ … T} blocks.
    let text = table.replace("T{\n", "").replace("\nT}", "");
    let mut guide_has: std::collections::BTreeMap<String, std::collections::BTreeSet<u32>> = Default::default();
    let programs = a9s_gen::all();
    let mut rows = 0;
    // A row starts at a line whose first cell is a status.
    let mut current = String::new();
    let mut all_rows = Vec::new();
    for line in text.lines() {
        if line.chars().next().is_some_and(|c| c.is_ascii_digit()) && line.contains('@') && !current.is_empty() {
            all_rows.push(std::mem::take(&mut current));
        }
        if !current.is_empty() || line.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            current += line;
            current += " ";
        }
    }
    all_rows.push(current);
    for row in &all_rows {
        let cells: Vec<&str> = row.split('@').collect();
        assert_eq!(cells.len(), 3, "a row of three cells: {row}");
        let statuses: Vec<u32> = cells[0]
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .map(|t| t.parse().unwrap())
            .collect();
        let who = roff_text(cells[2]);
        for p in &programs {
            if who.trim() == "all" || who.split([',', ' ']).any(|w| w == p.name) {
                guide_has.entry(p.name.to_string()).or_default().extend(statuses.iter().copied());
            }
        }
        rows += 1;
    }
    assert!(rows >= 6, "only {rows} rows in the guide's table of statuses");
    for p in &programs {
        let documented = page_statuses(&(p.man_page)());
        let in_guide = guide_has.get(p.name).cloned().unwrap_or_default();
        assert_eq!(in_guide, documented, "{}: the guide's table of statuses differs from its page", p.name);
    }
}

/// One backup, pinned: once the guide has verified a backup, no later command picks "the newest" again (a
/// backup landing in between would be restored unchecked); they use the id the verify step printed.
#[test]
fn the_guide_never_fetches_latest_after_verifying() {
    let guide = std::fs::read_to_string(man_dir().join("a9s-recovery.7")).unwrap();
    let body = guide.split(".SH \"THE RECOVERY, STEP BY STEP\"").nth(1).expect("the steps");
    let lines = example_lines(body);
    let verify = lines.iter().position(|l| l.contains("a9s-pgrestore --list")).expect("a verify step");
    assert!(
        lines[..verify].iter().any(|l| l.starts_with("id=\"$(a9s-ls --latest ")),
        "the id is pinned before: {lines:?}"
    );
    for l in &lines[verify..] {
        assert!(!l.contains("--latest"), "after the verify step, a command picks the newest backup again: {l}");
        if l.contains("a9s-fetch ") {
            assert!(l.contains("$id"), "a fetch after the verify step does not use the pinned id: {l}");
        }
    }
}
