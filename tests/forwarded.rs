//! Behind a proxy: forwarding headers (`X-Forwarded-*`, `Forwarded`) from
//! trusted peers, and the PROXY protocol. Raw sockets from 127.0.0.1
//! (trusted by default) and from 127.0.1.5 (not), then a real nginx and a
//! real HAProxy in front.
//!
//! The app (`tests/apps/forwarded_app.py`) answers with the environ keys a
//! proxy can change; the Flask app shows what a framework builds from them.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::Server;
use crate::support::http::{Conn, Response, request};
use crate::support::proxy::{Kind, Proxy};
use crate::support::venv::framework_venv;

const APP: &str = "forwarded_app:app";
/// Not in the default forwarded_allow_ips / proxy_allow_from.
const OUTSIDER: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 5);
const SOON: Duration = Duration::from_secs(10);

/// A connection to `server` from the loopback address `client`.
fn connect_from(client: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket
        .bind(&SocketAddr::from((client, 0)).into())
        .expect("bind a loopback address");
    socket.connect(&server.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(SOON)).expect("read timeout");
    stream
}

/// What the app saw for `GET /path` with `headers`, sent from `client`.
fn seen_from(
    client: Ipv4Addr,
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut conn = Conn::from_stream(connect_from(client, server.addr()));
    let mut all = vec![("Host", "app.internal:8000")];
    all.extend_from_slice(headers);
    let resp = conn.roundtrip(&request("GET", path, &all, b""));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    resp.kv()
}

fn seen(server: &Server, headers: &[(&str, &str)]) -> HashMap<String, String> {
    seen_from(Ipv4Addr::LOCALHOST, server, "/path", headers)
}

fn facts<'a>(kv: &'a HashMap<String, String>, keys: &[&str]) -> Vec<&'a str> {
    keys.iter()
        .map(|k| kv.get(*k).map_or("?", String::as_str))
        .collect()
}

const CLIENT: [&str; 3] = ["REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme"];

/// Request headers, and the [`CLIENT`] facts expected (`*`: the
/// connection's own port).
type Case = (&'static [(&'static str, &'static str)], [&'static str; 3]);

#[test]
fn trusted_peer_each_header_form() {
    let server = Server::start(APP);
    let cases: &[Case] = &[
        (
            &[
                ("X-Forwarded-For", "203.0.113.7"),
                ("X-Forwarded-Proto", "https"),
            ],
            ["203.0.113.7", "0", "https"],
        ),
        // The client's own X-Forwarded-For is left of what the proxy added.
        (
            &[("X-Forwarded-For", "6.6.6.6, 203.0.113.7")],
            ["203.0.113.7", "0", "http"],
        ),
        (
            &[("X-Forwarded-For", "[2001:db8::1]:4711")],
            ["2001:db8::1", "4711", "http"],
        ),
        (&[("X-Forwarded-Ssl", "on")], ["127.0.0.1", "*", "https"]),
        (
            &[("X-Forwarded-Protocol", "ssl")],
            ["127.0.0.1", "*", "https"],
        ),
        (
            &[("Forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43")],
            ["192.0.2.60", "0", "https"],
        ),
        (
            &[("Forwarded", "for=\"[2001:db8:cafe::17]:4711\"")],
            ["2001:db8:cafe::17", "4711", "http"],
        ),
        (
            &[
                ("Forwarded", "for=192.0.2.43"),
                ("Forwarded", "for=198.51.100.17;proto=https"),
            ],
            ["198.51.100.17", "0", "https"],
        ),
        (
            &[("Forwarded", "for=unknown;proto=https")],
            ["127.0.0.1", "*", "https"],
        ),
        // Contradictory or malformed: nothing changes.
        (
            &[("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off")],
            ["127.0.0.1", "*", "http"],
        ),
        (
            &[("Forwarded", "proto=https"), ("X-Forwarded-Proto", "http")],
            ["127.0.0.1", "*", "http"],
        ),
        (
            &[("X-Forwarded-For", "not-an-address")],
            ["127.0.0.1", "*", "http"],
        ),
        (
            &[("Forwarded", "for=[2001:db8::1];proto=https")],
            ["127.0.0.1", "*", "http"],
        ),
    ];
    for (headers, expected) in cases {
        let kv = seen(&server, headers);
        let got = facts(&kv, &CLIENT);
        let port_ok = expected[1] == "*" || got[1] == expected[1];
        assert!(
            got[0] == expected[0] && port_ok && got[2] == expected[2],
            "{headers:?}: got {got:?}, expected {expected:?}"
        );
        if expected[1] == "*" {
            assert_ne!(got[1], "0", "{headers:?}: the connection's own port");
        }
    }
}

