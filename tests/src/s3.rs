//! A throwaway S3 API for tests: moto's server (`python3 -m moto.server`) on 127.0.0.1 and a free port,
//! stopped on drop. Objects are uploaded with boto3, the client library moto is tested against, never with
//! our own code.
//!
//! ```no_run
//! let s3 = a9s_tests::s3::Moto::start();
//! s3.put("bkt", &[("key".to_string(), std::path::PathBuf::from("/tmp/file"))]);
//! ```

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// Variables of the AWS SDKs and CLI that must not leak from the developer's environment into a test.
pub const AWS_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_EC2_METADATA_DISABLED",
];

const INSTALL_HINT: &str = "run the README's test command, which installs them (pip install 'moto[server]' boto3)";

/// A running moto server.
pub struct Moto {
    child: Child,
    pub port: u16,
    _log: tempfile::TempDir,
    /// With TLS: the authority that signed the server's certificate (for boto3 and AWS_CA_BUNDLE).
    pub ca: Option<PathBuf>,
}

/// Waits until something accepts connections on the port, or panics with `what` and the log.
pub fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &std::path::Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before listening: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{what} did not listen on 127.0.0.1:{port} within 60 s: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

impl Moto {
    pub fn start() -> Moto {
        Self::start_with(None)
    }

    /// moto on https with the certificate and key given, signed by `ca`.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path, ca: &std::path::Path) -> Moto {
        Self::start_with(Some((cert, key, ca)))
    }

    fn start_with(tls: Option<(&std::path::Path, &std::path::Path, &std::path::Path)>) -> Moto {
        let probe = Command::new("python3").args(["-c", "import moto.server, boto3, flask"]).output();
        match probe {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "moto's server or boto3 is missing ({}): {INSTALL_HINT}",
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
            ),
            Err(e) => panic!("python3 is missing ({e}): {INSTALL_HINT}"),
        }
        let log = tempfile::tempdir().expect("tempdir");
        let log_path = log.path().join("moto.log");
        let port = free_port();
        let out = std::fs::File::create(&log_path).expect("log file");
        let mut c = Command::new("python3");
        c.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((cert, key, _)) = tls {
            c.arg("-c").arg(cert).arg("-k").arg(key);
        }
        let mut child =
            c.stdin(Stdio::null()).stdout(out.try_clone().expect("dup")).stderr(out).spawn().expect("start moto");
        wait_for_port(port, &mut child, "moto", &log_path);
        Moto { child, port, _log: log, ca: tls.map(|(_, _, ca)| ca.to_path_buf()) }
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Environment for our programs: test credentials, a region, this endpoint, and no instance metadata
    /// lookups (the SDK would otherwise probe a link-local address when credentials are missing).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("AWS_CONFIG_FILE".into(), "/nonexistent/a9s-tests/aws-config".into()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), "/nonexistent/a9s-tests/aws-credentials".into()),
        ]
    }

    /// Creates `bucket` (if needed) and uploads `(key, file)` pairs with boto3's put_object.
    pub fn put(&self, bucket: &str, objects: &[(String, PathBuf)]) {
        let manifest = tempfile::NamedTempFile::new().expect("manifest");
        let lines: String = objects.iter().map(|(k, p)| format!("{k}\t{}\n", p.display())).collect();
        std::fs::write(manifest.path(), lines).expect("write manifest");
        let script = r#"
import sys, boto3
endpoint, bucket, manifest = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                  aws_secret_access_key="testing", region_name="us-east-1")
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
for line in open(manifest):
    key, path = line.rstrip("\n").split("\t")
    with open(path, "rb") as f:
        s3.put_object(Bucket=bucket, Key=key, Body=f.read())
"#;
        let mut c = Command::new("python3");
        c.args(["-c", script, &self.endpoint(), bucket]).arg(manifest.path());
        if let Some(ca) = &self.ca {
            c.env("AWS_CA_BUNDLE", ca);
        }
        let out = c.output().expect("run boto3 upload");
        assert!(out.status.success(), "boto3 upload failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
