//! Man pages: NAME, SYNOPSIS and OPTIONS come from a program's clap definition, so they cannot drift from
//! the code; DESCRIPTION, EXIT STATUS, ENVIRONMENT, EXAMPLES and SEE ALSO are written by hand in roff, in the
//! program's crate, and appended. The pages are committed under `man/`; a test fails when one is stale
//! (`A9S_BLESS=1 cargo test -p a9s-tests man_pages` rewrites them).

/// Renders a complete page in section 1.
pub fn render(cmd: clap::Command, hand_written: &str) -> String {
    // The version in the title is the package version only: a commit hash there would make every commit
    // stale the committed pages.
    let cmd = cmd.version(env!("CARGO_PKG_VERSION"));
    let man =
        clap_mangen::Man::new(cmd).manual("a9s-recovery").source(concat!("a9s-recovery ", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out).expect("write to Vec");
    man.render_name_section(&mut out).expect("write to Vec");
    man.render_synopsis_section(&mut out).expect("write to Vec");
    let hand = hand_written.trim_end();
    // DESCRIPTION goes before OPTIONS, as in every man page; the rest after.
    let (description, rest) = split_description(hand);
    out.extend_from_slice(description.as_bytes());
    if !description.is_empty() {
        out.push(b'\n');
    }
    man.render_options_section(&mut out).expect("write to Vec");
    out.extend_from_slice(rest.as_bytes());
    out.push(b'\n');
    String::from_utf8(out).expect("roff is UTF-8")
}

/// Splits hand-written roff into its leading `.SH DESCRIPTION` section and the rest.
fn split_description(hand: &str) -> (&str, &str) {
    if !hand.starts_with(".SH DESCRIPTION") {
        return ("", hand);
    }
    let after = &hand[".SH DESCRIPTION".len()..];
    match after.find("\n.SH ") {
        Some(i) => hand.split_at(".SH DESCRIPTION".len() + i + 1),
        None => (hand, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_comes_before_options() {
        let cmd =
            clap::Command::new("demo").about("does a thing").arg(clap::Arg::new("x").long("xray").help("an option"));
        let page = render(cmd, ".SH DESCRIPTION\nlong text\n.SH \"EXIT STATUS\"\n0 ok\n");
        let d = page.find(".SH DESCRIPTION").unwrap();
        let o = page.find(".SH OPTIONS").unwrap();
        let e = page.find(".SH \"EXIT STATUS\"").unwrap();
        assert!(d < o && o < e, "{page}");
        assert!(page.contains("xray"));
    }
}
