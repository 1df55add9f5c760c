//! wsgi.input: every read method, with Content-Length and chunked request
//! bodies, and `Expect: 100-continue`, against `tests/apps/input_app.py`
//! (which answers with one hex line per piece it read).

use std::time::Duration;

use crate::support::Server;
use crate::support::http::{Conn, Response, chunked, request, unhex};

const BODY: &[u8] =
    b"first line\nsecond line is longer than the others\n\nshort\r\nbin\x00\xff\xfe\nno newline at end";

#[derive(Debug, Clone, Copy)]
enum Framing {
    Length,
    Chunked,
}

const FRAMINGS: [Framing; 2] = [Framing::Length, Framing::Chunked];

/// POSTs `body` to `path` and returns the pieces the app read.
fn pieces(server: &Server, path: &str, body: &[u8], framing: Framing) -> Vec<Vec<u8>> {
    let req = match framing {
        Framing::Length => request("POST", path, &[], body),
        // Chunk boundaries that cut lines in the middle.
        Framing::Chunked => {
            let cut = [3.min(body.len()), 17.min(body.len())];
            let parts = [&body[..cut[0]], &body[cut[0]..cut[1]], &body[cut[1]..]];
            request(
                "POST",
                path,
                &[("Transfer-Encoding", "chunked")],
                &chunked(&parts),
            )
        }
    };
    let resp = Conn::open(server).roundtrip(&req);
    decode(&resp, path, framing)
}

fn decode(resp: &Response, path: &str, framing: Framing) -> Vec<Vec<u8>> {
    assert_eq!(resp.status, 200, "{path} ({framing:?}): {}", resp.dump());
    let text = resp.text();
    text.lines()
        .map(|l| if l == "--" { b"--".to_vec() } else { unhex(l) })
        .collect()
}

fn lines(body: &[u8]) -> Vec<Vec<u8>> {
    body.split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn show(pieces: &[Vec<u8>]) -> Vec<String> {
    pieces
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

#[test]
fn read_returns_the_whole_body() {
    let server = Server::start("input_app:app");
    for framing in FRAMINGS {
        let got = pieces(&server, "/read", BODY, framing);
        assert_eq!(got, vec![BODY.to_vec()], "{framing:?}: {:?}", show(&got));
    }
}

#[test]
fn read_without_body_returns_empty() {
    let server = Server::start("input_app:app");
    let resp = Conn::open(&server).roundtrip(&request("GET", "/read", &[], b""));
    assert_eq!(
        decode(&resp, "/read", Framing::Length),
        vec![Vec::<u8>::new()]
    );
}

#[test]
fn read_n_returns_at_most_n_bytes_per_call() {
    let server = Server::start("input_app:app");
    for framing in FRAMINGS {
        let got = pieces(&server, "/read_n?7", BODY, framing);
        assert!(
            got.iter().all(|p| !p.is_empty() && p.len() <= 7),
            "{framing:?}: {:?}",
            show(&got)
        );
        assert_eq!(got.concat(), BODY, "{framing:?}");
    }
}

#[test]
fn readline_splits_after_each_newline() {
    let server = Server::start("input_app:app");
    for framing in FRAMINGS {
        let got = pieces(&server, "/readline", BODY, framing);
        assert_eq!(show(&got), show(&lines(BODY)), "{framing:?}");
    }
}

#[test]
fn readline_with_size_never_exceeds_it() {
    let server = Server::start("input_app:app");
    let expected: Vec<Vec<u8>> = lines(BODY)
        .iter()
        .flat_map(|l| l.chunks(5).map(<[u8]>::to_vec).collect::<Vec<_>>())
        .collect();
    for framing in FRAMINGS {
        let got = pieces(&server, "/readline_n?5", BODY, framing);
        assert_eq!(show(&got), show(&expected), "{framing:?}");
    }
}

#[test]
fn readlines_returns_every_line() {
    let server = Server::start("input_app:app");
    for framing in FRAMINGS {
        let got = pieces(&server, "/readlines", BODY, framing);
        assert_eq!(show(&got), show(&lines(BODY)), "{framing:?}");
    }
}

#[test]
fn readlines_with_hint_returns_whole_lines_and_leaves_the_rest() {
    let server = Server::start("input_app:app");
    let all = lines(BODY);
    for framing in FRAMINGS {
        let got = pieces(&server, "/readlines_hint?15", BODY, framing);
        let sep = got.iter().position(|p| p == b"--").expect("separator line");
        let (first, rest) = (&got[..sep], &got[sep + 1..]);
        assert!(
            !first.is_empty(),
            "{framing:?}: readlines(15) returned nothing"
        );
        assert_eq!(
            show(first),
            show(&all[..first.len()]),
            "{framing:?}: not whole leading lines"
        );
        assert_eq!(
            rest.concat(),
            all[first.len()..].concat(),
            "{framing:?}: rest after readlines"
        );
    }
}

#[test]
fn iterating_input_yields_lines() {
    let server = Server::start("input_app:app");
    for framing in FRAMINGS {
        let got = pieces(&server, "/iter", BODY, framing);
        assert_eq!(show(&got), show(&lines(BODY)), "{framing:?}");
    }
}

#[test]
fn large_body_reads_back_exactly() {
    let server = Server::start("input_app:app");
    let body: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    for framing in FRAMINGS {
        let got = pieces(&server, "/read_n?65536", &body, framing);
        assert!(
            got.iter().all(|p| p.len() <= 65536),
            "{framing:?}: oversized piece"
        );
        assert!(
            got.concat() == body,
            "{framing:?}: body differs (got {} bytes)",
            got.concat().len()
        );
    }
}

/// Regression guard: `100 Continue` is a promise to read the body, so it is
/// only sent once the app reads.
#[test]
fn expect_continue_not_sent_when_app_ignores_body() {
    let server = Server::start("input_app:app");
    let mut conn = Conn::open(&server);
    conn.send(&request(
        "POST",
        "/ignore",
        &[("Expect", "100-continue"), ("Content-Length", "5")],
        b"",
    ));
    // The body is never sent: the final response must arrive anyway.
    let resp = conn.response();
    assert_eq!(
        resp.status,
        200,
        "expected the final response, not an interim one: {}",
        resp.dump()
    );
    assert_eq!(resp.text(), "ignored");
}

#[test]
fn expect_continue_sent_before_app_reads_body() {
    let server = Server::start("input_app:app");
    let mut conn = Conn::open(&server);
    conn.set_read_timeout(Duration::from_secs(10));
    let len = BODY.len().to_string();
    conn.send(&request(
        "POST",
        "/read",
        &[("Expect", "100-continue"), ("Content-Length", &len)],
        b"",
    ));
    let interim = conn.response();
    assert_eq!(
        interim.status,
        100,
        "expected 100 Continue first: {}",
        interim.dump()
    );
    conn.send(BODY);
    let resp = conn.response();
    assert_eq!(decode(&resp, "/read", Framing::Length), vec![BODY.to_vec()]);
}
