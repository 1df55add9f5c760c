//! Smoke tests with real frameworks: the same checks against a Flask app
//! (`tests/apps/flask_app.py`) and a Django project
//! (`tests/apps/django_project/`), each served by aserve from the pinned
//! virtualenv built by [`framework_venv`].
//!
//! The apps answer with what they received (echoes, sizes, SHA-256 digests),
//! so every assertion compares bytes sent with bytes the framework saw.
//! JSON is compared as text after [`norm`], since Flask and Django separate
//! keys differently and the tests have no JSON parser.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

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

/// A response read off a raw socket, body already de-chunked.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = self.text();
        let cut = body.char_indices().nth(600).map_or(body.len(), |(i, _)| i);
        write!(f, "HTTP {} {:?}\n{}", self.status, self.headers, &body[..cut])
    }
}

/// Reads one HTTP/1.1 response, honouring chunked, Content-Length or
/// close-delimited framing. Panics (with what was read) on bad framing.
fn read_response(stream: impl Read) -> Resp {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).expect("read status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("read header line");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap_or_else(|| panic!("bad header line {l:?}"));
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Resp { status, headers, body: Vec::new() };
    let chunked = resp.header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).expect("read chunk size");
            let size = line.trim_end().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size.trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {line:?} after {:?}", resp));
            if size == 0 {
                break; // (trailers, if any, are not needed)
            }
            let start = resp.body.len();
            resp.body.resize(start + size, 0);
            r.read_exact(&mut resp.body[start..]).expect("read chunk data");
            let mut crlf = [0; 2];
            r.read_exact(&mut crlf).expect("read chunk CRLF");
            assert_eq!(&crlf, b"\r\n", "chunk not followed by CRLF: {resp:?}");
        }
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().expect("numeric content-length");
        resp.body.resize(len, 0);
        r.read_exact(&mut resp.body).expect("read content-length body");
    } else {
        r.read_to_end(&mut resp.body).expect("read close-delimited body");
    }
    resp
}

