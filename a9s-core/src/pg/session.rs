//! A connected session, driven on the caller's thread.
//!
//! The `postgres` crate hides its connection, and with it the server's ParameterStatus reports. psql reads
//! `standard_conforming_strings` from those after every statement to know how the next one is split, and so
//! must we. This is the `postgres` crate's own technique — a current-thread runtime that polls the connection
//! and then the request, on the calling thread — over a connection we keep, so [`Session::parameter`] is
//! exact: a report precedes the ReadyForQuery of the statement that caused it, so it has been read by the
//! time that statement's result is.
//!
//! Connecting is bounded as in libpq: `connect_timeout` covers the whole start-up (TCP, TLS, authentication),
//! not only the TCP connect that tokio-postgres bounds; and TCP keepalives are on, so a session over a dead
//! network path ends instead of waiting forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Runtime;
use tokio_postgres::error::DbError;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, CopyInSink, Row, SimpleQueryMessage, Statement};

/// The error type of every request.
pub type PgError = tokio_postgres::Error;

/// What the server's notices and warnings are handed to.
pub type NoticeFn = Arc<dyn Fn(&DbError) + Send + Sync>;

/// The connection half, whatever its transport (plain or TLS).
trait Driver: Send {
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<AsyncMessage, PgError>>>;
    fn parameter(&self, name: &str) -> Option<&str>;
}

impl<S, T> Driver for tokio_postgres::Connection<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<AsyncMessage, PgError>>> {
        tokio_postgres::Connection::poll_message(self, cx)
    }
    fn parameter(&self, name: &str) -> Option<&str> {
        tokio_postgres::Connection::parameter(self, name)
    }
}

/// One session. Every call blocks the calling thread until the server has answered.
pub struct Session {
    rt: Runtime,
    client: tokio_postgres::Client,
    conn: Box<dyn Driver>,
    on_notice: NoticeFn,
    /// The connection has ended (closed by the server, or failed).
    ended: bool,
}

/// Polls the connection (handing notices on, taking in parameter reports), then the request.
fn drive<T>(
    rt: &Runtime,
    conn: &mut Box<dyn Driver>,
    on_notice: &NoticeFn,
    ended: &mut bool,
    fut: impl Future<Output = Result<T, PgError>>,
) -> Result<T, PgError> {
    let mut fut = std::pin::pin!(fut);
    rt.block_on(std::future::poll_fn(|cx| {
        while !*ended {
            match conn.poll_message(cx) {
                Poll::Ready(Some(Ok(AsyncMessage::Notice(n)))) => on_notice(&n),
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(e))) => {
                    *ended = true;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(None) => *ended = true,
                Poll::Pending => break,
            }
        }
        fut.as_mut().poll(cx)
    }))
}

