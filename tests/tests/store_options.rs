//! The aws and az CLI options operators already type, on a9s-ls and a9s-fetch: `--profile`, `--region`,
//! `--no-sign-request`, `--ca-bundle`/`AWS_CA_BUNDLE` against moto (through a recording proxy where the test
//! must see what was signed), and `--account-name`, `--account-key`, `--sas-token`, `--connection-string`
//! against Azurite.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use a9s_tests::azure::{Azurite, ACCOUNT, AZURE_ENV, KEY};
use a9s_tests::fixtures::{self, Enc, INSTANCE, MILLIS};
use a9s_tests::http::RecordingProxy;
use a9s_tests::s3::{Moto, AWS_ENV};
use a9s_tests::{assert_status, bin, stderr};

const BUCKET: &str = "a9s-backups";
const SECRET: &str = "store-options-secret";

/// One backup of three parts and its metadata, S3-shaped, under a temporary directory.
struct Backup {
    _dir: tempfile::TempDir,
    id: String,
    objects: Vec<(String, PathBuf)>,
    data: Vec<u8>,
}

fn backup() -> Backup {
    let dir = tempfile::tempdir().unwrap();
    let id = format!("{INSTANCE}-{MILLIS}");
    let enc = fixtures::encrypt(&fixtures::random_bytes(2500, 7), SECRET, Enc::default());
    let mut objects: Vec<(String, PathBuf)> = fixtures::split_into_parts(&enc, dir.path(), &id, 1024, 0)
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    assert_eq!(objects.len(), 3);
    let meta = dir.path().join(format!("{id}.json"));
    std::fs::write(&meta, format!("{{\"backup_id\":\"{id}\"}}")).unwrap();
    objects.push((format!("{id}.json"), meta));
    Backup { _dir: dir, id, objects, data: enc }
}

fn run(prog: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin(prog));
    c.args(args).stdin(Stdio::null());
    for v in AWS_ENV.iter().chain(AZURE_ENV).chain(&["AWS_CA_BUNDLE"]) {
        c.env_remove(v);
    }
    // Never probe instance metadata, never read the developer's ~/.aws.
    c.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/a9s-tests/aws-config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/a9s-tests/aws-credentials")
        // Entra ID through the az CLI must not be what makes an Azure test pass.
        .env("PATH", "/usr/bin:/bin");
    c.envs(env.iter().copied());
    c.output().expect("run program")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The region and access key id in each request's SigV4 `Authorization` header (None when unsigned).
fn signed_with(p: &RecordingProxy) -> Vec<Option<(String, String)>> {
    p.requests()
        .iter()
        .map(|r| {
            let a = r.header("authorization")?;
            let cred = a.split("Credential=").nth(1)?.split(',').next()?;
            let f: Vec<&str> = cred.split('/').collect();
            Some((f[0].to_string(), f[2].to_string()))
        })
        .collect()
}

