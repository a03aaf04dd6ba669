//! The README's first screen: install (with man pages and completions), uninstall, and the demo.

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn bin_dir() -> std::path::PathBuf {
    a9s_tests::bin("a9s-cat-parts").parent().unwrap().to_path_buf()
}

#[test]
fn install_puts_programs_man_pages_and_completions_in_place_and_uninstall_removes_them() {
    let dest = tempfile::tempdir().unwrap();
    let profile = bin_dir().file_name().unwrap().to_string_lossy().into_owned();
    let env = |c: &mut Command| {
        c.env("DESTDIR", dest.path())
            .env("PREFIX", "/usr/local")
            .env("A9S_SKIP_BUILD", "1")
            .env("A9S_PROFILE", &profile);
        c.env("CARGO_TARGET_DIR", bin_dir().parent().unwrap());
    };
    let mut c = Command::new("bash");
    c.arg(repo().join("scripts/install"));
    env(&mut c);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = dest.path().join("usr/local");
    for p in a9s_gen::all() {
        for f in [
            format!("bin/{}", p.name),
            format!("share/man/man1/{}.1", p.name),
            format!("share/bash-completion/completions/{}", p.name),
            format!("share/zsh/site-functions/_{}", p.name),
            format!("share/fish/vendor_completions.d/{}.fish", p.name),
        ] {
            assert!(root.join(&f).exists(), "{f} not installed");
        }
        let v = Command::new(root.join("bin").join(p.name)).arg("--version").output().unwrap();
        let v = String::from_utf8_lossy(&v.stdout);
        // The version and the commit it was built from: "a9s-x 0.1.0 (1a2b3c4d5e6f)".
        assert!(v.starts_with(&format!("{} {} (", p.name, env!("CARGO_PKG_VERSION"))), "{v}");
    }
    // `man a9s-decrypt` finds the page.
    let out = Command::new("man")
        .args(["-w", "a9s-decrypt"])
        .env("MANPATH", root.join("share/man"))
        .output()
        .expect("man-db is installed by the README's test command");
    assert!(out.status.success(), "man -w a9s-decrypt: {}", String::from_utf8_lossy(&out.stderr));
    assert!(root.join("share/man/man7/a9s-recovery.7").exists());

    let mut c = Command::new("bash");
    c.arg(repo().join("scripts/uninstall"));
    env(&mut c);
    assert!(c.status().unwrap().success());
    let left: Vec<_> = walk(&root).into_iter().filter(|p| p.is_file()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn the_demo_restores_a_backup_end_to_end() {
    let out = Command::new("bash").arg(repo().join("scripts/demo")).env("A9S_BIN", bin_dir()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{err}");
    // All six programs ran, shown as commands, on a backup of several parts; no colour codes off a terminal.
    for p in a9s_gen::all() {
        assert!(
            err.contains(&format!("$ {} ", p.name)) || err.contains(&format!("| {} ", p.name)),
            "{} not run:\n{err}",
            p.name
        );
    }
    assert!(err.contains("$ a9s-fetch --latest store/"), "{err}");
    let parts: usize =
        err.split("fetched (").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(parts >= 3, "the demo's backup must have at least 3 parts:\n{err}");
    assert!(err.trim_end().ends_with("repmgr reset") && err.contains("demo: OK"), "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes on a non-terminal:\n{err}");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("2 backups (2 complete)") && out.contains("emptied repmgr.nodes (2 rows)"), "{out}");
}

#[test]
fn install_says_how_to_reach_programs_and_pages_and_uninstall_removes_what_mandb_made() {
    let prefix = tempfile::tempdir().unwrap();
    let profile = bin_dir().file_name().unwrap().to_string_lossy().into_owned();
    let script = |name: &str, path: &str| {
        let mut c = Command::new("bash");
        c.arg(repo().join("scripts").join(name))
            .env_remove("DESTDIR")
            .env("PREFIX", prefix.path())
            .env("A9S_SKIP_BUILD", "1")
            .env("A9S_PROFILE", &profile)
            .env("CARGO_TARGET_DIR", bin_dir().parent().unwrap())
            .env("PATH", path)
            // MANPATH set: man-db no longer looks beside PATH, so the pages need it.
            .env("MANPATH", "/usr/share/man");
        let out = c.output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let p = prefix.path().display().to_string();
    let said = script("install", "/usr/bin:/bin");
    assert!(said.contains(&format!("export PATH=\"{p}/bin:$PATH\"")), "{said}");
    assert!(said.contains(&format!("export MANPATH=\"{p}/share/man:$MANPATH\"")), "{said}");
    // Already reachable: nothing to say.
    let said = script("install", &format!("{p}/bin:/usr/bin:/bin"));
    assert!(!said.contains("export PATH") && said.contains("export MANPATH"), "{said}");
    let mandb = Command::new("sh").args(["-c", "command -v mandb"]).output().unwrap().status.success();
    if mandb {
        assert!(prefix.path().join("share/man/index.db").exists(), "mandb made no index");
    }
    script("uninstall", "/usr/bin:/bin");
    let left: Vec<_> = walk(prefix.path()).into_iter().filter(|p| p.is_file()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!prefix.path().join("share/man/cat1").exists(), "mandb's cat1 left behind");
}

/// A folder for PATH holding only `tools` (links to the system's), and the fake programs `fakes` (name, sh script).
fn path_with(tools: &[&str], fakes: &[(&str, &str)]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for t in tools {
        let real = ["/usr/bin", "/bin"].iter().map(|d| Path::new(d).join(t)).find(|p| p.exists()).unwrap();
        std::os::unix::fs::symlink(real, dir.path().join(t)).unwrap();
    }
    for (name, script) in fakes {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// Runs scripts/`name` with PATH only `path`; returns (status, stderr).
fn script_on_path(name: &str, path: &Path, prefix: &Path) -> (Option<i32>, String) {
    let out = Command::new("/bin/bash")
        .arg(repo().join("scripts").join(name))
        .env("PATH", path)
        .env("PREFIX", prefix)
        .env_remove("CC")
        .env_remove("A9S_BIN")
        .env_remove("A9S_SKIP_BUILD")
        .env_remove("DESTDIR")
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn install_and_demo_name_every_missing_prerequisite_before_building() {
    let prefix = tempfile::tempdir().unwrap();
    // Nothing of the build on PATH: all of it named in one line, status 1, nothing installed.
    let bare = path_with(&["dirname"], &[]);
    let (code, err) = script_on_path("install", bare.path(), prefix.path());
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("scripts/install: missing: cargo 1.85 or later"), "{err}");
    assert!(err.contains("a C compiler, cc (Debian: build-essential)") && err.contains("pkg-config"), "{err}");
    assert!(walk(prefix.path()).is_empty(), "installed something: {:?}", walk(prefix.path()));

    // An old cargo and no OpenSSL headers by pkg-config; a C compiler is there.
    let old = path_with(
        &["dirname"],
        &[("cargo", "echo 'cargo 1.70.0 (ec8a8a0ca 2023-04-25)'"), ("cc", "exit 0"), ("pkg-config", "exit 1")],
    );
    let (code, err) = script_on_path("install", old.path(), prefix.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cargo 1.85 or later (found 1.70.0: rustup update)"), "{err}");
    assert!(err.contains("OpenSSL's headers (Debian: libssl-dev)"), "{err}");
    assert!(!err.contains("C compiler"), "{err}");

    // The demo, which must build (no programs on PATH), names the build's needs and its own tools together.
    let (code, err) = script_on_path("demo", bare.path(), prefix.path());
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("scripts/demo: missing: cargo 1.85 or later"), "{err}");
    for tool in ["pkg-config", "python3", "openssl", "gzip"] {
        assert!(err.contains(tool), "{tool} not named: {err}");
    }
}
