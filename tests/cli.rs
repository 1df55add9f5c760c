//! Command-line behaviour that shows up in requests: the APP argument
//! forms, `--pythonpath`, `--root-path` / `$SCRIPT_NAME` and `--bind`.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::Server;
use crate::support::http::{Conn, fetch, get, kv_lines, request};

#[test]
fn factory_without_arguments_is_called() {
    let server = Server::start("factory_app:create_app()");
    let resp = fetch(&server, &get("/"));
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "args=() kwargs={}\n"),
        "{}",
        resp.dump()
    );
}

#[test]
fn factory_with_literal_arguments_gets_them() {
    let server = Server::start(r#"factory_app:create_app("x", n=2)"#);
    let resp = fetch(&server, &get("/"));
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "args=('x',) kwargs={'n': 2}\n"),
        "{}",
        resp.dump()
    );
}

#[test]
fn bare_module_means_its_application() {
    let server = Server::start("factory_app");
    let resp = fetch(&server, &get("/"));
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "bare module application\n"),
        "{}",
        resp.dump()
    );
}

#[test]
fn pythonpath_entries_are_importable() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pythonpath-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    std::fs::write(
        dir.join("aserve_pythonpath_helper.py"),
        "MARKER = 'from-pythonpath-dir'\n",
    )
    .expect("write helper module");
    // Comma-separated: a missing directory first must not matter.
    let paths = format!("{},{}", dir.join("does-not-exist").display(), dir.display());
    let server = Server::builder("pythonpath_app:app")
        .args(["--pythonpath", &paths])
        .start();
    let resp = fetch(&server, &get("/"));
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "from-pythonpath-dir"),
        "{}",
        resp.dump()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn script_name(server: &Server, path: &str) -> String {
    let resp = fetch(server, &request("GET", path, &[], b""));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    kv_lines(&resp.text())
        .remove("SCRIPT_NAME")
        .expect("SCRIPT_NAME in environ")
}

#[test]
fn root_path_becomes_script_name() {
    let server = Server::builder("environ_app:app")
        .args(["--root-path", "/prefix"])
        .start();
    assert_eq!(script_name(&server, "/prefix/page"), "'/prefix'");
}

#[test]
fn script_name_env_var_becomes_script_name() {
    let server = Server::builder("environ_app:app")
        .env("SCRIPT_NAME", "/from-env")
        .start();
    assert_eq!(script_name(&server, "/from-env/page"), "'/from-env'");
}

#[test]
fn every_bind_gets_a_listening_line_and_serves() {
    let server = Server::builder("body_app:app")
        .args(["-b", "127.0.0.2:0"])
        .start();
    assert!(
        server.wait_for_log("Listening at: http://127.0.0.2:", Duration::from_secs(10)),
        "no Listening line for the second bind:\n{}",
        server.log()
    );
    let log = server.log();
    let second: std::net::SocketAddr = log
        .split("Listening at: http://")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .find(|a: &std::net::SocketAddr| a.ip().to_string() == "127.0.0.2")
        .expect("second address");
    assert!(
        log.contains(&format!("({})", server.pid())),
        "Listening line lacks the pid:\n{log}"
    );
    let stream = std::net::TcpStream::connect(second).expect("connect to second bind");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut conn = Conn::from_stream(stream);
    let resp = conn.roundtrip(&get("/echo/second"));
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "GET /echo/second"),
        "{}",
        resp.dump()
    );
    let first = fetch(&server, &get("/echo/first"));
    assert_eq!(first.text(), "GET /echo/first", "{}", first.dump());
}
