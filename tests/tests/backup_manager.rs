//! `a9s-ls --backup-manager`: the runbook's `curl -u admin:<password> http://<bm>:3000/instances/<guid>`,
//! against a server of our own that answers in the shape the runbook describes (backup records with
//! `backup_id`, `created_at`, `updated_at`), in other shapes, with 401, 404, or not at all.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use a9s_tests::fixtures::INSTANCE;
use a9s_tests::http::{json_chunked, response, Reply, Server};
use a9s_tests::{assert_status, bin, stderr};

const GUID: &str = "5d3e1a8c-2b6f-4c1e-9f7a-0e4b2c6d8a10";
const PASSWORD: &str = "bm-Pa55word-from-credhub";

fn id(ms: u64) -> String {
    format!("{INSTANCE}-{ms}")
}

/// What a Rails app like the Backup Manager renders for an instance: the instance, its backups (one failed,
/// the newest), and a restore that names a backup too.
fn documented_shape() -> String {
    serde_json::json!({
        "id": 42,
        "instance_id": GUID,
        "guid": INSTANCE,
        "backups": [
            {"id": 3, "backup_id": id(1549140747154), "created_at": "2019-02-02T20:52:27.154Z",
             "updated_at": "2019-02-02T20:52:30.000Z", "status": "failed", "size": null},
            {"id": 1, "backup_id": id(1548967947154), "created_at": "2019-01-31T20:52:27.154Z",
             "updated_at": "2019-01-31T20:53:01.000Z", "status": "done", "size": 3145728},
            {"id": 2, "backup_id": id(1549054347154), "created_at": "2019-02-01T20:52:27.154Z",
             "updated_at": "2019-02-01T20:53:40.000Z", "status": "done", "size": 3200000},
        ],
        "restores": [
            {"id": 7, "backup_id": id(1548967947154), "status": "done", "created_at": "2019-02-03T10:00:00.000Z"}
        ],
    })
    .to_string()
}

fn bm_server(body: String) -> Server {
    Server::start(move |req| {
        let expected = format!("Basic {}", base64(&format!("admin:{PASSWORD}")));
        if req.header("authorization") != Some(expected.as_str()) {
            return response(401, "Unauthorized", "application/json", br#"{"error":"Unauthorized"}"#);
        }
        if req.path != format!("/instances/{GUID}") {
            return response(404, "Not Found", "application/json", br#"{"error":"not found"}"#);
        }
        response(200, "OK", "application/json; charset=utf-8", body.as_bytes())
    })
}

fn base64(s: &str) -> String {
    let out = Command::new("base64").arg("-w0").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    out.stdin.as_ref().unwrap().write_all(s.as_bytes()).unwrap();
    String::from_utf8(out.wait_with_output().unwrap().stdout).unwrap()
}

fn ls(args: &[&str], password: Option<&str>) -> Output {
    // setsid: no controlling terminal, so a missing password cannot turn into a prompt.
    let mut c = Command::new("setsid");
    c.arg("-w").arg(bin("a9s-ls")).args(args).stdin(Stdio::null()).env_remove("A9S_BACKUP_MANAGER_PASSWORD");
    if let Some(p) = password {
        c.env("A9S_BACKUP_MANAGER_PASSWORD", p);
    }
    c.output().expect("run a9s-ls")
}

fn url_of(s: &Server) -> String {
    format!("http://admin@127.0.0.1:{}", s.port)
}

fn no_secret(o: &Output) {
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o));
    assert!(!all.contains(PASSWORD), "the password was printed: {all}");
}

#[test]
fn lists_the_backups_oldest_first_and_names_the_instance() {
    let s = bm_server(documented_shape());
    let o = ls(&["--backup-manager", &url_of(&s), GUID], Some(PASSWORD));
    assert_status(&o, 0);
    no_secret(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with(&format!("{}  2019-01-31T20:52:27.154Z  done", id(1548967947154))), "{out}");
    assert!(lines[0].contains("3145728 bytes (3.0 MiB)"), "{out}");
    assert!(lines[1].starts_with(&id(1549054347154)), "{out}");
    assert!(lines[2].starts_with(&format!("{}  2019-02-02T20:52:27.154Z  failed", id(1549140747154))), "{out}");
    let err = stderr(&o);
    assert!(err.contains(&format!("service instance {GUID}: 3 backups, Backup Manager instance {INSTANCE}")), "{err}");
    let reqs = s.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("GET", format!("/instances/{GUID}").as_str()));
}

#[test]
fn latest_skips_the_failed_newest_backup() {
    let s = bm_server(documented_shape());
    let o = ls(&["--backup-manager", &url_of(&s), "--latest", GUID], Some(PASSWORD));
    assert_status(&o, 0);
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{}\n", id(1549054347154)));
    assert!(stderr(&o).contains(&format!("skipping the newer backup {} (status failed)", id(1549140747154))));
}

