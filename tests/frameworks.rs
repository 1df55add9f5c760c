//! Smoke tests with real frameworks: the same checks against a Flask app
//! (`tests/apps/flask_app.py`) and a Django project
//! (`tests/apps/django_project/`), each served by aserve from the pinned
//! virtualenv built by [`framework_venv`].
//!
//! The apps answer with what they received (echoes, sizes, SHA-256 digests),
//! so every assertion compares bytes sent with bytes the framework saw.
//! JSON is compared as text after [`norm`], since Flask and Django separate
//! keys differently and the tests have no JSON parser.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::http::{self, Conn, Response, fetch, request};
use crate::support::{Server, venv::framework_venv};

#[derive(Clone, Copy, Debug)]
enum Framework {
    Flask,
    Django,
}

impl Framework {
    fn start(self) -> Server {
        let app = match self {
            Framework::Flask => "flask_app:app",
            Framework::Django => "django_project.wsgi:application",
        };
        Server::builder(app).virtualenv(&framework_venv()).start()
    }
}

/// `GET path` on a fresh raw connection; asserts the body arrived whole.
fn raw_get(s: &Server, path: &str, headers: &[(&str, &str)]) -> Response {
    let resp = fetch(s, &request("GET", path, headers, b""));
    assert!(
        resp.complete,
        "truncated response to {path}: {}",
        resp.dump()
    );
    resp
}

/// Makes Flask's compact and Django's spaced JSON comparable as text.
fn norm(json: &str) -> String {
    json.replace("\": ", "\":").replace(", ", ",")
}

/// `len` deterministic pseudo-random bytes (every byte value, CR/LF, NUL).
fn blob(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// SHA-256 hex digest, computed by python3 (no hashing crate in dev-deps).
fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("feed python3");
    let out = child.wait_with_output().expect("python3 sha256");
    assert!(out.status.success(), "python3 sha256 failed");
    String::from_utf8(out.stdout)
        .expect("utf-8 digest")
        .trim()
        .to_string()
}

fn get(server: &Server, path: &str) -> (u16, String, String) {
    let mut resp = server.agent().get(server.url(path)).call().expect("GET");
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("?").to_string());
    let body = resp.body_mut().read_to_string().expect("read body");
    (resp.status().as_u16(), ctype.unwrap_or_default(), body)
}

fn post(server: &Server, path: &str, ctype: &str, body: &[u8]) -> (u16, String) {
    let mut resp = server
        .agent()
        .post(server.url(path))
        .header("Content-Type", ctype)
        .send(body)
        .expect("POST");
    let text = resp.body_mut().read_to_string().expect("read body");
    (resp.status().as_u16(), text)
}

/// Asserts that the JSON text `body` (after [`norm`]) contains every `want`.
fn assert_has(fw: Framework, what: &str, body: &str, wants: &[&str]) {
    let body = norm(body);
    for want in wants {
        assert!(body.contains(want), "{fw:?} {what}: lacks {want} in {body}");
    }
}

