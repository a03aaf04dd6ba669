//! Azure Blob Storage through object_store, configured the way the az CLI is: a connection string, an account
//! with a key or SAS token, or Entra ID.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, RetryConfig};

use crate::error::{Error, Result};

use super::net::{self, Peer};
use super::{Failure, Object, Options};

/// Azurite's well-known development account and key (published by Microsoft; not a secret).
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

const LOOKED_AT: &str = "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or \
AZURE_STORAGE_SAS_TOKEN, or Entra ID (AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, \
az login, IDENTITY_ENDPOINT/MSI_ENDPOINT managed identity)";

/// How we authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Key(String),
    Sas(String),
    ClientSecret { client_id: String, secret: String, tenant: String },
    Workload { client_id: String, tenant: String, token_file: String },
    AzureCli,
    ManagedIdentity,
}

/// Account, endpoint and credential, and where they came from (for messages; never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub account: String,
    pub endpoint: String,
    pub credential: Credential,
    pub source: String,
}

/// A parsed `AZURE_STORAGE_CONNECTION_STRING`: `Key=Value;…`, keys case-insensitive, values may hold `=`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConnectionString {
    pub account: Option<String>,
    pub key: Option<String>,
    pub sas: Option<String>,
    pub blob_endpoint: Option<String>,
    pub protocol: Option<String>,
    pub suffix: Option<String>,
    pub development: bool,
    pub dev_proxy: Option<String>,
}

impl ConnectionString {
    pub fn parse(s: &str) -> std::result::Result<ConnectionString, String> {
        let mut c = ConnectionString::default();
        for item in s.split(';').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((k, v)) = item.split_once('=') else {
                return Err(format!(
                    "item without '=' (expected Key=Value;…): {}",
                    item.split('=').next().unwrap_or("")
                ));
            };
            let v = v.trim().to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "accountname" => c.account = Some(v),
                "accountkey" => c.key = Some(v),
                "sharedaccesssignature" => c.sas = Some(v),
                "blobendpoint" => c.blob_endpoint = Some(v.trim_end_matches('/').to_string()),
                "defaultendpointsprotocol" => c.protocol = Some(v),
                "endpointsuffix" => c.suffix = Some(v),
                "usedevelopmentstorage" => c.development = v.eq_ignore_ascii_case("true"),
                "developmentstorageproxyuri" => c.dev_proxy = Some(v),
                // Queue, table and file endpoints do not concern blobs.
                _ => {}
            }
        }
        Ok(c)
    }
}

