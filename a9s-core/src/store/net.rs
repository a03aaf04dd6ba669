//! A failure to reach a store, said in one plain line that names the endpoint and what to check, whatever
//! client (aws-sdk-s3's hyper, object_store's reqwest) saw it: the clients' own errors nest four deep and
//! their `Debug` forms are of no use to an operator.

use std::error::Error as StdError;

/// How long connecting to a store may take, for both clients.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a connection could not be made or kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Nobody listens at the host and port.
    Refused,
    /// The host name does not resolve.
    Dns,
    /// The TLS handshake failed (the reason, e.g. `UnknownIssuer`, when one was given).
    Tls(String),
    /// No connection or no answer in time.
    Timeout,
    /// The connection was cut.
    Reset,
}

/// The endpoint a store talks to, and where the operator sets it, for messages.
#[derive(Debug, Clone)]
pub struct Peer {
    /// `http://127.0.0.1:9000`, or `the S3 endpoint of region eu-west-1`.
    pub endpoint: String,
    /// Where the endpoint comes from: `--endpoint-url or AWS_ENDPOINT_URL`.
    pub set_by: &'static str,
    /// What to check when TLS fails: `--ca-bundle or AWS_CA_BUNDLE`.
    pub trust: &'static str,
    /// How long a response may keep silent (`--idle-timeout`).
    pub idle: std::time::Duration,
}

/// The connection-level cause in an error's chain, if it is one. The io::Error kinds say most; hyper and
/// reqwest say DNS and TLS only in words.
pub fn cause(e: &(dyn StdError + 'static)) -> Option<Cause> {
    let mut found = None;
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => return Some(Cause::Refused),
                TimedOut => return Some(Cause::Timeout),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
                    found = found.or(Some(Cause::Reset))
                }
                _ => {}
            }
        }
        let text = c.to_string().to_ascii_lowercase();
        if text.contains("dns error")
            || text.contains("failed to lookup address")
            || text.contains("name or service not known")
            || text.contains("no address associated")
            || text.contains("temporary failure in name resolution")
        {
            return Some(Cause::Dns);
        }
        if text.contains("connection refused") {
            return Some(Cause::Refused);
        }
        if text.contains("invalid peer certificate") || text.contains("certificate verify") {
            let why = c.to_string();
            let why = why.rsplit(": ").next().unwrap_or("").to_string();
            return Some(Cause::Tls(crate::sanitize::one_line(&why, 80)));
        }
        if text.contains("tls") || text.contains("handshake") || text.contains("corrupt message") {
            found = Some(Cause::Tls(String::new()));
        }
        if found.is_none() && (text.contains("timed out") || text.contains("timeout")) {
            found = Some(Cause::Timeout);
        }
        if found.is_none() && (text.contains("connection reset") || text.contains("connection closed")) {
            found = Some(Cause::Reset);
        }
        cur = c.source();
    }
    found
}

impl Cause {
    /// One plain line: what happened with which endpoint, and what to check.
    pub fn describe(&self, peer: &Peer) -> String {
        let ep = &peer.endpoint;
        match self {
            Cause::Refused => format!(
                "cannot connect to {ep}: connection refused (check the URL, {}, and that the server is up)",
                peer.set_by
            ),
            Cause::Dns => format!("cannot resolve the host of {ep} (check the URL, {}, and DNS)", peer.set_by),
            Cause::Tls(why) if why.is_empty() => format!(
                "the TLS handshake with {ep} failed (check http:// versus https:// in {}, and {})",
                peer.set_by, peer.trust
            ),
            Cause::Tls(why) => format!(
                "the TLS certificate of {ep} is not trusted ({why}): give the authority that signed it with {}",
                peer.trust
            ),
            Cause::Timeout => format!(
                "{ep} did not answer: no connection within {} s or no response for {} s (--idle-timeout); check \
                 the URL, {}, the network, a firewall or proxy",
                CONNECT_TIMEOUT.as_secs(),
                peer.idle.as_secs(),
                peer.set_by
            ),
            Cause::Reset => format!("the connection to {ep} was cut (network or server trouble)"),
        }
    }

    /// A TLS failure does not mend by itself; the others may (a server restarting, a network blip).
    pub fn transient(&self) -> bool {
        !matches!(self, Cause::Tls(_))
    }
}

/// An error and its sources, each by its `Display` only (never `Debug`), joined by `: ` with repeats left
/// out, on one bounded line with controls escaped and credentials hidden.
pub fn chain_text(e: &(dyn StdError + 'static)) -> String {
    super::one_line(&crate::error::error_chain(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(&'static str, Option<Box<dyn StdError + Send + Sync>>);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for Wrap {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn StdError + 'static))
        }
    }

    fn peer() -> Peer {
        Peer {
            endpoint: "http://127.0.0.1:1".into(),
            set_by: "--endpoint-url",
            trust: "--ca-bundle",
            idle: std::time::Duration::from_secs(60),
        }
    }

    #[test]
    fn causes_from_chains() {
        let refused = Wrap(
            "dispatch failure",
            Some(Box::new(Wrap(
                "tcp connect error",
                Some(Box::new(std::io::Error::from_raw_os_error(libc::ECONNREFUSED))),
            ))),
        );
        assert_eq!(cause(&refused), Some(Cause::Refused));
        assert_eq!(chain_text(&refused), "dispatch failure: tcp connect error: Connection refused");
        let dns = Wrap(
            "client error (Connect)",
            Some(Box::new(Wrap("dns error: failed to lookup address information", None))),
        );
        assert_eq!(cause(&dns), Some(Cause::Dns));
        let tls = Wrap("io error", Some(Box::new(Wrap("invalid peer certificate: UnknownIssuer", None))));
        assert_eq!(cause(&tls), Some(Cause::Tls("UnknownIssuer".into())));
        assert_eq!(cause(&Wrap("service error", None)), None);
        let line = Cause::Refused.describe(&peer());
        assert!(line.contains("http://127.0.0.1:1") && line.contains("--endpoint-url") && !line.contains('{'));
    }
}