fn routing(fw: Framework) {
    let s = fw.start();
    let (status, _, body) = get(&s, "/hello/world");
    assert_eq!((status, body.as_str()), (200, "Hello, world!"), "{fw:?}");
    // UTF-8 path segments must survive PEP 3333's latin-1 PATH_INFO.
    let (status, _, body) = get(&s, "/hello/caf%C3%A9%20au%20lait");
    assert_eq!(
        (status, body.as_str()),
        (200, "Hello, café au lait!"),
        "{fw:?}"
    );
    let (status, _, body) = get(&s, "/items/21?q=x%26y");
    assert_eq!(status, 200, "{fw:?} /items/21: {body}");
    assert_has(
        fw,
        "/items/21",
        &body,
        &[r#""id":21"#, r#""double":42"#, r#""q":"x&y""#],
    );
    let (status, _, body) = get(&s, "/no/such/page");
    assert_eq!(status, 404, "{fw:?} unknown path: {body}");
    assert!(body.contains("Not Found"), "{fw:?} 404 body: {body}");
    let (status, _, body) = get(&s, "/items/not-a-number");
    assert_eq!(status, 404, "{fw:?} int converter should reject: {body}");
}

fn json_response(fw: Framework) {
    let s = fw.start();
    let (status, ctype, body) = get(&s, "/json");
    assert_eq!(status, 200, "{fw:?} /json: {body}");
    assert_eq!(ctype, "application/json", "{fw:?} /json: {body}");
    let name = format!(r#""framework":"{}""#, format!("{fw:?}").to_lowercase());
    let wants = [
        name.as_str(),
        r#""numbers":[1,2,3]"#,
        r#""text":"h\u00e9llo""#,
    ];
    assert_has(fw, "/json", &body, &wants);
    // The framework must come from --virtualenv, not from whatever the
    // interpreter has installed globally.
    let venv = format!(r#""module":"{}/lib/"#, framework_venv().display());
    assert_has(fw, "framework imported from the venv", &body, &[&venv]);
}

fn json_post(fw: Framework) {
    let s = fw.start();
    let sent = r#"{"a":[1,"b",{"k":null}],"t":true,"s":"x\"y"}"#;
    let (status, body) = post(&s, "/echo-json", "application/json", sent.as_bytes());
    assert_eq!(status, 200, "{fw:?} /echo-json: {body}");
    let wants = [
        r#""received":{"a":[1,"b",{"k":null}]"#,
        r#""s":"x\"y""#,
        r#""t":true"#,
    ];
    assert_has(fw, "/echo-json", &body, &wants);
    assert_has(
        fw,
        "/echo-json",
        &body,
        &[r#""content_type":"application/json""#],
    );
}

fn form_post(fw: Framework) {
    let s = fw.start();
    let form = b"name=Ann+Lee&tag=x&tag=y&sym=%26%3D%C3%A9";
    let (status, body) = post(&s, "/form", "application/x-www-form-urlencoded", form);
    assert_eq!(status, 200, "{fw:?} /form: {body}");
    let wants = [
        r#""name":["Ann Lee"]"#,
        r#""tag":["x","y"]"#,
        r#""sym":["&=\u00e9"]"#,
    ];
    assert_has(fw, "/form", &body, &wants);
}

fn multipart_upload(fw: Framework) {
    let s = fw.start();
    let data = blob(200 * 1024);
    let b = "----aserveBoundary7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\nrandom bytes\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&data);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    let ctype = format!("multipart/form-data; boundary={b}");
    let (status, resp) = post(&s, "/upload", &ctype, &body);
    assert_eq!(status, 200, "{fw:?} /upload: {resp}");
    let sha = format!(r#""sha256":"{}""#, sha256_hex(&data));
    let wants = [
        &sha,
        r#""size":204800"#,
        r#""filename":"blob.bin""#,
        r#""description":"random bytes""#,
    ];
    assert_has(fw, "/upload", &resp, &wants);
}

fn chunked_upload(fw: Framework) {
    let s = fw.start();
    let data = blob(150 * 1024 + 7);
    // Chunk sizes from one byte to more than a typical read buffer.
    let mut pieces = Vec::new();
    let mut rest = &data[..];
    for size in [1usize, 10, 4096, 65536, 17].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    let headers = [
        ("Content-Type", "application/octet-stream"),
        ("Transfer-Encoding", "chunked"),
    ];
    let resp = fetch(
        &s,
        &request("POST", "/raw", &headers, &http::chunked(&pieces)),
    );
    assert_eq!(
        resp.status,
        200,
        "{fw:?} chunked POST: {}\nlog:\n{}",
        resp.dump(),
        s.log()
    );
    let what = match fw {
        Framework::Flask => "chunked POST /raw",
        // Django 5.2 ignores wsgi.input_terminated (ticket #35838), so the
        // view reads wsgi.input itself when there is no CONTENT_LENGTH.
        Framework::Django => "chunked POST /raw (view reads wsgi.input; Django ticket #35838)",
    };
    let size = format!(r#""size":{}"#, data.len());
    let sha = format!(r#""sha256":"{}""#, sha256_hex(&data));
    assert_has(fw, what, &resp.text(), &[&size, &sha]);
}

fn streaming_response(fw: Framework) {
    let s = fw.start();
    let mut conn = Conn::open(&s);
    let resp = conn.roundtrip(&request("GET", "/stream?n=500&prefix=row", &[], b""));
    assert_eq!(resp.status, 200, "{fw:?} /stream: {}", resp.dump());
    assert!(
        resp.is_chunked() && resp.complete,
        "{fw:?} /stream framing: {}",
        resp.dump()
    );
    assert!(
        !resp.has_header("content-length"),
        "{fw:?} /stream: {}",
        resp.dump()
    );
    let want: String = (0..500).map(|i| format!("row {i}\n")).collect();
    let (got, want_len) = (resp.body.len(), want.len());
    assert!(
        resp.text() == want,
        "{fw:?} /stream: {got} vs {want_len} bytes: {}",
        resp.dump()
    );
    // The chunked body ended exactly where it should: the connection is
    // still in sync for a second request.
    let resp = conn.roundtrip(&request("GET", "/hello/again", &[], b""));
    let got = (resp.status, resp.text());
    assert_eq!(
        got,
        (200, "Hello, again!".into()),
        "{fw:?} after stream: {}",
        resp.dump()
    );
}

/// Werkzeug answers every HEAD with an empty body: the server must not
/// turn that into `Content-Length: 0` for a resource whose GET is chunked
/// (RFC 9110 §8.6), and no body bytes may follow the head.
#[test]
fn flask_head_on_a_streamed_view_gets_no_length() {
    let s = Framework::Flask.start();
    let mut conn = Conn::open(&s);
    let mut both = request("HEAD", "/stream?n=5", &[], b"");
    both.extend_from_slice(&request("GET", "/hello/after", &[], b""));
    conn.send(&both);
    let head = conn.head_response();
    assert_eq!(head.status, 200, "HEAD /stream: {}", head.dump());
    assert!(
        !head.has_header("content-length"),
        "HEAD /stream (chunked on GET) must not announce a length: {}",
        head.dump()
    );
    let next = conn.response();
    assert_eq!(
        (next.status, next.text().as_str()),
        (200, "Hello, after!"),
        "after HEAD /stream: {}",
        next.dump()
    );
}

fn cookies(fw: Framework) {
    let s = fw.start();
    let resp = raw_get(&s, "/cookie/set", &[]);
    assert_eq!(resp.status, 200, "{fw:?} /cookie/set: {}", resp.dump());
    let set = resp.header("set-cookie").unwrap_or_default();
    assert!(
        set.starts_with("flavour=chocolate-chip;"),
        "{fw:?}: {}",
        resp.dump()
    );
    let attrs = set.contains("HttpOnly") && set.contains("SameSite=Lax");
    assert!(attrs, "{fw:?} Set-Cookie attributes: {set}");
    let cookie = format!("other=1; {}", set.split(';').next().unwrap_or_default());
    let resp = raw_get(&s, "/cookie/get", &[("Cookie", &cookie)]);
    assert_has(
        fw,
        "cookie sent back",
        &resp.text(),
        &[r#""flavour":"chocolate-chip""#],
    );
    let resp = raw_get(&s, "/cookie/get", &[]);
    assert_has(fw, "no cookie sent", &resp.text(), &[r#""flavour":null"#]);
}

fn redirects(fw: Framework) {
    let s = fw.start();
    let resp = raw_get(&s, "/redirect", &[]);
    assert_eq!(resp.status, 302, "{fw:?} /redirect: {}", resp.dump());
    let location = resp.header("location").unwrap_or_default();
    assert!(
        location.ends_with("/hello/redirected"),
        "{fw:?}: {}",
        resp.dump()
    );
    // ureq follows it by default.
    let (status, _, body) = get(&s, "/redirect");
    assert_eq!(
        (status, body.as_str()),
        (200, "Hello, redirected!"),
        "{fw:?}"
    );
}

/// One `#[test]` per check, calling `super::check(framework)`.
macro_rules! suite {
    ($name:ident, $fw:expr, [$($check:ident),* $(,)?]) => {
        mod $name {
            $(
                #[test]
                fn $check() {
                    super::$check($fw)
                }
            )*
        }
    };
}

macro_rules! both {
    ($($check:ident),* $(,)?) => {
        suite!(flask, super::Framework::Flask, [$($check),*]);
        suite!(django, super::Framework::Django, [$($check),*]);
    };
}

both!(
    routing,
    json_response,
    json_post,
    form_post,
    multipart_upload,
    chunked_upload,
    streaming_response,
    cookies,
    redirects,
);