/// Works out account, endpoint and credential from the environment (`env` reads a variable) and
/// `--blob-endpoint`. Pure, so tests can drive it.
pub fn settings(env: &dyn Fn(&str) -> Option<String>, blob_endpoint: Option<&str>) -> Result<Settings> {
    let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if let Some(cs) = var("AZURE_STORAGE_CONNECTION_STRING") {
        let c = ConnectionString::parse(&cs)
            .map_err(|e| Error::failure(format!("AZURE_STORAGE_CONNECTION_STRING cannot be parsed: {e}")))?;
        let source = "AZURE_STORAGE_CONNECTION_STRING".to_string();
        if c.development {
            let base = c.dev_proxy.clone().unwrap_or_else(|| "http://127.0.0.1:10000".to_string());
            let endpoint = blob_endpoint
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}/{DEV_ACCOUNT}", base.trim_end_matches('/')));
            return Ok(Settings {
                account: DEV_ACCOUNT.into(),
                endpoint,
                credential: Credential::Key(DEV_KEY.into()),
                source,
            });
        }
        let account = c
            .account
            .clone()
            .or_else(|| blob_endpoint.and_then(account_of_endpoint))
            .or_else(|| c.blob_endpoint.as_deref().and_then(account_of_endpoint));
        let Some(account) = account else {
            return Err(Error::failure(
                "AZURE_STORAGE_CONNECTION_STRING has no AccountName= (nor a BlobEndpoint= naming the account)",
            ));
        };
        let endpoint = blob_endpoint.map(str::to_string).or(c.blob_endpoint.clone()).unwrap_or_else(|| {
            format!(
                "{}://{account}.blob.{}",
                c.protocol.as_deref().unwrap_or("https"),
                c.suffix.as_deref().unwrap_or("core.windows.net")
            )
        });
        let credential = if let Some(k) = c.key {
            Credential::Key(k)
        } else if let Some(s) = c.sas {
            Credential::Sas(s)
        } else {
            return Err(Error::failure(
                "AZURE_STORAGE_CONNECTION_STRING has neither AccountKey= nor SharedAccessSignature=",
            ));
        };
        return Ok(Settings { account, endpoint, credential, source });
    }
    let account = var("AZURE_STORAGE_ACCOUNT").or_else(|| blob_endpoint.and_then(account_of_endpoint));
    let Some(account) = account else {
        return Err(Error::failure(format!(
            "no Azure storage account: looked at {LOOKED_AT}; set AZURE_STORAGE_CONNECTION_STRING, or \
             AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY"
        )));
    };
    let endpoint =
        blob_endpoint.map(str::to_string).unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
    let (credential, source) = if let Some(k) = var("AZURE_STORAGE_KEY") {
        (Credential::Key(k), "AZURE_STORAGE_KEY")
    } else if let Some(s) = var("AZURE_STORAGE_SAS_TOKEN") {
        (Credential::Sas(s), "AZURE_STORAGE_SAS_TOKEN")
    } else if let (Some(client_id), Some(secret), Some(tenant)) =
        (var("AZURE_CLIENT_ID"), var("AZURE_CLIENT_SECRET"), var("AZURE_TENANT_ID"))
    {
        (Credential::ClientSecret { client_id, secret, tenant }, "AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID")
    } else if let (Some(client_id), Some(tenant), Some(token_file)) =
        (var("AZURE_CLIENT_ID"), var("AZURE_TENANT_ID"), var("AZURE_FEDERATED_TOKEN_FILE"))
    {
        (
            Credential::Workload { client_id, tenant, token_file },
            "AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_FEDERATED_TOKEN_FILE",
        )
    } else if on_path("az", env) {
        (Credential::AzureCli, "the Azure CLI login (az login)")
    } else if var("IDENTITY_ENDPOINT").is_some() || var("MSI_ENDPOINT").is_some() {
        (Credential::ManagedIdentity, "the managed identity (IDENTITY_ENDPOINT/MSI_ENDPOINT)")
    } else {
        // Probing the instance metadata service on a machine outside Azure only hangs; on an Azure VM,
        // `az login --identity` makes its identity usable through the CLI.
        return Err(Error::failure(format!(
            "no Azure credential for account {account}: looked at {LOOKED_AT}; set AZURE_STORAGE_KEY or \
             AZURE_STORAGE_SAS_TOKEN, or log in with `az login` (`az login --identity` on an Azure VM)"
        )));
    };
    Ok(Settings { account, endpoint, credential, source: format!("AZURE_STORAGE_ACCOUNT with {source}") })
}

/// `https://acct.blob.core.windows.net` → `acct`; `http://127.0.0.1:10000/devstoreaccount1` → `devstoreaccount1`.
fn account_of_endpoint(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = path.trim_matches('/');
    if !path.is_empty() {
        return Some(path.split('/').next()?.to_string());
    }
    let first = host.split('.').next()?;
    (host.contains(".blob.") && !first.is_empty()).then(|| first.to_string())
}

