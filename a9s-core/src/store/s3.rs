//! S3 and S3-compatible storage through aws-sdk-s3, with the standard credential chain.

use aws_config::meta::region::RegionProviderChain;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use crate::error::{Error, IoContext, Result};

use super::net::{self, Peer};
use super::{Failure, Object, Options};

/// Where the SDK looks for credentials, named in the message when none is found or S3 refuses one.
const CREDENTIAL_SOURCES: &str = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY(/AWS_SESSION_TOKEN), AWS_PROFILE with \
~/.aws/config and ~/.aws/credentials (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE), AWS_WEB_IDENTITY_TOKEN_FILE, \
the ECS container endpoint and EC2 instance metadata";

pub struct S3Store {
    client: Client,
    bucket: String,
    peer: Peer,
}

impl S3Store {
    pub async fn connect(bucket: &str, opts: &Options) -> Result<S3Store> {
        // Our own retry loop resumes at the byte reached; the SDK's would repeat whole requests underneath it
        // and multiply the attempts, so it is off.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(net::CONNECT_TIMEOUT)
            .read_timeout(opts.retry.idle_timeout)
            .build();
        if let Some(name) = &opts.profile {
            check_profile(name).await?;
        }
        // --region first, then the SDK's chain (AWS_REGION, AWS_DEFAULT_REGION, the profile's region, IMDS)
        // for the profile chosen, then us-east-1 as the aws CLI does for S3.
        let mut chain = aws_config::default_provider::region::DefaultRegionChain::builder();
        if let Some(name) = &opts.profile {
            chain = chain.profile_name(name);
        }
        let region = RegionProviderChain::first_try(opts.region.clone().map(aws_config::Region::new))
            .or_else(chain.build())
            .or_else("us-east-1");
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(name) = &opts.profile {
            loader = loader.profile_name(name);
        }
        if let Some(path) = &opts.ca_bundle {
            loader = loader.http_client(client_trusting(path)?);
        }
        if opts.no_sign_request {
            loader = loader.no_credentials();
        }
        let endpoint = opts
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok().filter(|s| !s.is_empty()))
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok().filter(|s| !s.is_empty()));
        if let Some(url) = &endpoint {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        if !opts.no_sign_request {
            let provider = config.credentials_provider().ok_or_else(|| {
                Error::failure(format!("no AWS credential provider configured: looked at {CREDENTIAL_SOURCES}"))
            })?;
            use aws_sdk_s3::config::ProvideCredentials;
            if let Err(e) = provider.provide_credentials().await {
                // The chain's last provider is EC2 instance metadata, whose refusal off EC2 says nothing useful.
                let detail = match &e {
                    aws_credential_types::provider::error::CredentialsError::CredentialsNotLoaded(_) => String::new(),
                    other => match net::chain_text(other) {
                        t if t.contains("IMDS") || t.contains("instance metadata") => String::new(),
                        t => format!(" ({t})"),
                    },
                };
                return Err(Error::failure(format!(
                    "no AWS credentials found{detail}: looked at {CREDENTIAL_SOURCES}; set AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY, or --profile (AWS_PROFILE); --no-sign-request for a public bucket"
                )));
            }
        }
        let mut s3 = aws_sdk_s3::config::Builder::from(&config);
        if endpoint.is_some() {
            // S3-compatible servers (MinIO, Ceph, moto) rarely have per-bucket host names.
            s3 = s3.force_path_style(true);
        }
        let peer = Peer {
            endpoint: endpoint.clone().unwrap_or_else(|| match config.region() {
                Some(r) => format!("the AWS S3 endpoint of region {r}"),
                None => "the AWS S3 endpoint".to_string(),
            }),
            set_by: "--endpoint-url or AWS_ENDPOINT_URL",
            trust: "--ca-bundle or AWS_CA_BUNDLE",
            idle: opts.retry.idle_timeout,
        };
        Ok(S3Store { client: Client::from_conf(s3.build()), bucket: bucket.to_string(), peer })
    }

    /// One page of a listing; `None` as the next token when it was the last. Keys come URL-encoded
    /// (`encoding-type=url`): a key holding a character XML 1.0 cannot carry (ESC, other controls) would
    /// otherwise make the whole response unreadable, and with it every valid backup beside it.
    pub async fn list_page(&self, prefix: &str, token: Option<String>) -> std::result::Result<super::Page, Failure> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| {
                classify(e, &format!("listing s3://{}/{}", self.bucket, super::printable(prefix)), &self.peer)
            })?;
        let mut objects = Vec::new();
        let mut unusable = Vec::new();
        for o in out.contents() {
            let Some(raw) = o.key() else { continue };
            let Some(key) = url_decode(raw) else {
                unusable.push(raw.to_string());
                continue;
            };
            let modified = o.last_modified().map(|t| t.to_string());
            objects.push(
                Object::new(key, o.size().unwrap_or(0).max(0) as u64, o.e_tag().map(str::to_string))
                    .with_modified(modified),
            );
        }
        let next =
            if out.is_truncated() == Some(true) { out.next_continuation_token().map(str::to_string) } else { None };
        Ok(super::Page { objects, unusable, next })
    }

    /// Opens bytes `start..end` of the object. The response must be the one asked for before a byte of its
    /// body is taken: 206 with exactly `bytes start-(end-1)/size` as Content-Range (a 200 has none), the
    /// length asked for, and the listing's ETag (a store that ignores If-Match would otherwise hand over a
    /// changed object). Anything else is retried, then reported.
    pub async fn open(&self, obj: &Object, start: u64, end: u64) -> std::result::Result<ByteStream, Failure> {
        let what = format!("s3://{}/{}", self.bucket, super::printable(&obj.key));
        let mut req =
            self.client.get_object().bucket(&self.bucket).key(&obj.key).range(format!("bytes={start}-{}", end - 1));
        if let Some(etag) = &obj.etag {
            // A resumed or parallel ranged GET must read the same object version as the listing saw.
            req = req.if_match(format!("\"{etag}\""));
        }
        let out = req.send().await.map_err(|e| classify(e, &what, &self.peer))?;
        let want = format!("bytes {start}-{}/{}", end - 1, obj.size);
        match out.content_range() {
            Some(got) if got == want => {}
            Some(got) => {
                return Err(Failure::transient(format!(
                    "{what}: asked for {want}, the store answered with {} (a different range)",
                    super::printable(got)
                )))
            }
            None => {
                return Err(Failure::transient(format!(
                    "{what}: asked for {want}, the store answered without Content-Range (not a ranged response)"
                )))
            }
        }
        let len = out.content_length().unwrap_or(-1);
        if len != (end - start) as i64 {
            return Err(Failure::transient(format!("{what}: asked for {want}, got {len} bytes")));
        }
        if let Some(etag) = &obj.etag {
            let got = out.e_tag().map(|e| e.trim_matches('"'));
            if got != Some(etag.as_str()) {
                return Err(Failure::transient(format!(
                    "{what}: ETag {} is not the listing's {etag}: the object changed (or the store ignores If-Match)",
                    super::printable(got.unwrap_or("(none)"))
                )));
            }
        }
        Ok(out.body)
    }
}