#[test]
fn untrusted_peer_headers_reach_the_app_and_change_nothing() {
    let server = Server::start(APP);
    let headers = [
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("Forwarded", "for=192.0.2.60;proto=https"),
    ];
    let kv = seen_from(OUTSIDER, &server, "/path", &headers);
    assert_eq!(
        facts(&kv, &["REMOTE_ADDR", "wsgi.url_scheme"]),
        ["127.0.1.5", "http"]
    );
    assert_eq!(
        facts(
            &kv,
            &[
                "HTTP_X_FORWARDED_FOR",
                "HTTP_X_FORWARDED_PROTO",
                "HTTP_FORWARDED",
                "HTTP_HOST"
            ]
        ),
        [
            "203.0.113.7",
            "https",
            "for=192.0.2.60;proto=https",
            "app.internal:8000"
        ]
    );
    // The same request from the trusted peer does change them.
    let kv = seen(&server, &headers[..2]);
    assert_eq!(
        facts(&kv, &["REMOTE_ADDR", "wsgi.url_scheme"]),
        ["203.0.113.7", "https"]
    );
}

#[test]
fn forwarded_allow_ips_takes_ranges_and_gunicorns_variable() {
    let xff = [("X-Forwarded-For", "203.0.113.7")];
    for builder in [
        Server::builder(APP).args(["--forwarded-allow-ips", "127.0.1.0/24"]),
        Server::builder(APP).env("FORWARDED_ALLOW_IPS", "127.0.1.0/24"),
    ] {
        let server = builder.start();
        let kv = seen_from(OUTSIDER, &server, "/", &xff);
        assert_eq!(kv["REMOTE_ADDR"], "203.0.113.7");
        let kv = seen_from(Ipv4Addr::LOCALHOST, &server, "/", &xff);
        assert_eq!(
            kv["REMOTE_ADDR"], "127.0.0.1",
            "127.0.0.1 is no longer trusted"
        );
    }
    let server = Server::builder(APP)
        .args(["--forwarded-allow-ips", "*"])
        .start();
    assert_eq!(
        seen_from(OUTSIDER, &server, "/", &xff)["REMOTE_ADDR"],
        "203.0.113.7"
    );
    let server = Server::builder(APP)
        .args(["--forwarded-allow-ips", ""])
        .start();
    assert_eq!(seen(&server, &xff)["REMOTE_ADDR"], "127.0.0.1");
}