fn on_path(prog: &str, env: &dyn Fn(&str) -> Option<String>) -> bool {
    env("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

pub struct AzureStore {
    store: MicrosoftAzure,
    container: String,
    source: String,
    peer: Peer,
    listed: Arc<Mutex<Listed>>,
}

/// What [`Guard`] took out of listing responses for us.
#[derive(Debug, Default)]
struct Listed {
    /// Content-MD5 of each blob listed (object_store does not pass it on).
    md5: HashMap<String, [u8; 16]>,
    /// Blob names object_store cannot represent (`a//b`, `.`/`..` segments, control characters), removed.
    dropped: Vec<String>,
}

/// Wraps object_store's HTTP client to see listing responses before object_store parses them: it refuses a
/// whole page for one blob name it cannot represent (`<id>//x`), so such names are taken out (and reported
/// as skipped), and each blob's Content-MD5, which object_store drops, is kept for verifying downloads.
#[derive(Debug)]
struct Guard {
    inner: HttpClient,
    listed: Arc<Mutex<Listed>>,
}

type HttpFuture<'a> = Pin<Box<dyn Future<Output = std::result::Result<HttpResponse, HttpError>> + Send + 'a>>;

impl HttpService for Guard {
    // The signature #[async_trait] gives; written out to spare a dependency.
    fn call<'life0, 'async_trait>(&'life0 self, req: HttpRequest) -> HttpFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let listing =
                req.method() == "GET" && req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "comp=list"));
            let resp = self.inner.execute(req).await?;
            if !listing || !resp.status().is_success() {
                return Ok(resp);
            }
            let (mut parts, body) = resp.into_parts();
            let bytes = body.bytes().await?;
            let Ok(text) = std::str::from_utf8(&bytes) else {
                return Ok(HttpResponse::from_parts(parts, bytes.into()));
            };
            let clean = sanitize_listing(text);
            {
                let mut l = self.listed.lock().expect("lock");
                l.dropped.extend(clean.dropped);
                l.md5.extend(clean.md5);
            }
            parts.headers.remove("content-length");
            Ok(HttpResponse::from_parts(parts, clean.xml.into()))
        })
    }
}

#[derive(Debug)]
struct GuardConnector(Arc<Mutex<Listed>>);

impl HttpConnector for GuardConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Guard { inner, listed: self.0.clone() }))
    }
}

/// A List Blobs response with the entries object_store would choke on removed.
#[derive(Debug, Default, PartialEq)]
pub struct CleanListing {
    pub xml: String,
    pub dropped: Vec<String>,
    pub md5: Vec<(String, [u8; 16])>,
}

