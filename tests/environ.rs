//! The WSGI environ (PEP 3333 and the CGI variables), as seen by
//! `tests/apps/environ_app.py`, which reports every key as `key\tascii(value)`.

use std::collections::HashMap;

use crate::support::Server;
use crate::support::http::{Conn, Response, chunked, request, request_version};

/// Sends `req` on a fresh connection and returns the response and environ.
fn environ_for(server: &Server, req: &[u8]) -> (Response, HashMap<String, String>) {
    let mut conn = Conn::open(server);
    let resp = conn.roundtrip(req);
    assert_eq!(resp.status, 200, "environ app failed: {resp:?}");
    let env = resp.kv();
    (resp, env)
}

fn get_environ(server: &Server, path: &str) -> HashMap<String, String> {
    environ_for(server, &request("GET", path, &[], b"")).1
}

/// The `ascii()` form of `key`, panicking with the whole environ if absent.
fn val<'a>(env: &'a HashMap<String, String>, key: &str) -> &'a str {
    env.get(key)
        .unwrap_or_else(|| panic!("{key} missing from environ: {env:#?}"))
}

#[test]
fn request_method_is_the_requests_method() {
    let server = Server::start("environ_app:app");
    let mut conn = Conn::open(&server);
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let resp = conn.roundtrip(&request(method, "/", &[], b""));
        let env = resp.kv();
        assert_eq!(
            val(&env, "REQUEST_METHOD"),
            format!("'{method}'"),
            "{resp:?}"
        );
    }
}

#[test]
fn script_name_defaults_to_empty() {
    let server = Server::start("environ_app:app");
    let env = get_environ(&server, "/some/path");
    assert_eq!(val(&env, "SCRIPT_NAME"), "''");
    assert_eq!(val(&env, "PATH_INFO"), "'/some/path'");
}

#[test]
fn path_info_is_percent_decoded_as_latin1() {
    let server = Server::start("environ_app:app");
    let env = get_environ(&server, "/caf%C3%A9/a%20b");
    // 'café' in UTF-8 is c3 a9; each byte becomes one latin-1 code point.
    assert_eq!(val(&env, "PATH_INFO"), r"'/caf\xc3\xa9/a b'");
}

#[test]
fn query_string_is_passed_raw() {
    let server = Server::start("environ_app:app");
    let env = get_environ(&server, "/p?q=a%20b&x=%2F+y&caf%C3%A9");
    assert_eq!(val(&env, "QUERY_STRING"), "'q=a%20b&x=%2F+y&caf%C3%A9'");
    assert_eq!(val(&env, "PATH_INFO"), "'/p'");
}

#[test]
fn query_string_is_empty_without_query() {
    let server = Server::start("environ_app:app");
    let env = get_environ(&server, "/p");
    assert_eq!(val(&env, "QUERY_STRING"), "''");
}

#[test]
fn raw_uri_is_the_undecoded_request_target() {
    let server = Server::start("environ_app:app");
    let env = get_environ(&server, "/caf%C3%A9/x?q=%41");
    assert_eq!(val(&env, "RAW_URI"), "'/caf%C3%A9/x?q=%41'");
}

#[test]
fn content_type_and_length_come_from_the_request() {
    let server = Server::start("environ_app:app");
    let req = request(
        "POST",
        "/",
        &[("Content-Type", "text/csv; charset=utf-8")],
        b"a,b,c",
    );
    let (_, env) = environ_for(&server, &req);
    assert_eq!(val(&env, "CONTENT_TYPE"), "'text/csv; charset=utf-8'");
    assert_eq!(val(&env, "CONTENT_LENGTH"), "'5'");
    // PEP 3333: never duplicated as HTTP_ variables.
    assert!(!env.contains_key("HTTP_CONTENT_TYPE"), "{env:#?}");
    assert!(!env.contains_key("HTTP_CONTENT_LENGTH"), "{env:#?}");
}

#[test]
fn content_length_absent_when_request_has_no_body() {
    let server = Server::start("environ_app:app");
    let env = get_environ(&server, "/");
    assert!(
        !env.contains_key("CONTENT_LENGTH"),
        "GET without body: {env:#?}"
    );
}

#[test]
fn content_length_absent_for_chunked_request_body() {
    let server = Server::start("environ_app:app");
    let req = request(
        "POST",
        "/",
        &[("Transfer-Encoding", "chunked")],
        &chunked(&[b"hello ", b"world"]),
    );
    let (_, env) = environ_for(&server, &req);
    assert!(
        !env.contains_key("CONTENT_LENGTH"),
        "chunked body: {env:#?}"
    );
}

#[test]
fn server_name_and_port_are_strs() {
    let server = Server::start("environ_app:app");
    let port = server.addr().port();
    let host = format!("127.0.0.1:{port}");
    let req = request("GET", "/", &[("Host", &host)], b"");
    let (_, env) = environ_for(&server, &req);
    assert_eq!(val(&env, "SERVER_NAME"), "'127.0.0.1'");
    assert_eq!(val(&env, "SERVER_PORT"), format!("'{port}'"));
}

