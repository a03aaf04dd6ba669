//! Backups in object stores (S3, Azure Blob) and local directories, for a9s-ls and a9s-fetch.
//!
//! [`Location`] parses the LOCATION argument, [`Store`] lists objects (following every continuation token) and
//! reads byte ranges, [`inventory`] groups objects into [`Backup`]s checked with [`crate::parts::plan`], and
//! [`RangeReader`] reads a range with our own retry loop: a transient failure (connection reset, timeout, 5xx,
//! throttling, a body cut short) is retried with exponential backoff by a new ranged GET from the byte reached,
//! so no byte is delivered twice or skipped. The SDKs' own retries are off, so the count of tries is ours.

pub mod azure;
pub mod inventory;
pub mod local;
pub mod location;
pub mod net;
pub mod s3;

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use crate::error::{Error, Result};

pub use inventory::{
    group, group_counting, hex, instances, latest_complete, md5_of_etag, select, Backup, InstanceSummary, Object,
};
pub use location::{Backend, Location, Selection};

/// How hard to try before giving up on a request.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries per request, the first included; counted from the last byte received.
    pub tries: u32,
    /// Wait before the first retry; doubled each time up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// A response that sends nothing for this long is given up and resumed.
    pub idle_timeout: Duration,
    /// Program name for the warnings printed on retries.
    pub prog: &'static str,
}

impl RetryPolicy {
    pub fn new(prog: &'static str) -> RetryPolicy {
        RetryPolicy {
            tries: 6,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            prog,
        }
    }

    /// The wait after the `n`th consecutive failure (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        let d = self.first_delay.saturating_mul(1u32 << (n.saturating_sub(1)).min(16));
        d.min(self.max_delay)
    }
}

/// Options from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--endpoint-url` (S3-compatible storage); `AWS_ENDPOINT_URL` is read when it is not given.
    pub endpoint_url: Option<String>,
    /// `--blob-endpoint` (Azure emulators and other clouds).
    pub blob_endpoint: Option<String>,
    /// `--profile` or `AWS_PROFILE`: checked to exist before anything else.
    pub profile: Option<String>,
    /// `--region`, ahead of `AWS_REGION` and the profile's region.
    pub region: Option<String>,
    /// `--no-sign-request`: anonymous requests, for public buckets.
    pub no_sign_request: bool,
    /// `--ca-bundle` or `AWS_CA_BUNDLE`: PEM certificates trusted besides the system's.
    pub ca_bundle: Option<std::path::PathBuf>,
    /// az CLI's account options; each stands in for its environment variable.
    pub azure: AzureFlags,
    pub retry: RetryPolicy,
}

/// `--account-name`, `--account-key`, `--sas-token`, `--connection-string`, as given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AzureFlags {
    pub account_name: Option<String>,
    pub account_key: Option<String>,
    pub sas_token: Option<String>,
    pub connection_string: Option<String>,
}

impl AzureFlags {
    /// The environment as the az CLI sees it with these flags: a flag replaces its variable, and naming an
    /// account or its key or SAS on the command line sets AZURE_STORAGE_CONNECTION_STRING aside (az reads the
    /// connection string only when no account is given).
    pub fn over<'a>(&'a self, env: &'a dyn Fn(&str) -> Option<String>) -> impl Fn(&str) -> Option<String> + 'a {
        move |k: &str| {
            let flag = match k {
                "AZURE_STORAGE_CONNECTION_STRING" => {
                    if self.connection_string.is_none()
                        && (self.account_name.is_some() || self.account_key.is_some() || self.sas_token.is_some())
                    {
                        return None;
                    }
                    &self.connection_string
                }
                "AZURE_STORAGE_ACCOUNT" => &self.account_name,
                "AZURE_STORAGE_KEY" => &self.account_key,
                "AZURE_STORAGE_SAS_TOKEN" => &self.sas_token,
                _ => &None,
            };
            flag.clone().or_else(|| env(k))
        }
    }
}

/// A failed request: worth retrying or not, and what to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub transient: bool,
    pub message: String,
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Failure {
        Failure { transient: true, message: message.into() }
    }
    pub fn permanent(message: impl Into<String>) -> Failure {
        Failure { transient: false, message: message.into() }
    }
}

/// A store a location is in.
pub enum Store {
    S3(s3::S3Store),
    Azure(azure::AzureStore),
    Local(local::LocalStore),
}

