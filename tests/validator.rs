//! The stdlib's `wsgiref.validate.validator` wrapped around
//! `tests/apps/validated.py` must stay silent under a varied request mix.

use std::io::Read;

use crate::support::Server;
use crate::support::http::{Conn, chunked, request};

#[test]
fn validator_stays_silent_under_varied_requests() {
    let server = Server::start("validated:app");
    let agent = server.agent();
    let source = std::fs::read(crate::support::apps_dir().join("validated.py")).expect("read app");

    let cases: [(&str, &str, u16, Option<&[u8]>); 7] = [
        ("GET", "/", 200, Some(b"hello\n")),
        ("GET", "/query?a=1&b=%20x", 200, Some(b"a=1&b=%20x")),
        ("GET", "/stream", 200, None),
        ("GET", "/write", 200, Some(b"written;returned\n")),
        ("GET", "/file", 200, Some(&source)),
        ("GET", "/missing", 404, Some(b"not found\n")),
        ("HEAD", "/", 200, None),
    ];
    for (method, path, status, body) in cases {
        let url = server.url(path);
        let mut resp = match method {
            "HEAD" => agent.head(&url).call(),
            _ => agent.get(&url).call(),
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\nlog:\n{}", server.log()));
        let got = resp.body_mut().read_to_vec().expect("read body");
        assert_eq!(
            resp.status().as_u16(),
            status,
            "{method} {path}: {:?}\nlog:\n{}",
            String::from_utf8_lossy(&got),
            server.log()
        );
        if let Some(body) = body {
            assert!(
                got == body,
                "{method} {path}: body {:?}",
                String::from_utf8_lossy(&got)
            );
        }
    }

    let mut resp = agent
        .post(&server.url("/post"))
        .send(&b"x".repeat(1000)[..])
        .expect("POST");
    let text = resp.body_mut().read_to_string().expect("read body");
    assert_eq!(
        (resp.status().as_u16(), text.as_str()),
        (200, "received 1000 bytes\n"),
        "log:\n{}",
        server.log()
    );

    // A chunked body, read by the app with readline().
    let mut conn = Conn::open(&server);
    let body = chunked(&[b"line one\nline ", b"two\n"]);
    let resp = conn.roundtrip(&request(
        "POST",
        "/post",
        &[("Transfer-Encoding", "chunked")],
        &body,
    ));
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "received 18 bytes\n"),
        "{}",
        resp.dump()
    );

    // A request to an endpoint that reads nothing, then more on the same connection.
    let resp = conn.roundtrip(&request("POST", "/", &[], b"ignored body"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    let resp = conn.roundtrip(&request("GET", "/stream", &[], b""));
    assert_eq!(resp.text().lines().count(), 5, "{}", resp.dump());
    drop(conn);

    // A final request, then make sure nothing was complained about.
    let mut last = agent.get(&server.url("/")).call().expect("GET /");
    let mut sink = Vec::new();
    last.body_mut()
        .as_reader()
        .read_to_end(&mut sink)
        .expect("read body");
    let log = server.log();
    for complaint in [
        "AssertionError",
        "WSGIWarning",
        "Traceback",
        "Exception ignored",
    ] {
        assert!(
            !log.contains(complaint),
            "validator complained ({complaint}):\n{log}"
        );
    }
}