/// SERVER_PORT is the port the request arrived on (RFC 3875 §4.1.15), not
/// the one a client put in its Host header; SERVER_NAME is the Host's name.
#[test]
fn server_port_is_the_local_port_not_the_host_headers() {
    let server = Server::start("environ_app:app");
    let port = server.addr().port();
    assert_ne!(port, 9999, "the test needs a port other than the Host's");
    let req = request("GET", "/", &[("Host", "example.com:9999")], b"");
    let (_, env) = environ_for(&server, &req);
    assert_eq!(val(&env, "SERVER_PORT"), format!("'{port}'"));
    assert_eq!(val(&env, "SERVER_NAME"), "'example.com'");
    assert_eq!(val(&env, "HTTP_HOST"), "'example.com:9999'");
}

#[test]
fn server_protocol_is_the_requests_http_version() {
    let server = Server::start("environ_app:app");
    for version in ["HTTP/1.0", "HTTP/1.1"] {
        let (_, env) = environ_for(&server, &request_version("GET", "/", version, &[], b""));
        assert_eq!(val(&env, "SERVER_PROTOCOL"), format!("'{version}'"));
    }
}

#[test]
fn remote_addr_and_port_are_the_clients() {
    let server = Server::start("environ_app:app");
    let mut conn = Conn::open(&server);
    let local = conn.stream().local_addr().expect("local addr");
    let env = conn.roundtrip(&request("GET", "/", &[], b"")).kv();
    assert_eq!(val(&env, "REMOTE_ADDR"), "'127.0.0.1'");
    assert_eq!(val(&env, "REMOTE_PORT"), format!("'{}'", local.port()));
}

#[test]
fn http_headers_become_http_variables_with_repeats_joined() {
    let server = Server::start("environ_app:app");
    let headers = [
        ("X-Custom-Thing", "value one"),
        ("X-Multi", "a"),
        ("X-Multi", "b"),
        ("User-Agent", "e2e-test"),
    ];
    let env = environ_for(&server, &request("GET", "/", &headers, b"")).1;
    assert_eq!(val(&env, "HTTP_X_CUSTOM_THING"), "'value one'");
    assert_eq!(val(&env, "HTTP_X_MULTI"), "'a,b'");
    assert_eq!(val(&env, "HTTP_USER_AGENT"), "'e2e-test'");
    assert_eq!(val(&env, "HTTP_HOST"), "'127.0.0.1'");
}

/// Regression guard: `X_Forwarded_For` must not turn into (or merge with)
/// `HTTP_X_FORWARDED_FOR`, or a client could spoof what a proxy set.
#[test]
fn underscore_header_cannot_spoof_dashed_header() {
    let server = Server::start("environ_app:app");
    let spoof = [("X_Forwarded_For", "6.6.6.6")];
    let env = environ_for(&server, &request("GET", "/", &spoof, b"")).1;
    assert!(
        !env.contains_key("HTTP_X_FORWARDED_FOR"),
        "spoofed header leaked: {env:#?}"
    );
    assert!(
        !env.values().any(|v| v.contains("6.6.6.6")),
        "spoofed value leaked: {env:#?}"
    );

    let both = [
        ("X-Forwarded-For", "1.2.3.4"),
        ("X_Forwarded_For", "6.6.6.6"),
    ];
    let env = environ_for(&server, &request("GET", "/", &both, b"")).1;
    assert_eq!(val(&env, "HTTP_X_FORWARDED_FOR"), "'1.2.3.4'");
}

#[test]
fn wsgi_variables_have_pep3333_values() {
    let server = Server::start("environ_app:app");
    let env = get_environ(&server, "/");
    assert_eq!(val(&env, "wsgi.version"), "(1, 0)");
    assert_eq!(val(&env, "wsgi.url_scheme"), "'http'");
    assert_eq!(val(&env, "wsgi.multithread"), "True");
    assert!(
        ["True", "False"].contains(&val(&env, "wsgi.multiprocess")),
        "wsgi.multiprocess must be a bool: {env:#?}"
    );
    assert_eq!(val(&env, "wsgi.run_once"), "False");
    assert_eq!(val(&env, "wsgi.input_terminated"), "True");
    let input = val(&env, "wsgi.input");
    for method in ["read", "readline", "readlines", "__iter__"] {
        assert!(input.contains(method), "wsgi.input lacks {method}: {input}");
    }
    let errors = val(&env, "wsgi.errors");
    for method in ["write", "writelines", "flush"] {
        assert!(
            errors.contains(method),
            "wsgi.errors lacks {method}: {errors}"
        );
    }
    let wrapper = val(&env, "wsgi.file_wrapper");
    assert!(
        wrapper.contains("callable=True"),
        "wsgi.file_wrapper not callable: {wrapper}"
    );
}

#[test]
fn cgi_variables_are_native_strings() {
    let server = Server::start("environ_app:app");
    let req = request("POST", "/x?y=1", &[("X-A", "b")], b"body");
    let env = environ_for(&server, &req).1;
    for (key, value) in env.iter().filter(|(k, _)| !k.contains('.')) {
        assert!(value.starts_with('\''), "{key} is not a str: {value}");
    }
}