/// A response body being read.
pub enum Body {
    S3(aws_sdk_s3::primitives::ByteStream, String),
    Azure(BoxStream<'static, object_store::Result<Bytes>>, String),
    Local(local::LocalBody),
}

impl Body {
    async fn next(&mut self) -> Option<std::result::Result<Bytes, Failure>> {
        match self {
            Body::S3(s, key) => s.next().await.map(|r| r.map_err(|e| s3::body_failure(e, key))),
            Body::Azure(s, key) => s.next().await.map(|r| r.map_err(|e| azure::body_failure(e, key))),
            Body::Local(b) => b.next().await,
        }
    }
}

/// A multi-threaded runtime of two workers: enough to keep several transfers and a writer busy.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::failure(format!("cannot start the I/O runtime: {e}")))
}

impl Store {
    /// Connects to the store of a location: resolves and checks credentials, so that a missing one is
    /// reported before anything else happens.
    pub async fn connect(loc: &Location, opts: &Options) -> Result<Store> {
        Ok(match &loc.backend {
            Backend::S3 { bucket } => Store::S3(s3::S3Store::connect(bucket, opts).await?),
            Backend::Azure { container } => Store::Azure(azure::AzureStore::connect(container, opts)?),
            Backend::Local { dir } => Store::Local(local::LocalStore { dir: dir.clone() }),
        })
    }

    /// Every object whose key starts with `prefix`, page after page, each page retried on transient failures,
    /// and the names the store returned that cannot be objects of ours (keys that do not decode, blob names
    /// the Azure client cannot represent): skipped, never fatal.
    pub async fn list(&self, prefix: &str, policy: &RetryPolicy) -> Result<Listing> {
        if let Store::Local(l) = self {
            let objects = l.list(prefix).await.map_err(|f| Error::failure(f.message))?;
            return Ok(Listing { objects, unusable: Vec::new() });
        }
        let mut out = Listing::default();
        let mut token: Option<String> = None;
        loop {
            let mut failures = 0;
            let mut said = None;
            let page = loop {
                let page = match self {
                    Store::S3(s) => bounded(policy, s.list_page(prefix, token.clone()), "listing").await,
                    Store::Azure(a) => bounded(policy, a.list_page(prefix, token.clone()), "listing").await,
                    Store::Local(_) => unreachable!("handled above"),
                };
                match page {
                    Ok(p) => break p,
                    Err(f) => {
                        failures += 1;
                        give_up_or_wait(policy, f, failures, "listing again", &mut said).await?;
                    }
                }
            };
            out.objects.extend(page.objects);
            out.unusable.extend(page.unusable);
            match page.next {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn open(&self, obj: &Object, start: u64, end: u64) -> std::result::Result<Body, Failure> {
        Ok(match self {
            Store::S3(s) => Body::S3(s.open(obj, start, end).await?, obj.key.clone()),
            Store::Azure(a) => Body::Azure(a.open(obj, start, end).await?, obj.key.clone()),
            Store::Local(l) => Body::Local(l.open(obj, start, end).await?),
        })
    }

    /// Reads bytes `start..end` of `obj`, resuming after transient failures.
    pub fn reader<'a>(&'a self, obj: &Object, start: u64, end: u64, policy: &RetryPolicy) -> RangeReader<'a> {
        RangeReader {
            store: self,
            obj: obj.clone(),
            pos: start,
            end,
            body: None,
            failures: 0,
            said: None,
            policy: policy.clone(),
        }
    }
}

/// What a listing returned.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<Object>,
    /// Names returned that cannot be read as objects (undecodable keys, names the Azure client refuses).
    pub unusable: Vec<String>,
}

/// One page of a listing.
pub struct Page {
    pub objects: Vec<Object>,
    pub unusable: Vec<String>,
    pub next: Option<String>,
}

/// The backups a location selects, and the names under it that are not a9s backup names.
#[derive(Debug)]
pub struct Survey {
    pub backups: Vec<Backup>,
    /// Keys under the listed prefix that are not `<instance-uuid>-<milliseconds>[-<index>|.json]` (or that the
    /// store could not name), skipped.
    pub skipped: Vec<String>,
}

impl Survey {
    /// The one line on stderr about skipped names, `None` when there were none. Names are escaped.
    pub fn skipped_note(&self, prog: &str) -> Option<String> {
        let first = self.skipped.first()?;
        let n = self.skipped.len();
        let what = if n == 1 { "1 object".to_string() } else { format!("{n} objects") };
        Some(format!("{prog}: skipped {what} whose name is not an a9s backup name (e.g. {})", printable(first)))
    }
}

