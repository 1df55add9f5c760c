use std::borrow::Cow;

use http::HeaderValue;

use super::rfc7239::quoted_string;
use super::*;

const PROXY: &str = "127.0.0.1:40000";

fn trusted(nets: &[&str]) -> AllowList {
    let net = |n: &str| {
        n.parse::<ipnet::IpNet>()
            .or_else(|_| n.parse::<IpAddr>().map(ipnet::IpNet::from))
            .expect("a net")
    };
    AllowList::new(nets.iter().map(|n| net(n)).collect())
}

struct Case {
    headers: HeaderMap,
    forwarding: Forwarding,
    secure: bool,
}

fn case(headers: &[(&str, &str)]) -> Case {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("a name"),
            HeaderValue::from_bytes(value.as_bytes()).expect("a value"),
        );
    }
    Case {
        headers: map,
        forwarding: Forwarding::default(),
        secure: false,
    }
}

impl Case {
    fn trust(mut self, nets: &[&str]) -> Self {
        self.forwarding.trusted = trusted(nets);
        self
    }

    fn host_headers(mut self) -> Self {
        self.forwarding.host_headers = true;
        self
    }

    fn conn(&self) -> ConnInfo {
        ConnInfo {
            peer: Some(PROXY.parse().expect("addr")),
            local: Some("127.0.0.1:8000".parse().expect("addr")),
            secure: self.secure,
            forwarded: None,
        }
    }

    fn resolve(&self) -> Option<ConnInfo> {
        resolve(&self.headers, None, &self.conn(), &self.forwarding)
    }

    /// The client address and scheme the handler would see.
    fn seen(&self) -> (String, bool) {
        let info = self.resolve().unwrap_or_else(|| self.conn());
        let peer = info.peer.map_or_else(String::new, |p| p.to_string());
        (peer, info.secure)
    }

    fn target(&self) -> Option<ForwardedTarget> {
        self.resolve().and_then(|info| info.forwarded.map(|t| *t))
    }
}

fn seen(peer: &str, secure: bool) -> (String, bool) {
    (peer.to_string(), secure)
}

#[test]
fn nothing_forwarded_changes_nothing() {
    assert_eq!(case(&[("host", "a"), ("accept", "*/*")]).resolve(), None);
    assert_eq!(case(&[("x-forwarded-proto", "http")]).resolve(), None);
    assert_eq!(
        case(&[("x-forwarded-for", PROXY)]).seen(),
        seen(PROXY, false)
    );
}

#[test]
fn x_forwarded_for_gives_the_right_most_untrusted_hop() {
    let cases: &[(&[&str], &[&str], &str)] = &[
        (&["203.0.113.7"], &[], "203.0.113.7:0"),
        // A client's own X-Forwarded-For is left of the proxy's entry.
        (&["1.1.1.1, 203.0.113.7"], &[], "203.0.113.7:0"),
        (&["garbage, 203.0.113.7"], &[], "203.0.113.7:0"),
        (&["203.0.113.7, 10.0.0.2"], &[], "10.0.0.2:0"),
        (&["203.0.113.7, 10.0.0.2"], &["10.0.0.0/8"], "203.0.113.7:0"),
        (&["10.0.0.3, 10.0.0.2"], &["10.0.0.0/8"], "10.0.0.3:0"),
        (
            &["203.0.113.7", "10.0.0.2"],
            &["10.0.0.0/8"],
            "203.0.113.7:0",
        ),
        (
            &["203.0.113.7,,10.0.0.2 ,"],
            &["10.0.0.0/8"],
            "203.0.113.7:0",
        ),
        (&["203.0.113.7:4711"], &[], "203.0.113.7:4711"),
        (&["2001:db8::1"], &[], "[2001:db8::1]:0"),
        (&["[2001:db8::1]"], &[], "[2001:db8::1]:0"),
        (&["[2001:db8::1]:4711"], &[], "[2001:db8::1]:4711"),
    ];
    for (values, extra, expected) in cases {
        let headers: Vec<(&str, &str)> = values.iter().map(|v| ("x-forwarded-for", *v)).collect();
        let mut nets = vec!["127.0.0.1"];
        nets.extend_from_slice(extra);
        let c = case(&headers).trust(&nets);
        assert_eq!(c.seen(), seen(expected, false), "{values:?}");
    }
}

