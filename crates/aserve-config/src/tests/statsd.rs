//! `statsd_host`, `statsd_prefix` and `dogstatsd_tags`: gunicorn's
//! spellings, and one line for a value that could not be sent.

use super::*;
use crate::StatsdHost;

fn udp(host: &str, port: u16) -> Option<StatsdHost> {
    Some(StatsdHost::Udp {
        host: host.into(),
        port,
    })
}

#[test]
fn statsd_is_off_by_default() {
    let c = setup().ok(&["m"]);
    assert_eq!(c.statsd_host, None);
    assert_eq!(c.statsd_prefix, "");
    assert!(c.dogstatsd_tags.is_empty());
}

#[test]
fn statsd_host_takes_gunicorns_forms() {
    let host = |raw: &str| setup().ok(&["m", "--statsd-host", raw]).statsd_host;
    assert_eq!(host("127.0.0.1:9125"), udp("127.0.0.1", 9125));
    assert_eq!(host("[::1]:9125"), udp("::1", 9125));
    assert_eq!(host("statsd.internal"), udp("statsd.internal", 8125));
    assert_eq!(
        host("unix:///run/statsd.sock"),
        Some(StatsdHost::Unix("/run/statsd.sock".into()))
    );
    let c = setup()
        .toml("statsd_host = 'localhost:1'\n")
        .env("ASERVE_STATSD_PREFIX", "svc.")
        .ok(&["m"]);
    assert_eq!(
        (c.statsd_host, c.statsd_prefix.as_str()),
        (udp("localhost", 1), "svc.")
    );
}

#[test]
fn bad_statsd_host_is_one_line() {
    for (raw, why) in [
        ("127.0.0.1:http", "port must be a number from 0 to 65535"),
        ("127.0.0.1:0", "port 0 cannot receive metrics"),
        ("fd://3", "expected HOST:PORT or unix:PATH"),
        ("::1:8125", "IPv6 addresses need brackets"),
    ] {
        let e = setup().err(&["m", "--statsd-host", raw]);
        assert!(
            e.starts_with(&format!(
                "invalid value for 'statsd_host' on the command line (--statsd-host): {raw:?}: {why}"
            )),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
    let e = setup().err(&["m", "--statsd-host", ""]);
    assert!(e.contains("expected a non-empty string"), "{e}");
}

#[test]
fn tags_are_datadog_key_value_pairs() {
    let tags = |raw: &str| setup().ok(&["m", "--dogstatsd-tags", raw]).dogstatsd_tags;
    assert_eq!(tags("env:prod,team:web"), ["env:prod", "team:web"]);
    assert_eq!(tags("env=prod, team=web,,"), ["env:prod", "team:web"]);
    assert_eq!(tags("canary,url:http://x=y"), ["canary", "url:http://x=y"]);
    let c = setup().toml("dogstatsd_tags = ['a:1', 'b=2']\n").ok(&["m"]);
    assert_eq!(c.dogstatsd_tags, ["a:1", "b:2"]);
    let e = setup().err(&["m", "--dogstatsd-tags", "ok:1,bad|tag"]);
    assert_eq!(
        e,
        "invalid value for 'dogstatsd_tags' on the command line (--dogstatsd-tags): \
         tag \"bad|tag\": '|' cannot be part of a Datadog tag"
    );
}

#[test]
fn prefix_cannot_break_a_statsd_line() {
    let e = setup().err(&["m", "--statsd-prefix", "a:b"]);
    assert_eq!(
        e,
        "invalid value for 'statsd_prefix' on the command line (--statsd-prefix): \
         \"a:b\": ':' cannot be part of a statsd metric name"
    );
    assert!(
        setup()
            .err(&["m", "--statsd-prefix", "a b"])
            .contains("' '")
    );
}