#[test]
fn json_lines_keep_every_field() {
    let s = bm_server(documented_shape());
    let o = ls(&["--backup-manager", &url_of(&s), "--json", GUID], Some(PASSWORD));
    assert_status(&o, 0);
    let v: Vec<serde_json::Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0]["id"], id(1548967947154));
    assert_eq!(v[0]["instance"], INSTANCE);
    assert_eq!(v[0]["service_instance"], GUID);
    assert_eq!(v[0]["created"], "2019-01-31T20:52:27.154Z");
    assert_eq!(v[0]["updated_at"], "2019-01-31T20:53:01.000Z");
    assert_eq!(v[0]["size"], 3145728);
    assert_eq!(v[0]["usable"], true);
    assert_eq!(v[0]["record"]["id"], 1);
    assert_eq!(v[2]["usable"], false);
    assert_eq!(v[2]["size"], serde_json::Value::Null);
}

#[test]
fn any_shape_any_framing_and_a_base_path() {
    // A bare array, records nested at several depths, times with offsets, no status: sent chunked.
    let body = serde_json::json!([
        {"history": {"items": [{"backup_id": id(1600000000000), "created_at": "2020-09-13T14:26:40+02:00"}]}},
        {"backup": {"backup_id": id(1500000000000), "size": "1024"}},
        {"backup_id": 17, "note": "not a string id: ignored"},
    ])
    .to_string();
    let s = Server::start(move |req| {
        if req.path == format!("/bm/instances/{GUID}") {
            json_chunked(&body)
        } else {
            response(404, "Not Found", "text/plain", b"no")
        }
    });
    let url = format!("http://admin@127.0.0.1:{}/bm/", s.port);
    let o = ls(&["--backup-manager", &url, GUID], Some(PASSWORD));
    assert_status(&o, 0);
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with(&format!("{}  2017-07-14T02:40:00.000Z  -", id(1500000000000))), "{out}");
    assert!(lines[1].starts_with(&format!("{}  2020-09-13T12:26:40.000Z  -", id(1600000000000))), "{out}");
    let o = ls(&["--backup-manager", &url, "--latest", GUID], Some(PASSWORD));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id(1600000000000));
}