#[test]
fn a_bad_address_list_is_one_line_and_exit_2() {
    for (builder, needle) in [
        (
            Server::builder(APP).args(["--forwarded-allow-ips", "10.0.0.0/33"]),
            "invalid value for 'forwarded_allow_ips' on the command line \
             (--forwarded-allow-ips): \"10.0.0.0/33\" is not an IP address or CIDR range",
        ),
        (
            Server::builder(APP).env("FORWARDED_ALLOW_IPS", "127.0.0.1,proxy.local"),
            "invalid value for 'forwarded_allow_ips' in the FORWARDED_ALLOW_IPS \
             environment variable: \"proxy.local\"",
        ),
        (
            Server::builder(APP).args(["--proxy-protocol", "--proxy-allow-from", "::1/200"]),
            "invalid value for 'proxy_allow_from' on the command line (--proxy-allow-from)",
        ),
    ] {
        // --check-config: a list wrongly accepted ends the run, not hangs it.
        let out = builder
            .arg("--check-config")
            .command()
            .output()
            .expect("run aserve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn host_port_and_prefix_apply_only_when_opted_in() {
    let headers = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "www.example.com"),
        ("X-Forwarded-Port", "8443"),
        ("X-Forwarded-Prefix", "/shop/"),
    ];
    let keys = [
        "HTTP_HOST",
        "SERVER_NAME",
        "SERVER_PORT",
        "SCRIPT_NAME",
        "url",
    ];
    let server = Server::start(APP);
    let port = server.addr().port().to_string();
    let kv = seen(&server, &headers);
    assert_eq!(
        facts(&kv, &keys),
        [
            "app.internal:8000",
            "app.internal",
            port.as_str(),
            "",
            "https://app.internal:8000/path"
        ]
    );
    assert_eq!(kv["HTTP_X_FORWARDED_HOST"], "www.example.com");
    let server = Server::builder(APP)
        .args(["--forwarded-host-headers", "--root-path", "/app"])
        .start();
    let kv = seen_from(Ipv4Addr::LOCALHOST, &server, "/app/path", &headers);
    assert_eq!(
        facts(&kv, &keys),
        [
            "www.example.com:8443",
            "www.example.com",
            "8443",
            "/shop/app",
            "https://www.example.com:8443/shop/app/path"
        ]
    );
    let kv = seen(
        &server,
        &[("Forwarded", "host=www.example.org;proto=https")],
    );
    assert_eq!(
        facts(&kv, &keys[..3]),
        ["www.example.org", "www.example.org", "443"]
    );
    // From an untrusted peer, even opted in, nothing.
    let kv = seen_from(OUTSIDER, &server, "/app/path", &headers);
    assert_eq!(
        facts(&kv, &keys[..2]),
        ["app.internal:8000", "app.internal"]
    );
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("forwarded-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    let path = dir.join("access.log");
    let _ = std::fs::remove_file(&path);
    path
}

/// The access log's contents once it has a line containing `needle`.
fn access_line(path: &PathBuf, needle: &str) -> String {
    let deadline = Instant::now() + SOON;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no access log line with {needle}: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn access_log_shows_the_client_the_app_sees() {
    let path = scratch("text");
    let server = Server::builder(APP)
        .arg("--access-logfile")
        .arg(path.display().to_string())
        .start();
    seen_from(
        Ipv4Addr::LOCALHOST,
        &server,
        "/trusted",
        &[("X-Forwarded-For", "203.0.113.7")],
    );
    seen_from(
        OUTSIDER,
        &server,
        "/untrusted",
        &[("X-Forwarded-For", "203.0.113.8")],
    );
    let line = access_line(&path, "/trusted");
    assert!(line.starts_with("203.0.113.7 "), "{line}");
    let line = access_line(&path, "/untrusted");
    assert!(line.starts_with("127.0.1.5 "), "{line}");

    let path = scratch("json");
    let server = Server::builder(APP)
        .args(["--log-format", "json", "--access-logfile"])
        .arg(path.display().to_string())
        .start();
    seen(&server, &[("Forwarded", "for=\"[2001:db8::9]:1\"")]);
    let line = access_line(&path, "/path");
    assert!(line.contains(r#""remote_addr":"2001:db8::9""#), "{line}");
}

// ----- a real nginx in front -----

#[test]
fn nginx_in_front_gives_flask_the_client_and_https() {
    let server = Server::builder("flask_app:app")
        .virtualenv(&framework_venv())
        .start();
    // nginx terminates TLS in production; here its listener is plain, so
    // the header states the scheme its TLS listener's $scheme would.
    let proxy = Proxy::start_with(
        Kind::Nginx,
        &server,
        "            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;",
    );
    let get = |path: &str, headers: &[(&str, &str)]| -> Response {
        let mut conn = Conn::from_stream(connect_from(OUTSIDER, proxy.addr()));
        let mut all = vec![("Host", "shop.example")];
        all.extend_from_slice(headers);
        conn.roundtrip(&request("GET", path, &all, b""))
    };
    let resp = get("/login", &[]);
    assert_eq!(resp.status, 302, "{}", resp.dump());
    assert_eq!(
        resp.header("location"),
        Some("https://shop.example/hello/back"),
        "{}",
        resp.dump()
    );
    // The client's own X-Forwarded-For is kept by nginx but not believed.
    let resp = get("/client", &[("X-Forwarded-For", "6.6.6.6")]);
    assert_eq!(
        resp.text(),
        "127.0.1.5 https https://shop.example/",
        "{}",
        resp.dump()
    );

    // Without the proxy's headers believed, Flask gets what gunicorn gives
    // with an empty forwarded_allow_ips: the proxy and http.
    drop(proxy);
    let server = Server::builder("flask_app:app")
        .virtualenv(&framework_venv())
        .args(["--forwarded-allow-ips", ""])
        .start();
    let proxy = Proxy::start_with(
        Kind::Nginx,
        &server,
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;",
    );
    let mut conn = Conn::from_stream(connect_from(OUTSIDER, proxy.addr()));
    let resp = conn.roundtrip(&request("GET", "/client", &[("Host", "shop.example")], b""));
    assert!(
        resp.text().starts_with("127.0.0.1 http "),
        "{}",
        resp.dump()
    );
}

// ----- PROXY protocol -----

/// A v2 PROXY header for a TCP/IPv4 client.
fn v2_header(command: u8, src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x20 | command, 0x11, 0, 12]);
    h.extend_from_slice(&src.0);
    h.extend_from_slice(&dst.0);
    h.extend_from_slice(&src.1.to_be_bytes());
    h.extend_from_slice(&dst.1.to_be_bytes());
    h
}

fn get_path(path: &str) -> Vec<u8> {
    request("GET", path, &[("Host", "app.internal:8000")], b"")
}

/// Sends `bytes` (in pieces of `piece` bytes) then reads one response.
fn proxied(client: Ipv4Addr, server: &Server, bytes: &[u8], piece: usize) -> Conn {
    let mut stream = connect_from(client, server.addr());
    for chunk in bytes.chunks(piece) {
        stream.write_all(chunk).expect("write");
        stream.flush().expect("flush");
    }
    Conn::from_stream(stream)
}

/// Whether the server closed `conn` without a byte of response.
fn closed_silently(mut conn: Conn) -> Result<(), String> {
    match conn.wait_closed() {
        Ok((extra, _)) if extra.is_empty() => Ok(()),
        Ok((extra, _)) => Err(format!("answered {:?}", String::from_utf8_lossy(&extra))),
        Err(e) => Err(e),
    }
}

#[test]
fn proxy_protocol_sets_the_client_and_keeps_the_connection() {
    let server = Server::builder(APP).arg("--proxy-protocol").start();
    let mut bytes = b"PROXY TCP4 198.51.100.7 192.0.2.1 4711 443\r\n".to_vec();
    bytes.extend_from_slice(&get_path("/one"));
    // One byte at a time: the header and the request across many reads.
    let mut conn = proxied(Ipv4Addr::LOCALHOST, &server, &bytes, 1);
    let kv = conn.response().kv();
    assert_eq!(
        facts(
            &kv,
            &["REMOTE_ADDR", "REMOTE_PORT", "SERVER_PORT", "PATH_INFO"]
        ),
        ["198.51.100.7", "4711", "443", "/one"]
    );
    // Later requests on the connection keep the header's client.
    let kv = conn.roundtrip(&get_path("/two")).kv();
    assert_eq!(
        facts(&kv, &["REMOTE_ADDR", "PATH_INFO"]),
        ["198.51.100.7", "/two"]
    );

    let mut bytes = v2_header(1, ([203, 0, 113, 9], 5000), ([192, 0, 2, 1], 8443));
    bytes.extend_from_slice(&get_path("/v2"));
    let kv = proxied(Ipv4Addr::LOCALHOST, &server, &bytes, bytes.len())
        .response()
        .kv();
    assert_eq!(
        facts(&kv, &["REMOTE_ADDR", "REMOTE_PORT", "SERVER_PORT"]),
        ["203.0.113.9", "5000", "8443"]
    );
    // LOCAL (a health check) and UNKNOWN keep the connection's addresses.
    for header in [
        v2_header(0, ([1, 2, 3, 4], 1), ([5, 6, 7, 8], 2)),
        b"PROXY UNKNOWN\r\n".to_vec(),
    ] {
        let mut bytes = header;
        bytes.extend_from_slice(&get_path("/local"));
        let kv = proxied(Ipv4Addr::LOCALHOST, &server, &bytes, 7)
            .response()
            .kv();
        assert_eq!(kv["REMOTE_ADDR"], "127.0.0.1");
        assert_eq!(kv["SERVER_PORT"], server.addr().port().to_string());
    }
}

#[test]
fn proxy_protocol_refusals_close_without_a_response() {
    let server = Server::builder(APP)
        .args(["--proxy-protocol", "--header-timeout", "2"])
        .start();
    let mut with_header = b"PROXY TCP4 198.51.100.7 192.0.2.1 4711 443\r\n".to_vec();
    with_header.extend_from_slice(&get_path("/"));
    let cases: Vec<(&str, Ipv4Addr, Vec<u8>)> = vec![
        ("missing", Ipv4Addr::LOCALHOST, get_path("/")),
        (
            "malformed",
            Ipv4Addr::LOCALHOST,
            b"PROXY TCP4 198.51.100.7 192.0.2.1 99999 443\r\nGET / HTTP/1.1\r\n\r\n".to_vec(),
        ),
        ("v2 bad version", Ipv4Addr::LOCALHOST, {
            let mut h = v2_header(1, ([1, 2, 3, 4], 1), ([5, 6, 7, 8], 2));
            h[12] = 0x11;
            h
        }),
        ("not allowed", OUTSIDER, with_header),
        (
            "incomplete, then the header timeout",
            Ipv4Addr::LOCALHOST,
            b"PROXY TCP4 1.2".to_vec(),
        ),
    ];
    for (what, client, bytes) in cases {
        let conn = proxied(client, &server, &bytes, bytes.len());
        if let Err(e) = closed_silently(conn) {
            panic!("{what}: {e}\nlog:\n{}", server.log());
        }
    }
    for needle in [
        "PROXY protocol: connection closed: no PROXY protocol header",
        "PROXY protocol: connection closed: peer not in proxy_allow_from",
        "PROXY protocol: connection closed: no header within 2s",
    ] {
        assert!(
            server.wait_for_log(needle, SOON),
            "{needle}\nlog:\n{}",
            server.log()
        );
    }
}

fn haproxy_send_proxy(option: &str) {
    let server = Server::builder(APP).arg("--proxy-protocol").start();
    let proxy = Proxy::start_with(Kind::Haproxy, &server, option);
    let stream = connect_from(OUTSIDER, proxy.addr());
    let client_port = stream.local_addr().expect("local addr").port();
    let mut conn = Conn::from_stream(stream);
    let resp = conn.roundtrip(&get_path("/via-haproxy"));
    assert_eq!(resp.status, 200, "{}\nlog:\n{}", resp.dump(), server.log());
    let kv = resp.kv();
    assert_eq!(
        facts(&kv, &["REMOTE_ADDR", "REMOTE_PORT", "SERVER_PORT"]),
        [
            "127.0.1.5",
            client_port.to_string().as_str(),
            proxy.addr().port().to_string().as_str()
        ],
        "{option}"
    );
    // A client that skips the proxy (and so the header) is refused.
    let mut plain = TcpStream::connect(server.addr()).expect("connect");
    plain.set_read_timeout(Some(SOON)).expect("timeout");
    plain.write_all(&get_path("/")).expect("write");
    let mut out = Vec::new();
    let _ = plain.read_to_end(&mut out);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
}

#[test]
fn haproxy_send_proxy_gives_the_client() {
    haproxy_send_proxy("send-proxy");
}

#[test]
fn haproxy_send_proxy_v2_gives_the_client() {
    haproxy_send_proxy("send-proxy-v2");
}
