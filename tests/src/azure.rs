//! A throwaway Azure Blob API for tests: Azurite (`azurite-blob`, from npm) on 127.0.0.1 and a free port,
//! its data in a temporary directory, stopped on drop. Blobs are uploaded with Microsoft's Python client
//! (`azure-storage-blob`), never with our own code.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::free_port;
use crate::s3::wait_for_port;

/// Azurite's well-known development account and key (published by Microsoft; not a secret).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Variables of the Azure SDKs and CLI that must not leak from the developer's environment into a test.
pub const AZURE_ENV: &[&str] = &[
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
];

const INSTALL_HINT: &str =
    "run the README's test command, which installs them (azurite from npm into tests/node; pip install azure-storage-blob)";

pub struct Azurite {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Azurite {
    pub fn start() -> Azurite {
        let probe = Command::new("python3").args(["-c", "import azure.storage.blob"]).output();
        match probe {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "azure-storage-blob is missing ({}): {INSTALL_HINT}",
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
            ),
            Err(e) => panic!("python3 is missing ({e}): {INSTALL_HINT}"),
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let log_path = dir.path().join("azurite.log");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let port = free_port();
        let out = std::fs::File::create(&log_path).expect("log file");
        // scripts/test installs Azurite into tests/node; a global install serves as well.
        let local = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("node/node_modules/.bin/azurite-blob");
        let program = if local.exists() { local.into_os_string() } else { "azurite-blob".into() };
        let child = Command::new(program)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--location"])
            .arg(&data)
            .args(["--silent", "--skipApiVersionCheck"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => panic!("azurite-blob cannot be started ({e}): {INSTALL_HINT}"),
        };
        wait_for_port(port, &mut child, "azurite-blob", &log_path);
        Azurite { child, port, _dir: dir }
    }

    pub fn blob_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The connection string an operator would copy from the portal (Azurite's form, with `BlobEndpoint=`).
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={};",
            self.blob_endpoint()
        )
    }

    /// Creates `container` (if needed) and uploads `(name, file)` pairs as block blobs.
    pub fn put(&self, container: &str, blobs: &[(String, PathBuf)]) {
        let manifest = tempfile::NamedTempFile::new().expect("manifest");
        let lines: String = blobs.iter().map(|(k, p)| format!("{k}\t{}\n", p.display())).collect();
        std::fs::write(manifest.path(), lines).expect("write manifest");
        let script = r#"
import sys
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
conn, container, manifest = sys.argv[1:4]
svc = BlobServiceClient.from_connection_string(conn)
try:
    svc.create_container(container)
except ResourceExistsError:
    pass
c = svc.get_container_client(container)
for line in open(manifest):
    name, path = line.rstrip("\n").split("\t")
    with open(path, "rb") as f:
        c.upload_blob(name, f.read(), overwrite=True)
"#;
        let out = Command::new("python3")
            .args(["-c", script, &self.connection_string(), container])
            .arg(manifest.path())
            .output()
            .expect("run azure-storage-blob upload");
        assert!(out.status.success(), "azure-storage-blob upload failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
