use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use super::*;

fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.push(0x20 | command);
    header.push(family);
    header.extend_from_slice(&u16::try_from(body.len()).expect("short").to_be_bytes());
    header.extend_from_slice(body);
    header
}

const V4_BODY: [u8; 12] = [192, 0, 2, 1, 198, 51, 100, 7, 0x12, 0x34, 0x01, 0xbb];

fn v6_body() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .expect("ip")
            .octets(),
    );
    body.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .expect("ip")
            .octets(),
    );
    body.extend_from_slice(&[0x11, 0x6f, 0x00, 0x50]);
    body
}

fn addrs(src: &str, dst: &str) -> Addrs {
    Some((src.parse().expect("addr"), dst.parse().expect("addr")))
}

/// Valid headers and what they say.
fn valid() -> Vec<(Vec<u8>, Addrs)> {
    let mut tlvs = V4_BODY.to_vec();
    // An unknown type, a NOOP and an empty one: all skipped.
    tlvs.extend_from_slice(&[0xe0, 0, 3, b'a', b'b', b'c', 0x04, 0, 1, 0, 0x30, 0, 0]);
    vec![
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.7 4660 443\r\n".to_vec(),
            addrs("192.0.2.1:4660", "198.51.100.7:443"),
        ),
        (
            b"PROXY TCP6 2001:db8::1 2001:db8::2 4463 80\r\n".to_vec(),
            addrs("[2001:db8::1]:4463", "[2001:db8::2]:80"),
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), None),
        (
            b"PROXY UNKNOWN 2001:db8::1 2001:db8::2 4463 80\r\n".to_vec(),
            None,
        ),
        (
            v2(1, 0x11, &V4_BODY),
            addrs("192.0.2.1:4660", "198.51.100.7:443"),
        ),
        (
            v2(1, 0x21, &v6_body()),
            addrs("[2001:db8::1]:4463", "[2001:db8::2]:80"),
        ),
        (
            v2(1, 0x11, &tlvs),
            addrs("192.0.2.1:4660", "198.51.100.7:443"),
        ),
        // LOCAL (a proxy's own health check): the addresses are ignored.
        (v2(0, 0x00, &[]), None),
        (v2(0, 0x11, &V4_BODY), None),
        // UNSPEC, UDP, Unix: the connection's own addresses are kept.
        (v2(1, 0x00, &[]), None),
        (v2(1, 0x12, &V4_BODY), None),
        (v2(1, 0x31, &[0; 216]), None),
    ]
}

#[test]
fn valid_headers_give_their_addresses_and_length() {
    for (header, expected) in valid() {
        let mut input = header.clone();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse(&input),
            Parsed::Header {
                len: header.len(),
                addrs: expected
            },
            "{}",
            header.escape_ascii()
        );
    }
}

#[test]
fn every_prefix_of_a_valid_header_is_incomplete() {
    for (header, _) in valid() {
        for end in 0..header.len() {
            assert_eq!(
                parse(&header[..end]),
                Parsed::Incomplete,
                "{} cut at {end}",
                header.escape_ascii()
            );
        }
    }
}