#[test]
fn malformed_x_forwarded_for_changes_nothing() {
    for value in [
        "garbage",
        "203.0.113.7, garbage",
        "1.2.3.4:99999",
        "[::1",
        "203.0.113.7 10.0.0.1",
    ] {
        let c = case(&[("x-forwarded-for", value), ("x-forwarded-proto", "https")]);
        assert_eq!(
            c.seen(),
            seen(PROXY, true),
            "{value}: the scheme still applies"
        );
    }
    let c = case(&[]);
    let mut headers = c.headers;
    headers.insert(
        X_FORWARDED_FOR,
        HeaderValue::from_bytes(b"203.0.113.\xe9").expect("a value"),
    );
    let c = Case {
        headers,
        ..case(&[])
    };
    assert_eq!(c.seen(), seen(PROXY, false));
}

#[test]
fn secure_scheme_headers() {
    let cases: &[(&[(&str, &str)], bool)] = &[
        (&[("x-forwarded-proto", "https")], true),
        (&[("x-forwarded-proto", "HTTPS")], true),
        (&[("x-forwarded-proto", "http")], false),
        (&[("x-forwarded-ssl", "on")], true),
        (&[("x-forwarded-ssl", "off")], false),
        (&[("x-forwarded-protocol", "ssl")], true),
        (
            &[("x-forwarded-proto", "https"), ("x-forwarded-ssl", "on")],
            true,
        ),
        // Contradictions and nonsense change nothing.
        (
            &[("x-forwarded-proto", "https"), ("x-forwarded-ssl", "off")],
            false,
        ),
        (
            &[("x-forwarded-proto", "https"), ("forwarded", "proto=http")],
            false,
        ),
        (&[("forwarded", "proto=https, proto=http")], false),
        (&[("x-forwarded-proto", "ftp")], false),
        (&[("x-forwarded-ssl", "yes")], false),
        (
            &[("x-forwarded-ssl", "on"), ("x-forwarded-ssl", "on")],
            false,
        ),
        (&[("x-forwarded-proto", "https, http")], false),
    ];
    for (headers, secure) in cases {
        assert_eq!(case(headers).seen(), seen(PROXY, *secure), "{headers:?}");
    }
    // A header saying http makes an https connection's requests http (as
    // gunicorn does).
    let mut c = case(&[("x-forwarded-proto", "http")]);
    c.secure = true;
    assert_eq!(c.seen(), seen(PROXY, false));
}

#[test]
fn a_proto_list_is_read_at_the_clients_hop() {
    let c = case(&[
        ("x-forwarded-for", "203.0.113.7, 10.0.0.2"),
        ("x-forwarded-proto", "https, http"),
    ]);
    assert_eq!(
        c.trust(&["127.0.0.1", "10.0.0.0/8"]).seen(),
        seen("203.0.113.7:0", true)
    );
    let c = case(&[
        ("x-forwarded-for", "203.0.113.7, 10.0.0.2"),
        ("x-forwarded-proto", "https, http"),
    ]);
    assert_eq!(c.seen(), seen("10.0.0.2:0", false));
    let c = case(&[
        ("x-forwarded-for", "203.0.113.7, 10.0.0.2"),
        ("x-forwarded-proto", "https, http, https"),
    ]);
    assert_eq!(
        c.seen(),
        seen("10.0.0.2:0", false),
        "a list of the wrong length"
    );
}

#[test]
fn forwarded_header_forms() {
    let cases: &[(&[&str], (&str, bool))] = &[
        (
            &["for=192.0.2.60;proto=https;by=203.0.113.43"],
            ("192.0.2.60:0", true),
        ),
        (
            &["For=\"[2001:db8:cafe::17]:4711\""],
            ("[2001:db8:cafe::17]:4711", false),
        ),
        (&["for=\"192.0.2.43:47011\""], ("192.0.2.43:47011", false)),
        (
            &["for=192.0.2.43, for=198.51.100.17"],
            ("198.51.100.17:0", false),
        ),
        (
            &["for=192.0.2.43", "for=198.51.100.17"],
            ("198.51.100.17:0", false),
        ),
        (&["for=192.0.2.43, for=127.0.0.1"], ("192.0.2.43:0", false)),
        (&["for=127.0.0.2, for=127.0.0.1"], ("127.0.0.2:0", false)),
        (&["for=unknown;proto=https"], (PROXY, true)),
        (&["for=_hidden;proto=https, for=127.0.0.1"], (PROXY, true)),
        (&["for=\"_gazonk:_port\""], (PROXY, false)),
        (&["proto=https"], (PROXY, true)),
        (
            &["for=192.0.2.43 ; proto=\"https\" , "],
            ("192.0.2.43:0", true),
        ),
        (&["for=\"192.0.2.\\43\""], ("192.0.2.43:0", false)),
        (&[";;for=192.0.2.43;;,,"], ("192.0.2.43:0", false)),
        (&["for=192.0.2.43;ext=\"a,b;c\""], ("192.0.2.43:0", false)),
        // Malformed: nothing changes.
        (&["for=[2001:db8::1];proto=https"], (PROXY, false)),
        (&["for=2001:db8::1"], (PROXY, false)),
        (&["for=192.0.2.43;for=192.0.2.44"], (PROXY, false)),
        (&["for=\"192.0.2.43;proto=https"], (PROXY, false)),
        (
            &["for=\"192.0.2.43", "for=198.51.100.17;proto=https"],
            (PROXY, false),
        ),
        (&["for=192.0.2.43 junk"], (PROXY, false)),
        (&["for=192.0.2.43:"], (PROXY, false)),
        (&["for=192.0.2.43:123456"], (PROXY, false)),
        (&["for=_"], (PROXY, false)),
        (&["for="], (PROXY, false)),
        (&["=192.0.2.43"], (PROXY, false)),
        // Each fact stands alone: a bad scheme spoils only the scheme.
        (&["for=192.0.2.43;proto=gopher"], ("192.0.2.43:0", false)),
    ];
    for (values, (peer, secure)) in cases {
        let headers: Vec<(&str, &str)> = values.iter().map(|v| ("forwarded", *v)).collect();
        assert_eq!(case(&headers).seen(), seen(peer, *secure), "{values:?}");
    }
}