/// Sends `head` (request line + headers, without the blank line) and `body`
/// on a fresh connection and reads the response.
fn exchange(server: &Server, head: &str, body: &[u8]) -> Resp {
    let mut stream = server.connect();
    stream.write_all(format!("{head}\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    read_response(stream)
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
        .args(["-c", "import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    child.stdin.take().expect("stdin").write_all(data).expect("feed python3");
    let out = child.wait_with_output().expect("python3 sha256");
    assert!(out.status.success(), "python3 sha256 failed");
    String::from_utf8(out.stdout).expect("utf-8 digest").trim().to_string()
}

fn get(server: &Server, path: &str) -> (u16, String, String) {
    let mut resp = server.agent().get(server.url(path)).call().expect("GET");
    let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap_or("?").to_string());
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

fn routing(fw: Framework) {
    let s = fw.start();
    let (status, _, body) = get(&s, "/hello/world");
    assert_eq!((status, body.as_str()), (200, "Hello, world!"), "{:?} /hello/world", fw);
    // Percent-decoded UTF-8 path segments must survive PEP 3333's latin-1 PATH_INFO.
    let (status, _, body) = get(&s, "/hello/caf%C3%A9%20au%20lait");
    assert_eq!((status, body.as_str()), (200, "Hello, café au lait!"), "{fw:?} non-ASCII path");
    let (status, _, body) = get(&s, "/items/21?q=x%26y");
    let body = norm(&body);
    assert_eq!(status, 200, "{fw:?} /items/21: {body}");
    for want in ["\"id\":21", "\"double\":42", "\"q\":\"x&y\""] {
        assert!(body.contains(want), "{fw:?} /items/21 lacks {want}: {body}");
    }
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
    assert_eq!(ctype, "application/json", "{fw:?} /json content-type; body {body}");
    let body = norm(&body);
    let name = format!("{fw:?}").to_lowercase();
    for want in [format!("\"framework\":\"{name}\""), "\"numbers\":[1,2,3]".into(), "\"text\":\"h\\u00e9llo\"".into()] {
        assert!(body.contains(&want), "{fw:?} /json lacks {want}: {body}");
    }
}

fn json_post(fw: Framework) {
    let s = fw.start();
    let sent = r#"{"a":[1,"b",{"k":null}],"t":true,"s":"x\"y"}"#;
    let (status, body) = post(&s, "/echo-json", "application/json", sent.as_bytes());
    assert_eq!(status, 200, "{fw:?} /echo-json: {body}");
    let body = norm(&body);
    assert!(body.contains(r#""received":{"a":[1,"b",{"k":null}]"#), "{fw:?} echo: {body}");
    assert!(body.contains(r#""s":"x\"y""#) && body.contains(r#""t":true"#), "{fw:?} echo: {body}");
    assert!(body.contains(r#""content_type":"application/json""#), "{fw:?} echo: {body}");
}

fn form_post(fw: Framework) {
    let s = fw.start();
    let form = b"name=Ann+Lee&tag=x&tag=y&sym=%26%3D%C3%A9";
    let (status, body) = post(&s, "/form", "application/x-www-form-urlencoded", form);
    assert_eq!(status, 200, "{fw:?} /form: {body}");
    let body = norm(&body);
    for want in [r#""name":["Ann Lee"]"#, r#""tag":["x","y"]"#, r#""sym":["&=\u00e9"]"#] {
        assert!(body.contains(want), "{fw:?} /form lacks {want}: {body}");
    }
}

fn multipart_upload(fw: Framework) {
    let s = fw.start();
    let data = blob(200 * 1024);
    let boundary = "----aserveBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\nrandom bytes\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .unwrap();
    body.extend_from_slice(&data);
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    let ctype = format!("multipart/form-data; boundary={boundary}");
    let (status, resp) = post(&s, "/upload", &ctype, &body);
    assert_eq!(status, 200, "{fw:?} /upload: {resp}");
    let resp = norm(&resp);
    let want_sha = format!("\"sha256\":\"{}\"", sha256_hex(&data));
    for want in [want_sha.as_str(), "\"size\":204800", "\"filename\":\"blob.bin\"", "\"description\":\"random bytes\""] {
        assert!(resp.contains(want), "{fw:?} /upload lacks {want}: {resp}");
    }
}

fn chunked_upload(fw: Framework) {
    let s = fw.start();
    let data = blob(150 * 1024 + 7);
    let mut body = Vec::new();
    let mut rest = &data[..];
    // Chunk sizes from tiny to larger than a typical read buffer.
    for size in [1usize, 10, 4096, 65536, 17, usize::MAX].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        write!(body, "{:x}\r\n", chunk.len()).unwrap();
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
        rest = tail;
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let head = "POST /raw HTTP/1.1\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked";
    let resp = exchange(&s, head, &body);
    assert_eq!(resp.status, 200, "{fw:?} chunked POST /raw: {resp:?}\nlog:\n{}", s.log());
    let text = norm(&resp.text());
    let hint = match fw {
        // Django 5.2 ignores wsgi.input_terminated (ticket #35838): without
        // CONTENT_LENGTH its request.body is empty.
        Framework::Django => " (Django reads 0 bytes unless the server sets CONTENT_LENGTH)",
        Framework::Flask => "",
    };
    let want_size = format!("\"size\":{}", data.len());
    assert!(text.contains(&want_size), "{fw:?} chunked body size, want {want_size}{hint}: {text}");
    let want_sha = format!("\"sha256\":\"{}\"", sha256_hex(&data));
    assert!(text.contains(&want_sha), "{fw:?} chunked body digest, want {want_sha}: {text}");
}

fn streaming_response(fw: Framework) {
    let s = fw.start();
    let resp = exchange(&s, "GET /stream?n=500&prefix=row HTTP/1.1", b"");
    assert_eq!(resp.status, 200, "{fw:?} /stream: {resp:?}");
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"), "{fw:?} /stream framing: {resp:?}");
    assert_eq!(resp.header("content-length"), None, "{fw:?} /stream: {resp:?}");
    let want: String = (0..500).map(|i| format!("row {i}\n")).collect();
    assert!(resp.text() == want, "{fw:?} /stream body differs ({} vs {} bytes): {resp:?}", resp.body.len(), want.len());
    // The connection stays usable after a chunked response.
    let (status, _, body) = get(&s, "/hello/again");
    assert_eq!((status, body.as_str()), (200, "Hello, again!"), "{fw:?} after stream");
}

fn cookies(fw: Framework) {
    let s = fw.start();
    let resp = exchange(&s, "GET /cookie/set HTTP/1.1\r\nConnection: close", b"");
    assert_eq!(resp.status, 200, "{fw:?} /cookie/set: {resp:?}");
    let set = resp.header("set-cookie").unwrap_or_else(|| panic!("{fw:?} no Set-Cookie: {resp:?}"));
    assert!(set.starts_with("flavour=chocolate-chip;"), "{fw:?} Set-Cookie: {set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax"), "{fw:?} Set-Cookie attrs: {set}");
    let pair = set.split(';').next().unwrap();
    let resp = exchange(&s, &format!("GET /cookie/get HTTP/1.1\r\nCookie: other=1; {pair}"), b"");
    let text = norm(&resp.text());
    assert!(text.contains(r#""flavour":"chocolate-chip""#), "{fw:?} cookie not recognised: {resp:?}");
    let resp = exchange(&s, "GET /cookie/get HTTP/1.1", b"");
    assert!(norm(&resp.text()).contains(r#""flavour":null"#), "{fw:?} cookie from nowhere: {resp:?}");
}

fn redirects(fw: Framework) {
    let s = fw.start();
    let resp = exchange(&s, "GET /redirect HTTP/1.1", b"");
    assert_eq!(resp.status, 302, "{fw:?} /redirect: {resp:?}");
    let location = resp.header("location").unwrap_or_else(|| panic!("{fw:?} no Location: {resp:?}"));
    assert!(location.ends_with("/hello/redirected"), "{fw:?} Location: {location}");
    // ureq follows the redirect.
    let (status, _, body) = get(&s, "/redirect");
    assert_eq!((status, body.as_str()), (200, "Hello, redirected!"), "{fw:?} followed redirect");
}

macro_rules! suite {
    ($name:ident, $fw:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn routing() {
                super::routing($fw)
            }
            #[test]
            fn json_response() {
                super::json_response($fw)
            }
            #[test]
            fn json_post() {
                super::json_post($fw)
            }
            #[test]
            fn form_post() {
                super::form_post($fw)
            }
            #[test]
            fn multipart_upload() {
                super::multipart_upload($fw)
            }
            #[test]
            fn chunked_upload() {
                super::chunked_upload($fw)
            }
            #[test]
            fn streaming_response() {
                super::streaming_response($fw)
            }
            #[test]
            fn cookies() {
                super::cookies($fw)
            }
            #[test]
            fn redirects() {
                super::redirects($fw)
            }
        }
    };
}

suite!(flask, Framework::Flask);
suite!(django, Framework::Django);