/// Takes out `<Blob>` and `<BlobPrefix>` entries whose name object_store's `Path::parse` refuses (or that
/// Azure had to percent-encode, `Encoded="true"`), and collects each kept blob's Content-MD5.
pub fn sanitize_listing(xml: &str) -> CleanListing {
    let mut out = CleanListing { xml: String::with_capacity(xml.len()), ..Default::default() };
    let mut rest = xml;
    loop {
        let blob = rest.find("<Blob>").map(|i| (i, "</Blob>"));
        let prefix = rest.find("<BlobPrefix>").map(|i| (i, "</BlobPrefix>"));
        let next = match (blob, prefix) {
            (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        let Some((start, close)) = next else { break };
        let Some(len) = rest[start..].find(close).map(|j| j + close.len()) else { break };
        let element = &rest[start..start + len];
        out.xml.push_str(&rest[..start]);
        rest = &rest[start + len..];
        let (name, encoded) = element_text(element, "Name").unwrap_or_default();
        let name = xml_unescape(&name);
        if encoded || Path::parse(&name).is_err() || name.is_empty() {
            out.dropped.push(name);
            continue;
        }
        if close == "</Blob>" {
            if let Some(md5) = element_text(element, "Content-MD5").and_then(|(b, _)| base64_md5(b.trim())) {
                out.md5.push((name, md5));
            }
        }
        out.xml.push_str(element);
    }
    out.xml.push_str(rest);
    out
}

/// The text of the first `<tag …>text</tag>` in `xml`, and whether the tag has attributes (Encoded="true").
fn element_text(xml: &str, tag: &str) -> Option<(String, bool)> {
    let open = format!("<{tag}");
    let mut from = 0;
    loop {
        let i = xml[from..].find(&open)? + from;
        let after = &xml[i + open.len()..];
        let gt = after.find('>')?;
        let attrs = &after[..gt];
        if !(attrs.is_empty() || attrs.starts_with(' ')) {
            // Another tag starting the same way (<NameX>).
            from = i + open.len();
            continue;
        }
        if attrs.ends_with('/') {
            return Some((String::new(), false));
        }
        let body = &after[gt + 1..];
        let end = body.find(&format!("</{tag}>"))?;
        return Some((body[..end].to_string(), attrs.contains("Encoded=\"true\"")));
    }
}

/// XML's five entities and character references.
fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let r = &rest[i..];
        let Some(semi) = r.find(';') else {
            out.push_str(r);
            return out;
        };
        let ent = &r[1..semi];
        let c = match ent {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => {
                let n = match ent.strip_prefix("#x").or_else(|| ent.strip_prefix("#X")) {
                    Some(h) => u32::from_str_radix(h, 16).ok(),
                    None => ent.strip_prefix('#').and_then(|d| d.parse().ok()),
                };
                n.and_then(char::from_u32)
            }
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &r[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &r[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A base64 Content-MD5 as 16 bytes.
fn base64_md5(s: &str) -> Option<[u8; 16]> {
    crate::encode::base64_decode(s)?.try_into().ok()
}

impl AzureStore {
    pub fn connect(container: &str, opts: &Options) -> Result<AzureStore> {
        let env = |k: &str| std::env::var(k).ok();
        let s = settings(&opts.azure.over(&env), opts.blob_endpoint.as_deref())?;
        let client = ClientOptions::new()
            .with_timeout_disabled()
            .with_connect_timeout(net::CONNECT_TIMEOUT)
            .with_allow_http(s.endpoint.starts_with("http://"));
        // Our own loop retries, resuming at the byte reached; object_store's would restart underneath it.
        let retry = RetryConfig { max_retries: 0, ..Default::default() };
        let listed = Arc::new(Mutex::new(Listed::default()));
        let mut b = MicrosoftAzureBuilder::new()
            .with_http_connector(GuardConnector(listed.clone()))
            .with_account(&s.account)
            .with_container_name(container)
            .with_endpoint(s.endpoint.clone())
            .with_client_options(client)
            .with_retry(retry);
        b = match &s.credential {
            Credential::Key(k) => b.with_access_key(k),
            Credential::Sas(t) => b.with_config(AzureConfigKey::SasKey, t),
            Credential::ClientSecret { client_id, secret, tenant } => {
                b.with_client_secret_authorization(client_id, secret, tenant)
            }
            Credential::Workload { client_id, tenant, token_file } => {
                b.with_client_id(client_id).with_tenant_id(tenant).with_federated_token_file(token_file)
            }
            Credential::AzureCli => b.with_use_azure_cli(true),
            Credential::ManagedIdentity => {
                let endpoint = env("IDENTITY_ENDPOINT").or_else(|| env("MSI_ENDPOINT")).unwrap_or_default();
                let b = b.with_credential_type("managed_identity").with_msi_endpoint(endpoint);
                match env("AZURE_CLIENT_ID") {
                    Some(id) => b.with_client_id(id),
                    None => b,
                }
            }
        };
        let store = b.build().map_err(|e| {
            Error::failure(format!("Azure settings from {} are not usable: {}", s.source, redact(&e.to_string())))
        })?;
        let peer = Peer {
            endpoint: crate::sanitize::one_line(&redact(&crate::sanitize::redact(&s.endpoint, &[])), 200),
            set_by: "--blob-endpoint, the connection string's BlobEndpoint, or the account name",
            trust: "the system's certificate authorities (SSL_CERT_FILE)",
            idle: opts.retry.idle_timeout,
        };
        Ok(AzureStore { store, container: container.to_string(), source: s.source, peer, listed })
    }

    pub async fn list_page(&self, prefix: &str, token: Option<String>) -> std::result::Result<super::Page, Failure> {
        let opts = PaginatedListOptions { page_token: token, ..Default::default() };
        // object_store drops a blob named exactly like the prefix (a whole backup `<id>` listed by its id), so
        // ask for one character less and filter here.
        let asked = &prefix[..prefix.len() - prefix.chars().next_back().map_or(0, char::len_utf8)];
        let prefix_opt = (!asked.is_empty()).then_some(asked);
        let page =
            self.store.list_paginated(prefix_opt, opts).await.map_err(|e| {
                self.classify(e, &format!("listing az://{}/{}", self.container, super::printable(prefix)))
            })?;
        let (md5, dropped) = {
            let mut l = self.listed.lock().expect("lock");
            (std::mem::take(&mut l.md5), std::mem::take(&mut l.dropped))
        };
        let objects = page
            .result
            .objects
            .into_iter()
            .map(|m| {
                let key = m.location.to_string();
                let sum = md5.get(&key).copied();
                Object::new(key, m.size, m.e_tag).with_md5(sum).with_modified(Some(m.last_modified.to_rfc3339()))
            })
            .filter(|o| o.key.starts_with(prefix))
            .collect();
        let unusable = dropped.into_iter().filter(|n| n.starts_with(prefix)).collect();
        Ok(super::Page { objects, unusable, next: page.page_token.filter(|t| !t.is_empty()) })
    }

    pub async fn open(
        &self,
        obj: &Object,
        start: u64,
        end: u64,
    ) -> std::result::Result<BoxStream<'static, object_store::Result<Bytes>>, Failure> {
        let what = format!("az://{}/{}", self.container, super::printable(&obj.key));
        let path = Path::parse(&obj.key).unwrap_or_else(|_| Path::from(obj.key.as_str()));
        let opts = GetOptions {
            range: Some(GetRange::Bounded(start..end)),
            // Resumed and parallel reads must see the same blob version as the listing did.
            if_match: obj.etag.clone(),
            ..Default::default()
        };
        // object_store checks that the answer is a 206 with the Content-Range asked for; its errors (no status
        // in them) are classified transient, so retried, then reported.
        let got = self.store.get_opts(&path, opts).await.map_err(|e| self.classify(e, &what))?;
        if let Some(etag) = &obj.etag {
            let seen = got.meta.e_tag.as_deref().map(|e| e.trim_matches('"'));
            if seen != Some(etag.as_str()) {
                return Err(Failure::transient(format!(
                    "{what}: ETag {} is not the listing's {etag}: the blob changed (or the store ignores If-Match)",
                    super::printable(seen.unwrap_or("(none)"))
                )));
            }
        }
        if got.range != (start..end) {
            return Err(Failure::transient(format!(
                "{what}: asked for bytes {start}-{}, got {}-{}",
                end - 1,
                got.range.start,
                got.range.end.saturating_sub(1)
            )));
        }
        Ok(got.into_stream())
    }

    pub fn classify(&self, e: object_store::Error, what: &str) -> Failure {
        // object_store says only "error sending request"; the cause is further down its chain.
        if has_http_error(&e) && status_in(&e.to_string()).is_none() {
            if let Some(cause) = net::cause(&e) {
                let line = format!("{what}: {}", cause.describe(&self.peer));
                return if cause.transient() { Failure::transient(line) } else { Failure::permanent(line) };
            }
            return Failure::transient(format!("{what}: {} ({})", net::chain_text(&e), self.peer.endpoint));
        }
        let mut f = classify(e, what, &self.source);
        if !f.transient {
            // Which account the refusal or absence is about.
            f.message = format!("{} (at {})", f.message, self.peer.endpoint);
        }
        f
    }
}

/// Transient or permanent, with a message that names the credential source on refusals.
pub fn classify(e: object_store::Error, what: &str, source: &str) -> Failure {
    let text = redact(&e.to_string());
    // Listing errors come back as Generic whatever the status; the status and Azure's error code are in the text.
    let status = status_in(&text);
    let code = code_in(&text);
    let brief = match (status, &code) {
        (Some(s), Some(c)) => format!("HTTP {s} {c}"),
        (Some(s), None) => format!("HTTP {s}"),
        _ => super::one_line(&text),
    };
    let refused = || Failure::permanent(format!("{what}: Azure rejected the credential from {source} ({brief})"));
    match &e {
        object_store::Error::NotFound { .. } => not_found(what, &brief),
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => refused(),
        object_store::Error::Precondition { .. } => {
            Failure::permanent(format!("{what}: the blob changed while being read (ETag differs): start again"))
        }
        object_store::Error::Generic { .. } => match status {
            Some(401 | 403) => refused(),
            Some(404) => not_found(what, &brief),
            Some(s) if (400..500).contains(&s) && s != 408 && s != 429 => {
                Failure::permanent(format!("{what}: {brief}"))
            }
            _ if has_http_error(&e) => Failure::transient(format!("{what}: {}", super::one_line(&text))),
            _ => Failure::transient(format!("{what}: {brief}")),
        },
        _ => Failure::permanent(format!("{what}: {}", super::one_line(&text))),
    }
}

fn not_found(what: &str, brief: &str) -> Failure {
    if brief.contains("ContainerNotFound") {
        Failure::permanent(format!("{what}: no such container in this storage account (check the container name)"))
    } else {
        Failure::permanent(format!("{what}: not found ({brief})"))
    }
}

/// Azure's `<Code>…</Code>` in an error body.
fn code_in(text: &str) -> Option<String> {
    let i = text.find("<Code>")? + "<Code>".len();
    let j = text[i..].find("</Code>")? + i;
    Some(crate::sanitize::one_line(&text[i..j], 80))
}

/// A failure while reading a body: worth a resumed request.
pub fn body_failure(e: object_store::Error, what: &str) -> Failure {
    Failure::transient(format!("{}: {}", super::printable(what), net::chain_text(&e)))
}

fn has_http_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if c.downcast_ref::<object_store::client::HttpError>().is_some() {
            return true;
        }
        cur = c.source();
    }
    false
}

/// object_store says `status code: 503 Service Unavailable` in its messages; the status is not exposed otherwise.
fn status_in(text: &str) -> Option<u16> {
    let i = text.find("status code: ")? + "status code: ".len();
    text.get(i..i + 3)?.parse().ok()
}

/// Drops query strings from URLs in a message: a SAS token is a secret.
fn redact(text: &str) -> String {
    text.split(' ')
        .map(|w| match (w.contains("://"), w.find('?')) {
            (true, Some(i)) => format!("{}?…", &w[..i]),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| m.get(k).cloned()
    }

    #[test]
    fn azurite_connection_string() {
        let cs = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=abc==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";
        let s = settings(&env(&[("AZURE_STORAGE_CONNECTION_STRING", cs)]), None).unwrap();
        assert_eq!(s.account, "devstoreaccount1");
        assert_eq!(s.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        assert_eq!(s.credential, Credential::Key("abc==".into()));
        let s = settings(&env(&[("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")]), None).unwrap();
        assert_eq!((s.account.as_str(), s.endpoint.as_str()), (DEV_ACCOUNT, "http://127.0.0.1:10000/devstoreaccount1"));
    }

    #[test]
    fn cloud_connection_string() {
        let cs = "DefaultEndpointsProtocol=https;AccountName=acct;SharedAccessSignature=sv=2022&sig=x%3D;EndpointSuffix=core.chinacloudapi.cn";
        let s = settings(&env(&[("AZURE_STORAGE_CONNECTION_STRING", cs)]), None).unwrap();
        assert_eq!(s.endpoint, "https://acct.blob.core.chinacloudapi.cn");
        assert_eq!(s.credential, Credential::Sas("sv=2022&sig=x%3D".into()));
        let e = settings(&env(&[("AZURE_STORAGE_CONNECTION_STRING", "AccountName=a")]), None).unwrap_err();
        assert!(e.message.contains("neither AccountKey"));
        assert!(!e.message.contains("a;"));
    }

    #[test]
    fn account_and_key_or_entra() {
        let s = settings(&env(&[("AZURE_STORAGE_ACCOUNT", "acct"), ("AZURE_STORAGE_KEY", "k")]), None).unwrap();
        assert_eq!(
            (s.endpoint.as_str(), &s.credential),
            ("https://acct.blob.core.windows.net", &Credential::Key("k".into()))
        );
        let s = settings(
            &env(&[
                ("AZURE_STORAGE_ACCOUNT", "acct"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", "s"),
                ("AZURE_TENANT_ID", "t"),
            ]),
            Some("https://acct.blob.core.usgovcloudapi.net"),
        )
        .unwrap();
        assert!(matches!(s.credential, Credential::ClientSecret { .. }));
        assert_eq!(s.endpoint, "https://acct.blob.core.usgovcloudapi.net");
        let e = settings(&env(&[("AZURE_STORAGE_ACCOUNT", "acct"), ("PATH", "/nonexistent")]), None).unwrap_err();
        assert!(e.message.contains("no Azure credential for account acct"), "{}", e.message);
        let s = settings(
            &env(&[("AZURE_STORAGE_ACCOUNT", "acct"), ("PATH", "/nonexistent"), ("IDENTITY_ENDPOINT", "http://x")]),
            None,
        )
        .unwrap();
        assert_eq!(s.credential, Credential::ManagedIdentity);
        let e = settings(&env(&[]), None).unwrap_err();
        assert!(e.message.contains("AZURE_STORAGE_CONNECTION_STRING") && e.message.contains("AZURE_STORAGE_KEY"));
        let s = settings(&env(&[("AZURE_STORAGE_SAS_TOKEN", "sv=1")]), Some("http://127.0.0.1:1/devstoreaccount1"))
            .unwrap();
        assert_eq!(s.account, "devstoreaccount1");
    }

    #[test]
    fn listing_sanitized() {
        let xml = "<EnumerationResults><Blobs><Blob><Name>ok-1</Name><Properties><Content-MD5>rvr3UC1SmUw7AZV2NqPN0g==</Content-MD5></Properties></Blob><Blob><Name>id//x</Name><Properties/></Blob><BlobPrefix><Name>a/</Name></BlobPrefix><Blob><Name>e&#x1B;[2J</Name></Blob><Blob><Name Encoded=\"true\">%1B</Name></Blob><Blob><Name>a&amp;b</Name></Blob></Blobs><NextMarker/></EnumerationResults>";
        let c = sanitize_listing(xml);
        assert_eq!(c.dropped, vec!["id//x".to_string(), "e\u{1b}[2J".to_string(), "%1B".to_string()]);
        assert_eq!(c.md5.len(), 1);
        assert_eq!(hex_of(&c.md5[0].1), "aefaf7502d52994c3b01957636a3cdd2");
        assert!(c.xml.contains("<Name>ok-1</Name>") && c.xml.contains("a&amp;b") && c.xml.contains("<Name>a/</Name>"));
        assert!(!c.xml.contains("id//x") && c.xml.ends_with("<NextMarker/></EnumerationResults>"));
    }

    fn hex_of(b: &[u8]) -> String {
        crate::store::hex(b)
    }

    #[test]
    fn helpers() {
        assert_eq!(code_in("x <Code>AuthorizationFailure</Code> y"), Some("AuthorizationFailure".into()));
        assert_eq!(status_in("Server returned non-2xx status code: 503 Service Unavailable: x"), Some(503));
        assert_eq!(
            redact("GET https://a.blob.core.windows.net/c/x?sv=1&sig=SECRET failed"),
            "GET https://a.blob.core.windows.net/c/x?… failed"
        );
        assert_eq!(account_of_endpoint("https://acct.blob.core.windows.net"), Some("acct".into()));
    }
}