/// Lists a location and groups what it selects into backups, oldest first; names that are not backup names
/// are skipped and counted.
pub async fn survey(store: &Store, loc: &Location, policy: &RetryPolicy) -> Result<Survey> {
    let listing = store.list(&loc.list_prefix(), policy).await?;
    let (backups, mut skipped) = group_counting(listing.objects, loc.requires_metadata());
    skipped.extend(listing.unusable);
    Ok(Survey { backups: select(backups, loc), skipped })
}

/// Lists a location and groups what it selects into backups, oldest first. Names that are not backup names
/// are mentioned once on stderr.
pub async fn inventory(store: &Store, loc: &Location, policy: &RetryPolicy) -> Result<Vec<Backup>> {
    let s = survey(store, loc, policy).await?;
    if let Some(note) = s.skipped_note(policy.prog) {
        eprintln!("{note}");
    }
    Ok(s.backups)
}

pub use crate::sanitize::printable;

/// A request's wait for its response bounded by the idle timeout: a server that accepts the connection and
/// never answers is a transient failure like a reset, not a hang.
async fn bounded<T>(
    policy: &RetryPolicy,
    fut: impl std::future::Future<Output = std::result::Result<T, Failure>>,
    what: &str,
) -> std::result::Result<T, Failure> {
    match tokio::time::timeout(policy.idle_timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(Failure::transient(format!(
            "{what}: no response for {} s (--idle-timeout)",
            policy.idle_timeout.as_secs()
        ))),
    }
}

/// The newest complete backup among those a location selected (`text` is the location as given). Several
/// instances are refused: "the newest" of two databases is a guess, not an answer.
pub fn latest<'a>(backups: &'a [Backup], loc: &Location, text: &str) -> Result<&'a Backup> {
    let found = instances(backups);
    if found.len() > 1 {
        let mut names: Vec<String> =
            found.iter().rev().take(5).map(|s| loc.url_of(&format!("{}{}", s.dir, s.instance))).collect();
        if found.len() > 5 {
            names.push("…".to_string());
        }
        return Err(Error::failure(format!(
            "{} instances have backups under {text}: name one, e.g. {}",
            found.len(),
            names.join(", ")
        )));
    }
    match latest_complete(backups) {
        Some(b) => Ok(b),
        None => {
            let detail = match backups.iter().max_by_key(|b| b.id.millis) {
                Some(b) => format!(": the newest, {}, is incomplete: {}", b.id, printable(&b.problem_text())),
                None => String::new(),
            };
            Err(Error::failure(format!("no complete backup under {text}{detail}")))
        }
    }
}

/// Gives up on a permanent failure or after the last try; otherwise waits the backoff. A failure is said once
/// per run of consecutive failures (and again only if it changes), not once per try: a store that is down
/// gives one warning and, when the tries are spent, one error.
async fn give_up_or_wait(
    policy: &RetryPolicy,
    f: Failure,
    failures: u32,
    doing: &str,
    said: &mut Option<String>,
) -> Result<()> {
    if !f.transient {
        return Err(Error::failure(f.message));
    }
    if failures >= policy.tries {
        let total: Duration = (1..failures).map(|n| policy.delay(n)).sum();
        let tries = match failures {
            1 => "1 try".to_string(),
            n => format!("{n} tries over {:.1} s", total.as_secs_f64()),
        };
        // Still failing after the retries: the store is unreachable for now, which a later run may find back.
        return Err(Error::unreachable(format!("{} (gave up after {tries}; --tries)", f.message)));
    }
    if failures == 1 || said.as_deref() != Some(f.message.as_str()) {
        eprintln!("{}: {}; {doing} (up to {} tries)", policy.prog, f.message, policy.tries);
        *said = Some(f.message);
    }
    tokio::time::sleep(policy.delay(failures)).await;
    Ok(())
}

/// Bytes `pos..end` of one object, chunk by chunk, in order. Each failure drops the response and, when it is
/// transient, opens a new ranged GET at `pos` (the first byte not yet delivered) after a backoff. The count of
/// consecutive failures restarts whenever bytes arrive, so a long transfer survives occasional resets while a
/// store that keeps failing is given up after [`RetryPolicy::tries`].
pub struct RangeReader<'a> {
    store: &'a Store,
    obj: Object,
    pos: u64,
    end: u64,
    body: Option<Body>,
    failures: u32,
    /// The failure last said in this run of failures.
    said: Option<String>,
    policy: RetryPolicy,
}