fn static_keys() -> Vec<(&'static str, &'static str)> {
    vec![("AWS_ACCESS_KEY_ID", "AKIDSTATIC"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_REGION", "us-east-1")]
}

#[test]
fn s3_profile_region_and_unknown_profiles() {
    let moto = Moto::start();
    let b = backup();
    moto.put(BUCKET, &b.objects);
    let proxy = RecordingProxy::start(moto.port);
    let aws = tempfile::tempdir().unwrap();
    let (config, credentials) = (aws.path().join("config"), aws.path().join("credentials"));
    std::fs::write(&config, "[default]\nregion = us-west-1\n\n[profile recovery]\nregion = eu-central-1\n").unwrap();
    std::fs::write(
        &credentials,
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = x\n\n\
         [recovery]\naws_access_key_id = AKIDRECOVERY\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let files =
        [("AWS_CONFIG_FILE", config.to_str().unwrap()), ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap())];
    let loc = format!("s3://{BUCKET}/{INSTANCE}");
    let url = proxy.url();

    // --profile: the profile's keys and region.
    let o = run("a9s-ls", &["--profile", "recovery", "--endpoint-url", &url, "--latest", &loc], &files);
    assert_status(&o, 0);
    assert_eq!(out(&o).trim(), b.id);
    assert_eq!(signed_with(&proxy).last().unwrap(), &Some(("AKIDRECOVERY".into(), "eu-central-1".into())));

    // AWS_PROFILE does the same; --region wins over the profile's region.
    let mut env = files.to_vec();
    env.push(("AWS_PROFILE", "recovery"));
    let o = run("a9s-ls", &["--region", "ap-southeast-2", "--endpoint-url", &url, &loc], &env);
    assert_status(&o, 0);
    assert_eq!(signed_with(&proxy).last().unwrap(), &Some(("AKIDRECOVERY".into(), "ap-southeast-2".into())));

    // --region over AWS_REGION with static keys, on a9s-fetch too (and the bytes are the backup's).
    let mut env = static_keys();
    env.push(("AWS_ENDPOINT_URL", url.as_str()));
    let o = run("a9s-fetch", &["--region", "eu-west-3", "-o", "-", &format!("s3://{BUCKET}/{}", b.id)], &env);
    assert_status(&o, 0);
    assert!(o.stdout == b.data, "a9s-fetch streamed other bytes than the backup's");
    let signed = signed_with(&proxy);
    assert!(signed.len() >= 3);
    assert_eq!(signed.last().unwrap(), &Some(("AKIDSTATIC".into(), "eu-west-3".into())));

    // An unknown profile, by flag or by variable: one line naming it and the profiles there are.
    let before = proxy.requests().len();
    for (args, extra) in [(vec!["--profile", "recvoery"], None), (vec![], Some(("AWS_PROFILE", "recvoery")))] {
        let mut env = files.to_vec();
        env.extend(extra);
        let mut a = args.clone();
        a.extend(["--endpoint-url", url.as_str(), loc.as_str()]);
        for prog in ["a9s-ls", "a9s-fetch"] {
            let mut a = a.clone();
            if prog == "a9s-fetch" {
                a.splice(0..0, ["--latest", "-o", "-"]);
            }
            let o = run(prog, &a, &env);
            assert_status(&o, 1);
            let err = stderr(&o);
            assert!(err.contains("the AWS profile \"recvoery\""), "{prog}: {err}");
            assert!(err.contains("profiles there: default, recovery"), "{prog}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
    assert_eq!(proxy.requests().len(), before, "nothing may be sent with an unknown profile");
}

/// Grants public read on the objects, as a public bucket's owner does, with boto3.
fn make_public(moto: &Moto, keys: &[&str]) {
    let script = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="testing",
                  aws_secret_access_key="testing", region_name="us-east-1")
for key in sys.argv[3:]:
    s3.put_object_acl(Bucket=sys.argv[2], Key=key, ACL="public-read")
"#;
    let o = Command::new("python3").args(["-c", script, &moto.endpoint(), BUCKET]).args(keys).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn s3_no_sign_request_reads_a_public_bucket_without_credentials() {
    let moto = Moto::start();
    let b = backup();
    moto.put(BUCKET, &b.objects);
    make_public(&moto, &b.objects.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>());
    let proxy = RecordingProxy::start(moto.port);
    let loc = format!("s3://{BUCKET}/{INSTANCE}");
    // No credentials anywhere: refused as before, naming --no-sign-request.
    let o = run("a9s-ls", &["--endpoint-url", &proxy.url(), &loc], &[]);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("--no-sign-request"), "{}", stderr(&o));
    let o = run("a9s-ls", &["--no-sign-request", "--endpoint-url", &proxy.url(), "--latest", &loc], &[]);
    assert_status(&o, 0);
    assert_eq!(out(&o).trim(), b.id);
    let o = run("a9s-fetch", &["--no-sign-request", "--endpoint-url", &proxy.url(), "--latest", "-o", "-", &loc], &[]);
    assert_status(&o, 0);
    assert!(o.stdout == b.data);
    let signed = signed_with(&proxy);
    assert!(signed.len() >= 3 && signed.iter().all(Option::is_none), "requests were signed: {signed:?}");
}

/// A CA and a certificate for 127.0.0.1 signed by it, made by the openssl CLI.
fn make_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let sh = |script: &str| {
        let o = Command::new("bash").args(["-euc", script]).current_dir(dir).output().unwrap();
        assert!(o.status.success(), "openssl: {}", String::from_utf8_lossy(&o.stderr));
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=a9s-test-ca \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext
        openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext 2>/dev/null");
    (dir.join("srv.pem"), dir.join("srv.key"), dir.join("ca.pem"))
}

#[test]
fn s3_ca_bundle_trusts_a_private_authority() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, ca) = make_ca(certs.path());
    let moto = Moto::start_tls(&cert, &key, &ca);
    let b = backup();
    moto.put(BUCKET, &b.objects);
    let loc = format!("s3://{BUCKET}/{INSTANCE}");
    let mut env = static_keys();
    let endpoint = moto.endpoint();
    env.push(("AWS_ENDPOINT_URL", endpoint.as_str()));

    // Without the bundle the certificate is not trusted.
    let o = run("a9s-ls", &["--latest", &loc], &env);
    assert_status(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("is not trusted (UnknownIssuer)") && err.contains("AWS_CA_BUNDLE"), "{err}");
    assert!(err.contains(&endpoint), "the endpoint is named: {err}");
    assert_eq!(err.lines().count(), 1, "an untrusted certificate is not worth a retry: {err}");

    let mut with_ca = env.clone();
    with_ca.push(("AWS_CA_BUNDLE", ca.to_str().unwrap()));
    let o = run("a9s-ls", &["--latest", &loc], &with_ca);
    assert_status(&o, 0);
    assert_eq!(out(&o).trim(), b.id);
    let o = run("a9s-fetch", &["--latest", "-o", "-", &loc], &with_ca);
    assert_status(&o, 0);
    assert!(o.stdout == b.data);
    let o = run("a9s-ls", &["--ca-bundle", ca.to_str().unwrap(), "--latest", &loc], &env);
    assert_status(&o, 0);

    // A bundle that is not one: refused before any request, naming the file.
    let o = run("a9s-ls", &["--ca-bundle", key.to_str().unwrap(), &loc], &env);
    assert_status(&o, 1);
    assert!(stderr(&o).contains(&format!("CA bundle {}", key.display())), "{}", stderr(&o));
    let o = run("a9s-ls", &["--ca-bundle", "/nonexistent/ca.pem", &loc], &env);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("/nonexistent/ca.pem"), "{}", stderr(&o));
}

/// A container SAS with list and read permission, made by Microsoft's Python client.
fn container_sas(container: &str) -> String {
    let script = r#"
import sys, datetime
from azure.storage.blob import generate_container_sas, ContainerSasPermissions
print(generate_container_sas(sys.argv[1], sys.argv[2], account_key=sys.argv[3],
      permission=ContainerSasPermissions(read=True, list=True),
      expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)))
"#;
    let o = Command::new("python3").args(["-c", script, ACCOUNT, container, KEY]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

#[test]
fn azure_account_key_sas_and_connection_string_flags() {
    let az = Azurite::start();
    let b = backup();
    // On Azure a backup is one blob named by its id.
    let whole = b._dir.path().join("whole");
    std::fs::write(&whole, &b.data).unwrap();
    az.put("backups", &[(b.id.clone(), whole)]);
    let loc = format!("az://backups/{INSTANCE}");
    let endpoint = az.blob_endpoint();
    let sas = container_sas("backups");
    let cs = az.connection_string();
    let wrong_cs = cs.replace(KEY, "d3Jvbmcga2V5");

    let ok = |args: &[&str], env: &[(&str, &str)]| {
        let o = run("a9s-ls", &[args, &["--latest", &loc]].concat(), env);
        assert_status(&o, 0);
        assert_eq!(out(&o).trim(), b.id);
        stderr(&o)
    };
    // Account and key as flags: it works, with a warning that the key is visible in ps.
    let err = ok(&["--blob-endpoint", &endpoint, "--account-name", ACCOUNT, "--account-key", KEY], &[]);
    assert!(
        err.contains("--account-key puts a secret on the command line") && err.contains("AZURE_STORAGE_KEY"),
        "{err}"
    );
    assert!(!err.contains(KEY), "{err}");
    // The account by flag, the key or SAS from the variables az uses: no warning.
    let err = ok(&["--blob-endpoint", &endpoint, "--account-name", ACCOUNT], &[("AZURE_STORAGE_KEY", KEY)]);
    assert!(!err.contains("warning"), "{err}");
    ok(&["--blob-endpoint", &endpoint], &[("AZURE_STORAGE_ACCOUNT", ACCOUNT), ("AZURE_STORAGE_SAS_TOKEN", &sas)]);
    // A SAS as a flag.
    let err = ok(&["--blob-endpoint", &endpoint, "--account-name", ACCOUNT, "--sas-token", &sas], &[]);
    assert!(err.contains("--sas-token puts a secret") && !err.contains("sig="), "{err}");
    // A connection string as a flag, over a wrong one in the environment.
    let err = ok(&["--connection-string", &cs], &[("AZURE_STORAGE_CONNECTION_STRING", &wrong_cs)]);
    assert!(!err.contains(KEY), "{err}");
    // As az: naming the account on the command line sets a connection string in the environment aside.
    ok(
        &["--blob-endpoint", &endpoint, "--account-name", ACCOUNT],
        &[("AZURE_STORAGE_CONNECTION_STRING", &wrong_cs), ("AZURE_STORAGE_KEY", KEY)],
    );
    // a9s-fetch takes the same flags.
    let o = run(
        "a9s-fetch",
        &[
            "--blob-endpoint",
            &endpoint,
            "--account-name",
            ACCOUNT,
            "--sas-token",
            &sas,
            "-o",
            "-",
            &format!("az://backups/{}", b.id),
        ],
        &[],
    );
    assert_status(&o, 0);
    assert!(o.stdout == b.data);
    // A wrong key by flag is reported as refused, without the key.
    let o = run(
        "a9s-ls",
        &["--blob-endpoint", &endpoint, "--account-name", ACCOUNT, "--account-key", "d3Jvbmcga2V5", &loc],
        &[],
    );
    assert_status(&o, 1);
    assert!(stderr(&o).contains("rejected the credential"), "{}", stderr(&o));
}

/// What no message may hold: Rust's `Debug` forms of the clients' errors.
fn plain(err: &str) {
    for debug in
        ["{", "DispatchFailure", "ConnectorError", "ProviderError", "hyper_util", "Os {", "Generic MicrosoftAzure"]
    {
        assert!(!err.contains(debug), "{debug:?} in the message: {err}");
    }
}

#[test]
fn an_endpoint_nobody_listens_on_is_two_plain_lines_within_30_s() {
    let port = a9s_tests::free_port();
    let s3 = format!("http://127.0.0.1:{port}");
    let az = format!("http://127.0.0.1:{port}/{ACCOUNT}");
    let loc_s3 = format!("s3://{BUCKET}/{INSTANCE}");
    let loc_az = format!("az://{BUCKET}/{INSTANCE}");
    let azure_env = [("AZURE_STORAGE_ACCOUNT", ACCOUNT), ("AZURE_STORAGE_KEY", KEY)];
    type Case<'a> = (&'a str, Vec<&'a str>, &'a [(&'a str, &'a str)]);
    let cases: [Case; 4] = [
        ("a9s-ls", vec!["--endpoint-url", &s3, &loc_s3], &static_keys()),
        // The default tries on a9s-ls; fewer on a9s-fetch, whose store code is the same, to keep the test short.
        ("a9s-fetch", vec!["--endpoint-url", &s3, "--tries", "2", "--latest", &loc_s3, "-o", "-"], &static_keys()),
        ("a9s-ls", vec!["--blob-endpoint", &az, &loc_az], &azure_env),
        ("a9s-fetch", vec!["--blob-endpoint", &az, "--tries", "2", "--latest", &loc_az, "-o", "-"], &azure_env),
    ];
    for (prog, args, env) in &cases {
        let start = std::time::Instant::now();
        let o = run(prog, args, env);
        let took = start.elapsed();
        // Unreachable after the retries: the one "run again once it is back" status.
        assert_status(&o, 4);
        let err = stderr(&o);
        assert!(took < std::time::Duration::from_secs(30), "{prog} {args:?}: took {took:?}");
        assert!(err.lines().count() <= 2, "{prog} {args:?}: {err}");
        plain(&err);
        let endpoint = if args[0] == "--endpoint-url" { &s3 } else { &az };
        let last = err.lines().last().unwrap_or("");
        assert!(
            last.contains(&format!("cannot connect to {endpoint}: connection refused")) && last.contains(args[0]),
            "{prog} {args:?}: {err}"
        );
    }
}