#[test]
fn forwarded_and_x_forwarded_for_must_agree() {
    let c = case(&[
        ("x-forwarded-for", "192.0.2.43"),
        ("forwarded", "for=\"192.0.2.43:4711\";proto=https"),
    ]);
    assert_eq!(c.seen(), seen("192.0.2.43:4711", true));
    let c = case(&[
        ("x-forwarded-for", "192.0.2.44"),
        ("forwarded", "for=192.0.2.43;proto=https"),
    ]);
    assert_eq!(c.seen(), seen(PROXY, true), "the address is contradicted");
}

#[test]
fn host_port_and_prefix_only_when_opted_in() {
    let headers = [
        ("host", "internal:8000"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "example.com"),
        ("x-forwarded-prefix", "/app/"),
    ];
    assert_eq!(case(&headers).target(), None);
    assert_eq!(
        case(&headers).host_headers().target(),
        Some(ForwardedTarget {
            host: Some("example.com".into()),
            port: Some(443),
            prefix: Some("/app".into()),
        })
    );
    let c = case(&[("host", "internal:8000"), ("x-forwarded-port", "8443")]).host_headers();
    assert_eq!(
        c.target(),
        Some(ForwardedTarget {
            host: Some("internal:8443".into()),
            port: Some(8443),
            prefix: None,
        })
    );
    let c = case(&[
        ("x-forwarded-host", "[2001:db8::1]:8080"),
        ("x-forwarded-port", "9000"),
    ])
    .host_headers();
    assert_eq!(
        c.target().and_then(|t| t.host),
        Some("[2001:db8::1]:9000".into())
    );
    let c = case(&[("x-forwarded-host", "example.com:8080")]).host_headers();
    assert_eq!(c.target().and_then(|t| t.port), Some(8080));
    let c = case(&[("forwarded", "host=example.org;proto=https")]).host_headers();
    assert_eq!(c.target().and_then(|t| t.host), Some("example.org".into()));
    let c = case(&[("forwarded", "host=\"[::1]:8\"")]).host_headers();
    assert_eq!(c.target().and_then(|t| t.host), Some("[::1]:8".into()));
}

#[test]
fn bad_host_port_and_prefix_change_nothing() {
    let bad: &[&[(&str, &str)]] = &[
        &[("x-forwarded-host", "user@example.com")],
        &[("x-forwarded-host", "exa mple.com")],
        &[("x-forwarded-host", "example.com/path")],
        &[("x-forwarded-host", "a.com"), ("forwarded", "host=b.com")],
        &[("x-forwarded-port", "https")],
        &[("x-forwarded-port", "65536")],
        &[("x-forwarded-port", "-1")],
        &[("x-forwarded-prefix", "app")],
        &[("x-forwarded-prefix", "/a%20b")],
        &[("x-forwarded-prefix", "/a?b")],
        &[("x-forwarded-prefix", "/a"), ("x-forwarded-prefix", "/b")],
        &[("x-forwarded-prefix", "/")],
    ];
    for headers in bad {
        assert_eq!(case(headers).host_headers().target(), None, "{headers:?}");
    }
}

#[test]
fn quoted_strings() {
    assert_eq!(
        quoted_string("\"abc\";x"),
        Some((Cow::Borrowed("abc"), ";x"))
    );
    assert_eq!(
        quoted_string("\"a\\\"b\\\\c\""),
        Some((Cow::Owned("a\"b\\c".into()), ""))
    );
    assert_eq!(quoted_string("\"abc"), None);
    assert_eq!(quoted_string("\"ab\\"), None);
}