impl RangeReader<'_> {
    /// The offset of the next byte.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next chunk, `None` at the end of the range.
    pub async fn next(&mut self) -> Result<Option<Bytes>> {
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            if self.body.is_none() {
                let what = printable(&self.obj.key);
                match bounded(&self.policy, self.store.open(&self.obj, self.pos, self.end), &what).await {
                    Ok(b) => self.body = Some(b),
                    Err(f) => {
                        self.fail(f).await?;
                        continue;
                    }
                }
            }
            let body = self.body.as_mut().expect("opened above");
            let got = tokio::time::timeout(self.policy.idle_timeout, body.next()).await;
            match got {
                Err(_) => {
                    let f = Failure::transient(format!(
                        "{}: no data for {} s",
                        printable(&self.obj.key),
                        self.policy.idle_timeout.as_secs()
                    ));
                    self.fail(f).await?;
                }
                Ok(None) => {
                    let f = Failure::transient(format!(
                        "{}: response ended at byte {} of {}",
                        printable(&self.obj.key),
                        self.pos,
                        self.end
                    ));
                    self.fail(f).await?;
                }
                Ok(Some(Err(f))) => self.fail(f).await?,
                Ok(Some(Ok(bytes))) => {
                    if bytes.is_empty() {
                        continue;
                    }
                    let room = self.end - self.pos;
                    if bytes.len() as u64 > room {
                        return Err(Error::failure(format!(
                            "{}: the store sent more bytes than asked for (at byte {})",
                            printable(&self.obj.key),
                            self.pos
                        )));
                    }
                    self.pos += bytes.len() as u64;
                    self.failures = 0;
                    self.said = None;
                    return Ok(Some(bytes));
                }
            }
        }
    }

    async fn fail(&mut self, f: Failure) -> Result<()> {
        self.body = None;
        self.failures += 1;
        let f = Failure { transient: f.transient, message: f.message };
        let doing = format!("resuming {} at byte {}", printable(self.obj.name()), self.pos);
        give_up_or_wait(&self.policy, f, self.failures, &doing, &mut self.said).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_flags_stand_in_for_their_variables_as_for_az() {
        let env = |k: &str| match k {
            "AZURE_STORAGE_CONNECTION_STRING" => Some("AccountName=env;AccountKey=k".to_string()),
            "AZURE_STORAGE_KEY" => Some("envkey".to_string()),
            _ => None,
        };
        let none = AzureFlags::default();
        assert_eq!(none.over(&env)("AZURE_STORAGE_CONNECTION_STRING").as_deref(), Some("AccountName=env;AccountKey=k"));
        let account = AzureFlags { account_name: Some("acct".into()), ..Default::default() };
        let e = account.over(&env);
        assert_eq!(e("AZURE_STORAGE_CONNECTION_STRING"), None);
        assert_eq!(e("AZURE_STORAGE_ACCOUNT").as_deref(), Some("acct"));
        assert_eq!(e("AZURE_STORAGE_KEY").as_deref(), Some("envkey"));
        let cs = AzureFlags { connection_string: Some("AccountName=flag".into()), ..account.clone() };
        assert_eq!(cs.over(&env)("AZURE_STORAGE_CONNECTION_STRING").as_deref(), Some("AccountName=flag"));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::new("t");
        assert_eq!(p.delay(1), Duration::from_millis(500));
        assert_eq!(p.delay(2), Duration::from_secs(1));
        assert_eq!(p.delay(4), Duration::from_secs(4));
        assert_eq!(p.delay(10), Duration::from_secs(20));
        assert_eq!(p.delay(100), Duration::from_secs(20));
    }
}

/// A service's error text as one line of at most [`MAX_QUOTED`](crate::sanitize::MAX_QUOTED) bytes, controls
/// escaped and credentials hidden: SDK errors carry newlines, whole XML bodies and at times the request.
pub(crate) fn one_line(s: &str) -> String {
    crate::sanitize::untrusted(s, &[], crate::sanitize::MAX_QUOTED)
}

/// The retry and timeout options of every program that reads a store, for `#[command(flatten)]`.
#[derive(clap::Args, Debug, Clone)]
pub struct RetryArgs {
    /// Tries per request before giving up: transient failures (connection reset, timeout, HTTP 5xx, throttling,
    /// a response that is not the one asked for) are retried with exponential backoff (0.5 s doubling up to
    /// 20 s), resuming at the byte reached. The count starts again whenever data arrives.
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub tries: u32,

