//! `--jobs`: the glue between the runner and the session pool ([`crate::parallel`]): large COPY blocks dealt
//! out over the sessions, index builds run side by side, and the barrier that keeps everything else in order.

use super::*;

impl Runner<'_> {
    /// Loads a COPY whose data is larger than one chunk over the `--jobs` sessions, all or nothing. A smaller
    /// one, or one inside a transaction block, stays on the main session: then its data read so far comes back.
    pub(super) fn parallel_copy(
        &mut self,
        sql: &str,
        table: &str,
        line: u64,
        first: &str,
    ) -> std::result::Result<Flow, Prefetched> {
        let started_at = self.script.bytes();
        let limit = if self.opts.chunk_bytes == 0 { parallel::DEFAULT_CHUNK_BYTES } else { self.opts.chunk_bytes };
        let mut chunks = ChunkBuilder::new(limit);
        loop {
            match self.copy_data_piece(chunks.buffer(), table) {
                DataPiece::Data { row_start, row_end } => {
                    chunks.pushed_piece(self.script.line(), row_start, row_end);
                    if chunks.is_full() {
                        break;
                    }
                }
                DataPiece::End => {
                    return Err(Prefetched { data: chunks.take().map(|c| c.data).unwrap_or_default(), complete: true })
                }
                // The main session's COPY meets the end of the input and says so.
                DataPiece::Eof => {
                    return Err(Prefetched { data: chunks.take().map(|c| c.data).unwrap_or_default(), complete: false })
                }
                DataPiece::Bad(msg) => {
                    let flow = self.fail(line, None, msg, first.into());
                    return Ok(self.after_failed_copy(flow));
                }
                // Nothing of the COPY was sent yet (the probe was abandoned).
                DataPiece::Nul(column) => {
                    let what = format!("COPY {table} was not run");
                    return Ok(self.stop_at_nul(line, column, &what));
                }
                DataPiece::Input(code) => return Ok(Flow::Stop(code)),
            }
        }
        // Other sessions would not see a table created in the main session's open transaction block (and
        // would wait for its locks); and chunks in separate transactions must not depend on each other's rows
        // (a key, a foreign key, a trigger…). Such a COPY stays on the main session, loaded as psql loads it,
        // as does one that cannot be checked.
        let one_session = match conn::in_transaction_block(&mut *self.conn) {
            Ok(false) => {
                let columns = classify::copy_columns(sql.as_bytes());
                conn::one_session_reason(&mut *self.conn, table, columns.as_deref())
                    .unwrap_or_else(|_| Some(String::new()))
            }
            _ => Some(String::new()),
        };
        if let Some(why) = one_session {
            if !why.is_empty() {
                self.progress.event(format!("COPY {table} (line {line}) on one session: {why}"));
            }
            return Err(Prefetched { data: chunks.take().map(|c| c.data).unwrap_or_default(), complete: false });
        }
        if let Flow::Stop(code) = self.ensure_pool(line) {
            return Ok(Flow::Stop(code));
        }
        let mut pool = self.pool.take().expect("sessions open");
        let jobs = pool.jobs();
        self.progress.set_detail(format!("database {}, COPY {table} over {jobs} sessions", self.target.dbname));
        let settings = self.session.settings.clone();
        let first_chunk = chunks.take().expect("a full chunk");
        let mut ended = false;
        // The main session watches over the workers' lock waits; out of `self` while the feed borrows it.
        let mut main = std::mem::replace(&mut self.conn, Box::new(NoSession));
        let result = {
            let mut feed = || -> Feed {
                if ended {
                    return Feed::End;
                }
                loop {
                    match self.copy_data_piece(chunks.buffer(), table) {
                        DataPiece::Data { row_start, row_end } => {
                            chunks.pushed_piece(self.script.line(), row_start, row_end);
                            if chunks.is_full() {
                                // Possibly in the middle of a row longer than a chunk: the chunk is marked open
                                // and the session that takes it takes the rest of the row too (see
                                // `parallel::Chunk::open`), so the row streams in chunk-sized parts.
                                return Feed::Chunk(chunks.take().expect("a full chunk"));
                            }
                        }
                        DataPiece::End if self.script.copy_end() != b"\\.\n" => {
                            // The server would check this marker against the rows' line ends in one stream; over
                            // several sessions it cannot. Rare outside hand-made scripts.
                            let msg = format!(
                                "COPY {table}: the end-of-data line at line {} is not the `\\.` with a plain newline \
                                 that pg_dump writes; run without --jobs to have the server judge it as under psql",
                                self.script.line()
                            );
                            return Feed::Stop(FeedStop::Message { message: msg, data_left: false });
                        }
                        DataPiece::End => {
                            ended = true;
                            return chunks.take().map_or(Feed::End, Feed::Chunk);
                        }
                        DataPiece::Eof => return Feed::Stop(FeedStop::truncated(table, line)),
                        DataPiece::Bad(msg) => return Feed::Stop(FeedStop::Message { message: msg, data_left: true }),
                        DataPiece::Nul(column) => return Feed::Stop(FeedStop::Nul { column }),
                        DataPiece::Input(code) => return Feed::Stop(FeedStop::Input(code)),
                    }
                }
            };
            pool.copy(sql, line, &settings, first_chunk, &mut feed, &mut MainWatch(&mut *main))
        };
        self.conn = main;
        self.pool = Some(pool);
        self.progress.set_detail(format!("database {}", self.target.dbname));
        let copy = CopyStatement { text: sql.as_bytes(), table, line, first, started_at };
        Ok(self.copy_finished(result, &copy, Some(jobs)))
    }

    /// Runs an index build on a `--jobs` session; `None` when it must run on the main session, after the
    /// sessions are idle: inside a transaction block, or when the line changed standard_conforming_strings.
    pub(super) fn parallel_index(&mut self, sql: &str, line: u64, first: &str, text: &[u8]) -> Option<Flow> {
        // Part of this statement was split with a standard_conforming_strings that changed since; the server
        // reads all of it with the new one and may find more in it than the lexer did (a COPY, whose data psql
        // would stream): only the main session stops there before anything after it has run.
        if self.session.scs_changed_at >= line || !matches!(conn::in_transaction_block(&mut *self.conn), Ok(false)) {
            return match self.barrier() {
                Flow::Go => None,
                stop => Some(stop),
            };
        }
        if let Flow::Stop(code) = self.ensure_pool(line) {
            return Some(Flow::Stop(code));
        }
        let settings = self.session.settings.clone();
        let pending = PendingIndex { first: first.to_string(), text: text.to_vec() };
        self.pool.as_mut().expect("sessions open").exec(sql.to_string(), &settings, line, pending);
        // Running now; named if the script waits for it (the next build waits for a session, or the barrier).
        self.progress.statement_started(line, text);
        self.summary.parallel_indexes += 1;
        Some(Flow::Go)
    }

    /// Waits until the `--jobs` sessions are idle and reports what they ran, in script order.
    pub(super) fn barrier(&mut self) -> Flow {
        let Some(pool) = self.pool.as_mut() else { return Flow::Go };
        let finished = pool.wait_idle();
        self.progress.statement_ended();
        for done in finished {
            self.notices.line.store(done.line, Ordering::Relaxed);
            match done.result {
                Ok(()) => self.summary.statements += 1,
                Err(parallel::Failure::Sql(e)) => {
                    if let Flow::Stop(code) = self.statement_error(&e, done.line, &done.tag.first, &done.tag.text) {
                        return Flow::Stop(code);
                    }
                }
                Err(parallel::Failure::Lost(m)) => {
                    self.progress.finish();
                    eprintln!(
                        "{PROG}: a --jobs session to {} was lost at line {} (last line read: {}): {m}; the restore \
                         is incomplete — {}",
                        self.target.describe(),
                        done.line,
                        self.script.line(),
                        self.loss_advice()
                    );
                    return Flow::Stop(exit::CONNECTION);
                }
            }
        }
        Flow::Go
    }

    /// Opens the `--jobs` sessions on the current database if they are not open yet.
    pub(super) fn ensure_pool(&mut self, line: u64) -> Flow {
        if self.pool.as_ref().is_some_and(|p| p.dbname() == self.target.dbname) {
            return Flow::Go;
        }
        self.pool = None;
        let (target, connector) = (self.target.clone(), self.connector.clone());
        let db = quote_conninfo_value(&target.dbname);
        let connect: parallel::Connect = Arc::new(move |line: Arc<AtomicU64>| {
            let db = db.clone();
            let session = connector(
                &target,
                Arc::new(move |n| eprintln!("{}", notice_text(&db, line.load(Ordering::Relaxed), n))),
            )?;
            // A signal cancels what the --jobs sessions run too, or the restore would wait for their index builds.
            if let Some(token) = session.cancel_token() {
                signals::watch_worker(&target, token);
            }
            Ok(session)
        });
        match Pool::open(connect, &self.target.dbname, self.opts.jobs) {
            Ok(pool) => {
                self.pool = Some(pool);
                Flow::Go
            }
            Err(e) => {
                self.progress.finish();
                self.ending.connect_failed = true;
                eprintln!(
                    "{PROG}: {} line {line}: cannot open the {} sessions of --jobs: {}; the restore stopped here",
                    self.db(),
                    self.opts.jobs,
                    e.message
                );
                Flow::Stop(e.code)
            }
        }
    }
}

/// The main session as the pool's [`parallel::Watch`].
struct MainWatch<'a>(&'a mut dyn Conn);

impl parallel::Watch for MainWatch<'_> {
    fn blocked_by(&mut self, waiting: &[i32], holding: &[i32]) -> std::result::Result<Vec<i32>, String> {
        conn::blocked_by(self.0, waiting, holding).map_err(|e| e.describe())
    }
    fn cancel(&mut self, pid: i32) {
        // If the server refuses, rolling back the sessions that hold the locks still ends the wait.
        let _ = conn::cancel_backend(self.0, pid);
    }
}

/// An index build running on a `--jobs` session: what its error report needs.
#[derive(Debug)]
pub(super) struct PendingIndex {
    pub(super) first: String,
    pub(super) text: Vec<u8>,
}