impl Session {
    /// Connects with `config` and `tls` within `timeout` for the whole start-up (`None`: no bound).
    pub(crate) fn connect<M>(
        config: &tokio_postgres::Config,
        tls: M,
        timeout: Option<std::time::Duration>,
        on_notice: NoticeFn,
    ) -> Result<Session, ConnectError>
    where
        M: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket> + 'static + Send,
        M::Stream: Send + Unpin,
        M::TlsConnect: Send,
        <M::TlsConnect as tokio_postgres::tls::TlsConnect<tokio_postgres::Socket>>::Future: Send,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ConnectError::Setup(e.to_string()))?;
        let started = rt.block_on(async {
            match timeout {
                Some(t) => tokio::time::timeout(t, config.connect(tls)).await.map_err(|_| ConnectError::Timeout(t)),
                None => Ok(config.connect(tls).await),
            }
        })?;
        let (client, conn) = started.map_err(ConnectError::Pg)?;
        Ok(Session { rt, client, conn: Box::new(conn), on_notice, ended: false })
    }

    /// The value the server last reported for a parameter (`standard_conforming_strings`, `server_encoding`,
    /// `client_encoding`, `is_superuser`, …).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.conn.parameter(name)
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.ended || self.client.is_closed()
    }

    /// Runs `sql` with the simple query protocol (one or more statements, as psql sends them).
    pub fn simple_query(&mut self, sql: &str) -> Result<Vec<SimpleQueryMessage>, PgError> {
        let fut = self.client.simple_query(sql);
        drive(&self.rt, &mut self.conn, &self.on_notice, &mut self.ended, fut)
    }

    /// Runs `sql` with the simple query protocol, ignoring rows.
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), PgError> {
        let fut = self.client.batch_execute(sql);
        drive(&self.rt, &mut self.conn, &self.on_notice, &mut self.ended, fut)
    }

    /// Runs one parameterised statement and returns its rows.
    pub fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, PgError> {
        let fut = self.client.query(sql, params);
        drive(&self.rt, &mut self.conn, &self.on_notice, &mut self.ended, fut)
    }

    /// Runs one parameterised statement that returns exactly one row.
    pub fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, PgError> {
        let fut = self.client.query_one(sql, params);
        drive(&self.rt, &mut self.conn, &self.on_notice, &mut self.ended, fut)
    }

    /// Runs one parameterised statement that returns at most one row.
    pub fn query_opt(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, PgError> {
        let fut = self.client.query_opt(sql, params);
        drive(&self.rt, &mut self.conn, &self.on_notice, &mut self.ended, fut)
    }

    /// Runs one parameterised statement and returns the number of rows it affected.
    pub fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, PgError> {
        let fut = self.client.execute(sql, params);
        drive(&self.rt, &mut self.conn, &self.on_notice, &mut self.ended, fut)
    }

    /// Parses `sql` without running it (a COPY refused here never started, so the session stays in step).
    pub fn prepare(&mut self, sql: &str) -> Result<Statement, PgError> {
        let fut = self.client.prepare(sql);
        drive(&self.rt, &mut self.conn, &self.on_notice, &mut self.ended, fut)
    }

    /// Starts `COPY … FROM STDIN`; the data goes through the returned writer.
    pub fn copy_in(&mut self, statement: &Statement) -> Result<CopyIn<'_>, PgError> {
        let fut = self.client.copy_in::<_, Bytes>(statement);
        let sink = drive(&self.rt, &mut self.conn, &self.on_notice, &mut self.ended, fut)?;
        Ok(CopyIn { session: self, sink: Box::pin(sink), buf: BytesMut::new() })
    }

    /// Runs `COPY … TO STDOUT` and discards its data (psql prints it; a restore has no use for it). Returns the
    /// bytes received.
    pub fn copy_out(&mut self, sql: &str) -> Result<u64, PgError> {
        let client = &self.client;
        let fut = async move {
            let stream = client.copy_out(sql).await?;
            let mut stream = std::pin::pin!(stream);
            let mut n = 0u64;
            while let Some(chunk) = stream.next().await {
                n += chunk?.len() as u64;
            }
            Ok(n)
        };
        drive(&self.rt, &mut self.conn, &self.on_notice, &mut self.ended, fut)
    }

    /// A token that cancels the running statement from another thread.
    pub fn cancel_token(&self) -> tokio_postgres::CancelToken {
        self.client.cancel_token()
    }
}

/// The data of a `COPY … FROM STDIN`. Dropped without [`CopyIn::finish`], the COPY is aborted (the server gets
/// CopyFail and rolls it back).
pub struct CopyIn<'a> {
    session: &'a mut Session,
    sink: Pin<Box<CopyInSink<Bytes>>>,
    /// Small writes are gathered into CopyData messages of at least [`COPY_MESSAGE`] bytes.
    buf: BytesMut,
}

/// The smallest CopyData message sent for small writes (as the `postgres` crate's writer does).
const COPY_MESSAGE: usize = 4096;

impl std::io::Write for CopyIn<'_> {
    /// Errors carry the [`PgError`] inside (see `error::io_to_pg`).
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= COPY_MESSAGE {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = self.buf.split().freeze();
        self.send(data).map_err(std::io::Error::other)
    }
}

impl CopyIn<'_> {
    /// Sends a block of rows (any number of whole or partial lines).
    pub fn send(&mut self, data: Bytes) -> Result<(), PgError> {
        let s = &mut *self.session;
        let sink = &mut self.sink;
        drive(&s.rt, &mut s.conn, &s.on_notice, &mut s.ended, async move { sink.send(data).await })
    }

    /// Ends the data; returns the rows the server loaded.
    pub fn finish(mut self) -> Result<u64, PgError> {
        if !self.buf.is_empty() {
            let data = self.buf.split().freeze();
            self.send(data)?;
        }
        let s = &mut *self.session;
        let sink = &mut self.sink;
        drive(&s.rt, &mut s.conn, &s.on_notice, &mut s.ended, async move { sink.as_mut().finish().await })
    }
}

/// Why a connection could not be made, before it is worded for the operator (see `Target::connect`).
#[derive(Debug)]
pub enum ConnectError {
    /// The server or the client library refused.
    Pg(PgError),
    /// `connect_timeout` passed before the session was ready.
    Timeout(std::time::Duration),
    /// The runtime could not be set up.
    Setup(String),
}