    /// Give up on a request whose response headers, listing page or next body bytes take longer than this many
    /// seconds (it is then retried like a reset). Connecting is bounded by 10 s.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
}

impl RetryArgs {
    pub fn policy(&self, prog: &'static str) -> RetryPolicy {
        let mut p = RetryPolicy::new(prog);
        p.tries = self.tries;
        p.idle_timeout = Duration::from_secs(self.idle_timeout);
        p
    }
}

/// The store options of every program that reads a store, for `#[command(flatten)]`: the endpoints, and the
/// AWS and az CLI options operators already type.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EndpointArgs {
    /// S3-compatible endpoint (MinIO, Ceph, another cloud's S3); path-style addressing is used with it.
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL", hide_env_values = true, help_heading = "S3 options")]
    pub endpoint_url: Option<String>,

    /// The AWS profile from ~/.aws/config and ~/.aws/credentials, as for the aws CLI. A profile that is in
    /// neither file is an error.
    #[arg(long, value_name = "NAME", env = "AWS_PROFILE", help_heading = "S3 options")]
    pub profile: Option<String>,

    /// The bucket's region, ahead of AWS_REGION, AWS_DEFAULT_REGION and the profile's region.
    #[arg(long, value_name = "REGION", help_heading = "S3 options")]
    pub region: Option<String>,

    /// Do not sign requests and look for no credentials: for public buckets.
    #[arg(long, help_heading = "S3 options")]
    pub no_sign_request: bool,

    /// PEM file of certificate authorities to trust besides the system's, for an endpoint with a private CA.
    #[arg(long, value_name = "FILE", env = "AWS_CA_BUNDLE", help_heading = "S3 options")]
    pub ca_bundle: Option<std::path::PathBuf>,

    /// Azure Blob endpoint of the account, for Azurite and other Azure clouds, e.g.
    /// `http://127.0.0.1:10000/devstoreaccount1` or `https://ACCOUNT.blob.core.usgovcloudapi.net`.
    #[arg(long, value_name = "URL", help_heading = "Azure options")]
    pub blob_endpoint: Option<String>,

    /// The storage account, as AZURE_STORAGE_ACCOUNT (which it replaces).
    #[arg(long, value_name = "NAME", help_heading = "Azure options")]
    pub account_name: Option<String>,

    /// The account's access key, as AZURE_STORAGE_KEY. On the command line it is visible to other users in
    /// `ps`: prefer the variable.
    #[arg(long, value_name = "KEY", help_heading = "Azure options")]
    pub account_key: Option<String>,

    /// A SAS token with list and read permission, as AZURE_STORAGE_SAS_TOKEN. On the command line it is
    /// visible to other users in `ps`: prefer the variable.
    #[arg(long, value_name = "TOKEN", help_heading = "Azure options")]
    pub sas_token: Option<String>,

    /// A connection string, as AZURE_STORAGE_CONNECTION_STRING. It holds the key or SAS, so on the command line
    /// it is visible to other users in `ps`: prefer the variable.
    #[arg(long, value_name = "STRING", help_heading = "Azure options")]
    pub connection_string: Option<String>,
}

impl EndpointArgs {
    /// The store options for these arguments and a retry policy. Warns (on stderr, as `--pass pass:` does)
    /// about a secret given on the command line.
    pub fn options(&self, retry: RetryPolicy) -> Options {
        for (flag, set, var) in [
            ("--account-key", &self.account_key, "AZURE_STORAGE_KEY"),
            ("--sas-token", &self.sas_token, "AZURE_STORAGE_SAS_TOKEN"),
            ("--connection-string", &self.connection_string, "AZURE_STORAGE_CONNECTION_STRING"),
        ] {
            if set.is_some() {
                eprintln!(
                    "{}: warning: {flag} puts a secret on the command line, visible to other users in ps; prefer {var}",
                    retry.prog
                );
            }
        }
        let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        Options {
            // An empty AWS_ENDPOINT_URL means none, as for the AWS CLI.
            endpoint_url: given(&self.endpoint_url),
            blob_endpoint: self.blob_endpoint.clone(),
            profile: given(&self.profile),
            region: given(&self.region),
            no_sign_request: self.no_sign_request,
            ca_bundle: self.ca_bundle.clone().filter(|p| !p.as_os_str().is_empty()),
            azure: AzureFlags {
                account_name: given(&self.account_name),
                account_key: given(&self.account_key),
                sas_token: given(&self.sas_token),
                connection_string: given(&self.connection_string),
            },
            retry,
        }
    }
}
