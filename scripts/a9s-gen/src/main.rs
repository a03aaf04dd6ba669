//! The packaging tool: names the programs, and generates their man pages and shell completions from their
//! clap definitions.
//!
//!   a9s-gen list                     the programs, one a line (what the install scripts install)
//!   a9s-gen man DIR                  writes DIR/<program>.1
//!   a9s-gen completions SHELL DIR    bash, zsh or fish, under the names each shell looks for

use std::path::Path;

use clap_complete::Shell;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["list"] => {
            a9s_gen::all().iter().for_each(|p| println!("{}", p.name));
            Ok(())
        }
        ["man", dir] => man(Path::new(dir)),
        ["completions", shell, dir] => completions(shell, Path::new(dir)),
        _ => Err("usage: a9s-gen list | a9s-gen man DIR | a9s-gen completions bash|zsh|fish DIR".to_string()),
    };
    if let Err(e) = result {
        eprintln!("a9s-gen: {e}");
        std::process::exit(2);
    }
}

fn man(dir: &Path) -> Result<(), String> {
    for p in a9s_gen::all() {
        let path = dir.join(format!("{}.1", p.name));
        std::fs::write(&path, (p.man_page)()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn completions(shell: &str, dir: &Path) -> Result<(), String> {
    let shell = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        other => return Err(format!("unknown shell {other}: bash, zsh or fish")),
    };
    for p in a9s_gen::all() {
        let file = match shell {
            Shell::Bash => p.name.to_string(),
            Shell::Zsh => format!("_{}", p.name),
            _ => format!("{}.fish", p.name),
        };
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut (p.command)(), p.name, &mut out);
        let path = dir.join(file);
        std::fs::write(&path, out).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