#[test]
fn malformed_headers_are_invalid() {
    let mut overrun = V4_BODY.to_vec();
    overrun.extend_from_slice(&[0xe0, 0, 9, 1]);
    let mut leftover = V4_BODY.to_vec();
    leftover.extend_from_slice(&[0xe0, 0]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("plain HTTP", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
        ("TLS hello", vec![0x16, 0x03, 0x01, 0x00]),
        ("lower case", b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec()),
        ("no CR", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n".to_vec()),
        (
            "CR elsewhere",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rx\n".to_vec(),
        ),
        (
            "bad protocol",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
        ),
        ("bad v4", b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n".to_vec()),
        ("v6 as TCP4", b"PROXY TCP4 ::1 ::1 1 2\r\n".to_vec()),
        ("v4 as TCP6", b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n".to_vec()),
        (
            "port too big",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n".to_vec(),
        ),
        (
            "leading zero",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n".to_vec(),
        ),
        ("missing port", b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n".to_vec()),
        (
            "extra field",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n".to_vec(),
        ),
        (
            "two spaces",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
        ),
        ("empty", b"PROXY \r\n".to_vec()),
        ("108 bytes", {
            let mut line = b"PROXY UNKNOWN ".to_vec();
            line.resize(106, b'x');
            line.extend_from_slice(b"\r\n");
            line
        }),
        ("no line end in 107 bytes", {
            let mut line = b"PROXY UNKNOWN ".to_vec();
            line.resize(107, b'x');
            line
        }),
        ("v2 signature broken", {
            let mut h = v2(1, 0x11, &V4_BODY);
            h[5] = b'x';
            h
        }),
        ("v2 version 1", {
            let mut h = v2(1, 0x11, &V4_BODY);
            h[12] = 0x11;
            h
        }),
        ("v2 version 3", {
            let mut h = v2(1, 0x11, &V4_BODY);
            h[12] = 0x31;
            h
        }),
        ("v2 command 2", v2(2, 0x11, &V4_BODY)),
        ("v2 family 4", v2(1, 0x41, &V4_BODY)),
        ("v2 transport 3", v2(1, 0x13, &V4_BODY)),
        ("v2 short addresses", v2(1, 0x11, &V4_BODY[..8])),
        ("v2 short v6 addresses", v2(1, 0x21, &V4_BODY)),
        ("v2 TLV past the end", v2(1, 0x11, &overrun)),
        ("v2 TLV cut", v2(1, 0x11, &leftover)),
    ];
    for (what, input) in cases {
        assert!(
            matches!(parse(&input), Parsed::Invalid(_)),
            "{what}: {:?}",
            parse(&input)
        );
    }
}

#[test]
fn the_longest_v1_header_fits() {
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(105, b'x');
    line.extend_from_slice(b"\r\n");
    assert_eq!(line.len(), 107);
    assert_eq!(
        parse(&line),
        Parsed::Header {
            len: 107,
            addrs: None
        }
    );
}

fn proxy_peer(peer: &str) -> ConnInfo {
    ConnInfo {
        peer: Some(peer.parse().expect("addr")),
        local: Some("127.0.0.1:8000".parse().expect("addr")),
        secure: false,
        forwarded: None,
    }
}

/// Runs [`accept`] on one end of a socket pair while `client` writes to
/// the other.
async fn accept_with<F, Fut>(peer: &str, timeout: Duration, client: F) -> Option<(ConnInfo, Bytes)>
where
    F: FnOnce(UnixStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (server, other) = UnixStream::pair().expect("a socket pair");
    let writer = tokio::spawn(client(other));
    let (_stop_tx, mut stop) = watch::channel(false);
    let mut stream = Stream::Unix(server);
    let allowed = AllowList::localhost();
    let got = accept(
        Some(&allowed),
        &mut stream,
        proxy_peer(peer),
        timeout,
        &mut stop,
    )
    .await;
    writer.abort();
    got
}

#[tokio::test]
async fn a_header_sent_byte_by_byte_is_read_and_what_follows_handed_back() {
    let mut input = v2(1, 0x11, &V4_BODY);
    input.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let (info, early) = accept_with(
        "127.0.0.1:5000",
        Duration::from_secs(10),
        |mut c| async move {
            for byte in input {
                c.write_all(&[byte]).await.expect("write");
                tokio::task::yield_now().await;
            }
            std::future::pending::<()>().await;
        },
    )
    .await
    .expect("accepted");
    assert_eq!(info.peer, Some("192.0.2.1:4660".parse().expect("addr")));
    assert_eq!(info.local, Some("198.51.100.7:443".parse().expect("addr")));
    assert!(b"GET / HTTP/1.1\r\n".starts_with(&early), "{early:?}");
}

#[tokio::test]
async fn a_header_with_bytes_after_it_hands_them_back() {
    let (info, early) = accept_with(
        "127.0.0.1:5000",
        Duration::from_secs(10),
        |mut c| async move {
            c.write_all(b"PROXY UNKNOWN\r\nGET / HTTP/1.1\r\n")
                .await
                .expect("write");
            std::future::pending::<()>().await;
        },
    )
    .await
    .expect("accepted");
    assert_eq!(info, proxy_peer("127.0.0.1:5000"), "UNKNOWN keeps the peer");
    assert_eq!(&early[..], b"GET / HTTP/1.1\r\n");
}

#[tokio::test]
async fn refused_connections() {
    let never = |_c: UnixStream| async move { std::future::pending::<()>().await };
    let t = Duration::from_secs(10);
    assert!(
        accept_with("10.0.0.1:5000", t, never).await.is_none(),
        "not allowed"
    );
    let http = |mut c: UnixStream| async move {
        c.write_all(b"GET / HTTP/1.1\r\n\r\n").await.expect("write");
        std::future::pending::<()>().await;
    };
    assert!(
        accept_with("127.0.0.1:5000", t, http).await.is_none(),
        "missing"
    );
    let partial_then_close = |mut c: UnixStream| async move {
        c.write_all(b"PROXY TCP4 1.2").await.expect("write");
    };
    assert!(
        accept_with("127.0.0.1:5000", t, partial_then_close)
            .await
            .is_none(),
        "closed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_header_that_does_not_arrive_in_time_is_refused() {
    let slow = |mut c: UnixStream| async move {
        c.write_all(b"PROXY TCP4").await.expect("write");
        std::future::pending::<()>().await;
    };
    assert!(
        accept_with("127.0.0.1:5000", Duration::from_secs(3), slow)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn without_the_protocol_nothing_is_read() {
    let (server, _other) = UnixStream::pair().expect("a socket pair");
    let (_stop_tx, mut stop) = watch::channel(false);
    let mut stream = Stream::Unix(server);
    let info = proxy_peer("10.0.0.1:1");
    let got = accept(
        None,
        &mut stream,
        info.clone(),
        Duration::from_secs(1),
        &mut stop,
    )
    .await;
    assert_eq!(got, Some((info, Bytes::new())));
}