/// Refuses a profile that is in neither profile file, as the aws CLI does ("The config profile (x) could not
/// be found"), instead of letting the credential chain fail later with a vaguer message.
async fn check_profile(name: &str) -> Result<()> {
    use aws_runtime::env_config::file::EnvConfigFiles;
    let set = aws_config::profile::load(
        &aws_types::os_shim_internal::Fs::real(),
        &aws_types::os_shim_internal::Env::real(),
        &EnvConfigFiles::default(),
        Some(name.to_string().into()),
    )
    .await
    .map_err(|e| {
        Error::failure(format!("the AWS profile files cannot be read: {}", super::one_line(&e.to_string())))
    })?;
    // "default" needs no section: it is what the SDK uses anyway, with keys from the environment.
    if set.get_profile(name).is_some() || name == "default" {
        return Ok(());
    }
    let files = format!(
        "{} or {}",
        std::env::var("AWS_CONFIG_FILE").unwrap_or_else(|_| "~/.aws/config".into()),
        std::env::var("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|_| "~/.aws/credentials".into())
    );
    let mut known: Vec<&str> = set.profiles().collect();
    known.sort_unstable();
    let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
    Err(Error::failure(format!(
        "the AWS profile {name:?} (--profile or AWS_PROFILE) is not in {files} (profiles there: {known})"
    )))
}

/// The SDK's HTTPS client trusting the system's authorities and those in a PEM file (`--ca-bundle`,
/// `AWS_CA_BUNDLE`). The file is checked here: the SDK would only panic on a bad one at the first request.
fn client_trusting(path: &std::path::Path) -> Result<aws_sdk_s3::config::SharedHttpClient> {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let what = format!("CA bundle {} (--ca-bundle or AWS_CA_BUNDLE)", path.display());
    let pem = std::fs::read(path).context_io(|| &what)?;
    let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::failure(format!("{what}: not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(Error::failure(format!("{what}: no -----BEGIN CERTIFICATE----- in it")));
    }
    for (i, c) in certs.into_iter().enumerate() {
        rustls::RootCertStore::empty().add(c).map_err(|e| {
            Error::failure(format!("{what}: certificate {} is not usable as an authority ({e})", i + 1))
        })?;
    }
    let ctx = TlsContext::builder()
        .with_trust_store(TrustStore::default().with_pem_certificate(pem))
        .build()
        .map_err(|e| Error::failure(format!("{what}: {e}")))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(ctx)
        .build_https())
}

/// Decodes a key of an `encoding-type=url` listing (`%XX` and `+` for space, as the AWS SDKs do); `None` when
/// it is not valid percent-encoding of UTF-8.
pub fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Turns an SDK error into a transient or permanent failure with a message an operator can act on.
fn classify<E, R>(e: SdkError<E, R>, what: &str, peer: &Peer) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus + 'static,
{
    match &e {
        SdkError::TimeoutError(_) => Failure::transient(format!("{what}: {}", net::Cause::Timeout.describe(peer))),
        SdkError::DispatchFailure(d) => {
            if let Some(cause) = net::cause(&e) {
                let line = format!("{what}: {}", cause.describe(peer));
                return if cause.transient() { Failure::transient(line) } else { Failure::permanent(line) };
            }
            let detail = net::chain_text(&e);
            if d.is_user() {
                Failure::permanent(format!("{what}: {detail}"))
            } else {
                Failure::transient(format!("{what}: {detail} ({})", peer.endpoint))
            }
        }
        SdkError::ConstructionFailure(_) => Failure::permanent(format!("{what}: {}", net::chain_text(&e))),
        SdkError::ResponseError(_) | SdkError::ServiceError(_) => {
            let status = e.raw_response().map(|r| r.status_code()).unwrap_or(0);
            let meta = e.as_service_error().map(|s| (s.code().map(str::to_string), s.message().map(str::to_string)));
            let (code, message) = meta.unwrap_or((None, None));
            let code = code.unwrap_or_default();
            let text = match (&code, &message) {
                (c, Some(m)) if !c.is_empty() => format!("{c}: {m}"),
                (c, None) if !c.is_empty() => c.clone(),
                (_, Some(m)) => m.clone(),
                _ => format!("HTTP {status}"),
            };
            let text = super::one_line(&text);
            match (status, code.as_str()) {
                (
                    _,
                    "SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable" | "RequestTimeTooSkewed",
                ) => Failure::transient(format!("{what}: {text} (HTTP {status})")),
                (500..=599 | 429 | 408, _) => Failure::transient(format!("{what}: {text} (HTTP {status})")),
                (0, _) => Failure::transient(format!("{what}: unreadable response: {text}")),
                (
                    _,
                    "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "ExpiredToken"
                    | "InvalidToken"
                    | "TokenRefreshRequired",
                ) => Failure::permanent(format!(
                    "{what}: S3 rejected the credentials ({code}): check {CREDENTIAL_SOURCES}"
                )),
                (403, _) => Failure::permanent(format!(
                    "{what}: access denied by {} ({text}): check the key's permissions and the bucket policy \
                     (credentials from {CREDENTIAL_SOURCES})",
                    peer.endpoint
                )),
                (404, "NoSuchBucket") => Failure::permanent(format!(
                    "{what}: no such bucket at {} (check the bucket name, --endpoint-url and AWS_REGION)",
                    peer.endpoint
                )),
                (404, _) => Failure::permanent(format!("{what}: not found ({text})")),
                (412, _) => Failure::permanent(format!(
                    "{what}: the object changed while being read (ETag differs): start again"
                )),
                (301, _) => Failure::permanent(format!(
                    "{what}: the bucket is in another region: set AWS_REGION to the bucket's region ({text})"
                )),
                _ => Failure::permanent(format!("{what}: {text} (HTTP {status})")),
            }
        }
        _ => Failure::transient(format!("{what}: {}", net::chain_text(&e))),
    }
}

/// The status of a raw response, whatever its type.
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// A failure while reading a response body: always worth a resumed request.
pub fn body_failure(e: impl std::error::Error + 'static, key: &str) -> Failure {
    Failure::transient(format!("{}: {}", super::printable(key), net::chain_text(&e)))
}

#[cfg(test)]
mod tests {
    use super::url_decode;

    #[test]
    fn url_decoding() {
        assert_eq!(url_decode("a%1Bb+c%2Bd%2F").as_deref(), Some("a\u{1b}b c+d/"));
        assert_eq!(url_decode("plain-name_0").as_deref(), Some("plain-name_0"));
        assert_eq!(url_decode("bad%zz"), None);
        assert_eq!(url_decode("cut%2"), None);
        assert_eq!(url_decode("%ff"), None);
    }
}