#[test]
fn a_refused_password_is_said_clearly() {
    let s = bm_server(documented_shape());
    let o = ls(&["--backup-manager", &url_of(&s), GUID], Some("wrong-password"));
    assert_status(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("refused user \"admin\" or its password (HTTP 401)"), "{err}");
    assert!(err.contains("A9S_BACKUP_MANAGER_PASSWORD") && !err.contains("wrong-password"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn an_unknown_instance_is_said_clearly() {
    let s = bm_server(documented_shape());
    let o = ls(&["--backup-manager", &url_of(&s), "0a0a0a0a-1b1b-2c2c-3d3d-4e4e4e4e4e4e"], Some(PASSWORD));
    assert_status(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("does not know service instance 0a0a0a0a-1b1b-2c2c-3d3d-4e4e4e4e4e4e (HTTP 404)"), "{err}");
    assert!(err.contains("cf service NAME --guid"), "{err}");
}

#[test]
fn a_silent_server_is_given_up_on() {
    let s = Server::start(|_| Reply::Silent);
    let start = Instant::now();
    let o = ls(&["--backup-manager", &url_of(&s), "--timeout", "2", GUID], Some(PASSWORD));
    let took = start.elapsed();
    // 4: unreachable for now, the retry status.
    assert_status(&o, 4);
    assert!(stderr(&o).contains("did not answer within 2 s"), "{}", stderr(&o));
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn no_answer_at_all_an_empty_history_and_bad_json() {
    let port = a9s_tests::free_port();
    let o = ls(&["--backup-manager", &format!("http://127.0.0.1:{port}"), GUID], Some(PASSWORD));
    assert_status(&o, 4);
    assert!(
        stderr(&o).contains(&format!("cannot reach the Backup Manager at http://127.0.0.1:{port}")),
        "{}",
        stderr(&o)
    );

    let s = Server::start(|_| response(200, "OK", "application/json", br#"{"backups":[],"restores":[]}"#));
    let o = ls(&["--backup-manager", &s.url(), GUID], Some(PASSWORD));
    assert_status(&o, 1);
    assert!(stderr(&o).contains("has no backup of service instance"), "{}", stderr(&o));
    // No user in the URL: the runbook's admin.
    let auth = s.requests()[0].header("authorization").unwrap().to_string();
    assert_eq!(auth, format!("Basic {}", base64(&format!("admin:{PASSWORD}"))));

    let s = Server::start(|_| response(200, "OK", "text/html", b"<html>login</html>"));
    let o = ls(&["--backup-manager", &s.url(), GUID], Some(PASSWORD));
    assert_status(&o, 1);
    assert!(stderr(&o).contains("the answer is not JSON"), "{}", stderr(&o));
}

#[test]
fn the_password_never_goes_on_the_command_line() {
    let s = bm_server(documented_shape());
    let url = format!("http://admin:{PASSWORD}@127.0.0.1:{}", s.port);
    let o = ls(&["--backup-manager", &url, GUID], Some(PASSWORD));
    assert_status(&o, 2);
    no_secret(&o);
    assert!(stderr(&o).contains("A9S_BACKUP_MANAGER_PASSWORD"), "{}", stderr(&o));
    assert!(s.requests().is_empty());
    // Without the variable and without a terminal: a usage error naming the variable, nothing sent.
    let o = ls(&["--backup-manager", &url_of(&s), GUID], None);
    assert_status(&o, 2);
    assert!(stderr(&o).contains("set A9S_BACKUP_MANAGER_PASSWORD"), "{}", stderr(&o));
    assert!(s.requests().is_empty());
}

/// Nothing a server sent reaches the terminal raw, and neither the password nor its Basic form is repeated.
fn clean(o: &Output) {
    no_secret(o);
    let all = [o.stdout.as_slice(), o.stderr.as_slice()].concat();
    let text = String::from_utf8_lossy(&all);
    let basic = base64(&format!("admin:{PASSWORD}"));
    assert!(!text.contains(&basic), "the Basic credentials were printed: {text}");
    assert!(!all.contains(&0x1b), "an ESC byte reached the output: {text}");
    assert!(!text.contains('\u{9b}') && !text.contains('\u{7}'), "a control character reached the output: {text}");
}

#[test]
fn an_error_page_echoing_the_request_repeats_no_secret_and_no_escape() {
    // A proxy's error page quotes the request it got, headers and all, between terminal escapes; some even
    // decode the Basic credentials. The same page as a 200 that is not JSON, and a redirect to a URL with
    // the password in it.
    let page = |req: &a9s_tests::http::Request| {
        let mut b = format!("\u{1b}[2J\u{1b}]0;owned\u{7}<pre>{} {} HTTP/1.1\n", req.method, req.path);
        for (k, v) in &req.headers {
            b += &format!("{k}: {v}\n");
        }
        b += &format!("decoded: admin:{PASSWORD}\n\u{9b}31m</pre>");
        b
    };
    let s = Server::start(move |req| response(502, "Bad \u{1b}[5mGateway", "text/html", page(req).as_bytes()));
    let o = ls(&["--backup-manager", &url_of(&s), GUID], Some(PASSWORD));
    // A gateway's 502 may be over at the next try: the retry status.
    assert_status(&o, 4);
    clean(&o);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("HTTP 502") && err.contains("Authorization: Basic ***"), "{err}");

    let s = Server::start(move |req| {
        let body = format!("Authorization: {}\n", req.header("authorization").unwrap_or(""));
        response(200, "OK", "text/plain", body.as_bytes())
    });
    let o = ls(&["--backup-manager", &url_of(&s), GUID], Some(PASSWORD));
    assert_status(&o, 1);
    clean(&o);
    assert!(stderr(&o).contains("the answer is not JSON"), "{}", stderr(&o));

    let s = Server::start(|_| {
        Reply::Bytes(
            format!(
                "HTTP/1.1 302 Found\u{1b}[1A\r\nLocation: http://admin:{PASSWORD}@elsewhere/?password={PASSWORD}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .into_bytes(),
        )
    });
    let o = ls(&["--backup-manager", &url_of(&s), GUID], Some(PASSWORD));
    assert_status(&o, 1);
    clean(&o);
    assert!(stderr(&o).contains("HTTP 302"), "{}", stderr(&o));
}

#[test]
fn hostile_backup_ids_are_never_printed_as_ids() {
    let hostile = ["x --endpoint-url http://evil", "\u{1b}[2J\u{1b}[1;1H", "$(touch /tmp/a9s-pwned)"];
    let newest = |bad: &str| {
        serde_json::json!({"backups": [
            {"backup_id": id(1548967947154), "created_at": "2019-01-31T20:52:27.154Z", "status": "done\u{1b}[8m"},
            {"backup_id": bad, "created_at": "2030-01-01T00:00:00Z", "status": "done"},
        ]})
        .to_string()
    };
    for bad in hostile {
        // The newest usable record has a hostile id: --latest refuses in one line and prints nothing.
        let s = bm_server(newest(bad));
        let o = ls(&["--backup-manager", &url_of(&s), "--latest", GUID], Some(PASSWORD));
        assert_status(&o, 1);
        clean(&o);
        assert!(o.stdout.is_empty(), "{bad:?} printed: {}", String::from_utf8_lossy(&o.stdout));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("is not an a9s backup id"), "{err}");

        // The listing prints the good record only, and says once what it left out.
        let o = ls(&["--backup-manager", &url_of(&s), GUID], Some(PASSWORD));
        assert_status(&o, 0);
        clean(&o);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.starts_with(&id(1548967947154)), "{out}");
        assert!(stderr(&o).contains("ignoring 1 record whose backup_id is not an a9s backup id"), "{}", stderr(&o));
        let o = ls(&["--backup-manager", &url_of(&s), "--json", GUID], Some(PASSWORD));
        assert_status(&o, 0);
        clean(&o);
        let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, [id(1548967947154)]);
    }
    // Only hostile ids, without times: the same refusal, never a guess.
    let s = bm_server(serde_json::json!([{"backup_id": hostile[0]}]).to_string());
    let o = ls(&["--backup-manager", &url_of(&s), "--latest", GUID], Some(PASSWORD));
    assert_status(&o, 1);
    assert!(o.stdout.is_empty());
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}
