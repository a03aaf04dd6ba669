//! Meta-commands, as psql 15 runs them in a script — or a stop before any that a restore cannot run exactly —
//! and the client encoding they and `SET client_encoding` change.

use super::*;

impl Runner<'_> {
    /// A meta-command, as psql 15 runs it in a script — or, for any that a restore cannot run exactly, a stop
    /// before it (exit 3): nothing after it runs.
    pub(super) fn meta(&mut self, name: &str, args: &[String], line: u64) -> Flow {
        let shown = meta_text(name, args);
        if self.session.restrict.is_some() && name != "unrestrict" {
            // psql: an error, the rest of the line thrown away, and the script goes on.
            self.error(
                line,
                None,
                format!("\\{name} refused: backslash commands are restricted; only \\unrestrict is allowed"),
                shown,
            );
            return self.after_error(line);
        }
        if !classify::META_COMMANDS.contains(&name) {
            let msg = format!(
                "meta-command \\{name} is not supported: a9s-pgrestore runs only \\connect (\\c), \\encoding, \\restrict \
                 and \\unrestrict, and never runs a program or reads a file a script names; the restore stopped \
                 here, nothing after line {line} ran"
            );
            return self.stop(line, msg, shown);
        }
        if let Some(why) = classify::meta_args_unsure(args) {
            let msg = format!("\\{name}: {why}; the restore stopped here, nothing after line {line} ran");
            return self.stop(line, msg, shown);
        }
        match name {
            "connect" | "c" => self.connect(args, line, shown),
            "restrict" => match args.first().filter(|k| !k.is_empty()) {
                None => self.meta_error(line, "\\restrict: missing required argument", shown),
                Some(key) => {
                    self.session.restrict = Some(key.clone());
                    Flow::Go
                }
            },
            "unrestrict" => match (args.first().filter(|k| !k.is_empty()), &self.session.restrict) {
                (None, _) => self.meta_error(line, "\\unrestrict: missing required argument", shown),
                (Some(_), None) => self.meta_error(line, "\\unrestrict: not currently in restricted mode", shown),
                (Some(k), Some(key)) if k == key => {
                    self.session.restrict = None;
                    Flow::Go
                }
                _ => self.meta_error(line, "\\unrestrict: wrong key (meta-commands stay refused)", shown),
            },
            "encoding" => match args.first() {
                // psql prints the encoding.
                None => Flow::Go,
                Some(e) => self.encoding_command(e, line, shown),
            },
            _ => unreachable!("META_COMMANDS lists the commands handled here"),
        }
    }

    /// A meta-command failed as it fails in psql: reported and counted, the rest of its line dropped.
    pub(super) fn meta_error(&mut self, line: u64, message: &str, shown: String) -> Flow {
        self.error(line, None, message.to_string(), shown);
        self.after_error(line)
    }

    /// After an error that psql survives: `--on-error-stop` stops, else the rest of the line is dropped.
    pub(super) fn after_error(&mut self, line: u64) -> Flow {
        if self.opts.on_error_stop {
            eprintln!("{PROG}: stopped at line {line} (--on-error-stop); the restore is incomplete");
            Flow::Stop(exit::STOPPED)
        } else {
            Flow::SkipRestOfLine
        }
    }

    /// `\encoding NAME`: psql sets the session's client encoding, and the server reads the script's bytes in
    /// it from then on. Here the session stays UTF-8 and the input is converted instead, which is the same for
    /// every encoding a9s-pgrestore converts. A name the server does not know is psql's error; a real encoding
    /// that a9s-pgrestore cannot convert is a stop, since lines in it would be read differently.
    pub(super) fn encoding_command(&mut self, name: &str, line: u64, shown: String) -> Flow {
        if let Some(enc) = Encoding::parse(name) {
            self.script.set_encoding(Ok(enc));
            return Flow::Go;
        }
        match self.server_knows_encoding(name) {
            Ok(false) => {
                self.error(
                    line,
                    None,
                    format!("{name}: invalid encoding name or conversion procedure not found"),
                    shown,
                );
                // \encoding never drops the rest of its line, even when it fails.
                Flow::Go
            }
            Ok(true) => {
                let msg = format!(
                    "\\encoding {name}: a9s-pgrestore converts only UTF8, SQL_ASCII, LATIN1, LATIN9 and WIN1252, so it \
                     cannot read what follows as psql would; the restore stopped here, nothing after line {line} ran"
                );
                self.stop(line, msg, shown)
            }
            Err(flow) => flow,
        }
    }

    /// Whether the server knows an encoding name (`pg_char_to_encoding`), as libpq's `PQsetClientEncoding`
    /// would find out.
    pub(super) fn server_knows_encoding(&mut self, name: &str) -> std::result::Result<bool, Flow> {
        let sql = format!("SELECT pg_catalog.pg_char_to_encoding({}) >= 0", a9s_core::pg::admin::escape_literal(name));
        match self.conn.query_column(&sql) {
            Ok(rows) => Ok(rows.first().is_some_and(|v| v.as_deref() == Some("t"))),
            Err(e) => Err(self.lost(&e, self.script.line())),
        }
    }

    /// `\connect` in every form psql 15 accepts (see [`a9s_core::pg::Reconnect`]). Arguments psql refuses
    /// before connecting are an error and the old session is kept; a failed connection stops the restore
    /// (exit 2): psql, in a script, closes the old one and runs nothing more of the script's statements.
    pub(super) fn connect(&mut self, args: &[String], line: u64, shown: String) -> Flow {
        let env = a9s_core::pg::Env::process();
        let target = match Reconnect::parse(args).and_then(|r| self.target.reconnect(&r, PROG, &env)) {
            Ok(t) => t,
            Err(e) => return self.meta_error(line, &format!("\\connect: {}", e.message), shown),
        };
        let refuse = |me: &mut Self, e: a9s_core::Error| {
            me.ending.connect_failed = true;
            me.error(line, None, format!("\\connect failed: {}; the restore stopped here", e.message), shown.clone());
            // The server out of reach (retry) or its refusal (a database that does not exist: fails again).
            Flow::Stop(e.code)
        };
        // The old session ends first, as in psql (and so it holds no locks the new one could wait on); so do the
        // --jobs sessions on the old database.
        self.pool = None;
        self.conn = Box::new(NoSession);
        match self.open(&target) {
            Ok(conn) => {
                self.adopt(conn, target);
                Flow::Go
            }
            Err(e) => refuse(self, e),
        }
    }

    /// `SET client_encoding`: not sent (the session stays UTF-8); the input is converted from here on, which
    /// reads the script exactly as the server would in that encoding. A name the server does not know is sent,
    /// for the server's own error; a real encoding a9s-pgrestore cannot convert stops the restore.
    pub(super) fn set_input_encoding(&mut self, value: &str, line: u64, first: String, text: &[u8]) -> Flow {
        let name = if value.eq_ignore_ascii_case("default") {
            self.conn.parameter("server_encoding").unwrap_or_default().to_string()
        } else {
            value.to_string()
        };
        if let Some(e) = Encoding::parse(&name) {
            self.script.set_encoding(Ok(e));
            self.summary.statements += 1;
            return Flow::Go;
        }
        match self.server_knows_encoding(&name) {
            Ok(false) => {
                let sql = String::from_utf8_lossy(text).into_owned();
                match self.conn.batch_execute(&sql) {
                    Err(e) => self.statement_error(&e, line, &first, text),
                    Ok(()) => {
                        let msg = format!(
                            "SET client_encoding to {name} was accepted by the server but not \
                                           understood here; the restore stopped here"
                        );
                        self.stop(line, msg, first)
                    }
                }
            }
            Ok(true) => {
                let msg = format!(
                    "client_encoding {name}: a9s-pgrestore converts only UTF8, SQL_ASCII, LATIN1, LATIN9 and WIN1252, \
                     so it cannot read what follows as psql would; the restore stopped here, before this statement"
                );
                self.stop(line, msg, first)
            }
            Err(flow) => flow,
        }
    }
}

pub(super) fn meta_text(name: &str, args: &[String]) -> String {
    let mut s = format!("\\{name}");
    for a in args {
        s.push(' ');
        s += a;
    }
    if s.chars().count() > 100 {
        s = s.chars().take(100).collect::<String>() + "…";
    }
    s
}
