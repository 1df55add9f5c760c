//! Signals to the master and worker deaths, under load: SIGKILL of a
//! worker, TERM (graceful), INT (quick), HUP (reload), TTIN/TTOU (worker
//! count), USR1 (log reopening) and a worker that stops heart-beating
//! (SIGSTOP past `--timeout`). Every wait is on a log line or a `/proc`
//! reading with a deadline, never a bare sleep.

use std::io::BufReader;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::Server;
use crate::support::http::{Conn, get, read_response};
use crate::support::procs::{Load, get_tcp, is_alive, send_signal, wait_until};

/// Deadline for anything the master should do "at once" (a log line, a
/// replacement worker booting) on a loaded two-core machine.
const SOON: Duration = Duration::from_secs(20);

/// Client threads of the steady loads.
const CLIENTS: usize = 4;

/// Kills a worker on drop if it is still alive: a test that fails while a
/// worker is SIGSTOPped must not leave it behind (a stopped process never
/// acts on the SIGTERM it gets when the master dies).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if is_alive(self.0) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

/// Waits for the master to exit after `signal`; it must exit with 0.
fn exits_0_after(server: &mut Server, signal: &str) {
    let status = server.wait_exit(SOON).unwrap_or_else(|| {
        panic!(
            "master still running after {signal}; log:\n{}",
            server.log()
        )
    });
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
}

/// The pids in `after` that are not in `before`.
fn new_pids(before: &[u32], after: &[u32]) -> Vec<u32> {
    after
        .iter()
        .copied()
        .filter(|pid| !before.contains(pid))
        .collect()
}

#[test]
fn sigkilled_worker_is_replaced_and_the_other_keeps_serving() {
    let server = Server::builder("proc_app:app").args(["-w", "2"]).start();
    let workers = server.wait_for_workers(2, SOON);
    let (victim, survivor) = (workers[0], workers[1]);
    let load = Load::start(server.addr(), CLIENTS, None);
    assert!(
        load.wait_more_ok(20, SOON),
        "no requests succeeded before the kill; log:\n{}",
        server.log()
    );

    let mark = server.log_mark();
    send_signal(victim, "KILL");
    let reaped = format!("Worker (pid:{victim}) was sent SIGKILL! Perhaps out of memory?");
    assert!(
        server.wait_for_log_since(mark, &reaped, SOON),
        "no {reaped:?}; log:\n{}",
        server.log_since(mark)
    );
    let after = server.wait_for_workers(2, SOON);
    assert!(
        after.contains(&survivor),
        "the surviving worker {survivor} is gone: {after:?}"
    );
    let replacement = new_pids(&workers, &after);
    assert_eq!(replacement.len(), 1, "before {workers:?}, after {after:?}");
    let replacement = replacement[0];

    // Requests keep succeeding, and the replacement takes its share.
    assert!(
        load.wait_more_ok(100, SOON),
        "requests stopped succeeding after the kill; log:\n{}",
        server.log_since(mark)
    );
    assert!(
        wait_until(SOON, || load.served_by(replacement) > 0),
        "the replacement worker {replacement} served nothing"
    );
    let report = load.finish();
    // Only requests in flight on the killed worker may fail: at most one
    // per client.
    assert!(
        report.errors.len() <= CLIENTS,
        "{} failed requests (of {}), more than the {CLIENTS} that can have been in flight \
         on the killed worker: {:?}",
        report.errors.len(),
        report.ok + report.errors.len() as u64,
        report.errors
    );
    assert!(report.ok > 120, "{report:?}");
}

/// Sends `GET /sleep?secs` with `X-Tag: tag` on its own keep-alive
/// connection from a thread; the thread returns the response or the error.
fn sleeper(
    server: &Server,
    secs: u32,
    tag: String,
) -> std::thread::JoinHandle<Result<crate::support::http::Response, String>> {
    let stream = server.connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set read timeout");
    std::thread::spawn(move || {
        use std::io::Write;
        let mut stream = stream;
        let request =
            format!("GET /sleep?{secs} HTTP/1.1\r\nHost: localhost\r\nX-Tag: {tag}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        read_response(&mut BufReader::new(stream), false).map_err(|e| e.to_string())
    })
}

#[test]
fn term_under_load_finishes_every_in_flight_request_then_exits_0() {
    const N: usize = 6;
    let mut server = Server::builder("proc_app:app").args(["-w", "2"]).start();
    let workers = server.wait_for_workers(2, SOON);
    let requests: Vec<_> = (0..N)
        .map(|i| sleeper(&server, 3, format!("term-{i}")))
        .collect();
    for i in 0..N {
        assert!(
            server.wait_for_log(&format!("sleep start term-{i}\n"), SOON),
            "request {i} never reached the app; log:\n{}",
            server.log()
        );
    }

    let mark = server.log_mark();
    let sent = Instant::now();
    send_signal(server.pid(), "TERM");
    for (i, request) in requests.into_iter().enumerate() {
        let resp = request
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("in-flight request {i} failed: {e}"));
        assert_eq!(resp.status, 200, "{}", resp.dump());
        assert!(resp.complete, "{}", resp.dump());
        assert_eq!(resp.text(), format!("slept term-{i}"));
        // A draining worker tells keep-alive clients it is closing.
        assert_eq!(
            resp.header("connection").map(str::to_ascii_lowercase),
            Some("close".to_string()),
            "{}",
            resp.dump()
        );
    }
    exits_0_after(&mut server, "TERM");
    assert!(
        sent.elapsed() < Duration::from_secs(15),
        "a 3 s drain took {:?}",
        sent.elapsed()
    );
    let log = server.log_since(mark);
    assert!(log.contains("Handling SIGTERM"), "{log}");
    for pid in workers {
        assert!(
            log.contains(&format!("Worker exiting (pid: {pid})")),
            "{log}"
        );
        assert!(!is_alive(pid), "worker {pid} outlived the master");
    }
}

/// Keep-alive connections idle long enough are parked (hyper's state for
/// them released); a drain treats them as before: a request sent just
/// after TERM is answered, and every idle connection is then closed, so
/// the worker exits without waiting for the keep-alive timeout.
#[test]
fn term_answers_a_parked_connection_and_closes_the_idle_ones() {
    let mut server = Server::builder("proc_app:app")
        .args(["-w", "1", "--keep-alive", "60"])
        .start();
    server.wait_for_workers(1, SOON);
    let mut late = Conn::open(&server);
    let mut quiet = Conn::open(&server);
    for conn in [&mut late, &mut quiet] {
        let resp = conn.roundtrip(&get("/pid"));
        assert_eq!(resp.status, 200, "{}", resp.dump());
    }
    // Idle well past the moment a connection is parked (50 ms).
    std::thread::sleep(Duration::from_millis(300));

    let mark = server.log_mark();
    let sent = Instant::now();
    send_signal(server.pid(), "TERM");
    assert!(
        server.wait_for_log_since(mark, "draining connections", SOON),
        "{}",
        server.log()
    );
    let resp = late.roundtrip(&get("/pid"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    for (name, conn) in [("late", &mut late), ("quiet", &mut quiet)] {
        let (extra, _) = conn
            .wait_closed()
            .unwrap_or_else(|e| panic!("{name} connection not closed by the drain: {e}"));
        assert!(extra.is_empty(), "{:?}", String::from_utf8_lossy(&extra));
    }
    exits_0_after(&mut server, "TERM");
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "the drain took {:?} with only idle connections (keep-alive is 60 s)",
        sent.elapsed()
    );
}

#[test]
fn int_stops_at_once_without_waiting_for_requests() {
    let mut server = Server::builder("proc_app:app").args(["-w", "2"]).start();
    let workers = server.wait_for_workers(2, SOON);
    let request = sleeper(&server, 25, "int".to_string());
    assert!(
        server.wait_for_log("sleep start int\n", SOON),
        "log:\n{}",
        server.log()
    );
    let sent = Instant::now();
    send_signal(server.pid(), "INT");
    let status = server
        .wait_exit(SOON)
        .unwrap_or_else(|| panic!("master still running after INT; log:\n{}", server.log()));
    let took = sent.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "INT waited {took:?}, as if for the 25 s request"
    );
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
    assert!(
        request.join().unwrap().is_err(),
        "the 25 s request finished"
    );
    for pid in workers {
        assert!(!is_alive(pid), "worker {pid} outlived the master");
    }
}

/// Seconds since midnight of a log line's `[2026-01-02T03:04:05.678901Z]`
/// timestamp.
fn log_time(line: &str) -> f64 {
    let time = line
        .split('T')
        .nth(1)
        .and_then(|rest| rest.split('Z').next())
        .unwrap_or_else(|| panic!("no timestamp in {line:?}"));
    time.split(':')
        .map(|part| part.parse::<f64>().expect("a timestamp field"))
        .fold(0.0, |acc, part| acc * 60.0 + part)
}

/// The first line of `log` that contains `needle`.
fn line_with<'a>(log: &'a str, needle: &str) -> &'a str {
    log.lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"))
}

#[test]
fn hup_under_load_replaces_every_worker_without_failed_requests() {
    // The app takes 1.5 s to import, so that "new workers first" shows: the
    // old ones must serve on until the new ones have booted.
    let server = Server::builder("proc_app:app")
        .args(["-w", "2", "-e", "PROC_APP_IMPORT_DELAY=1.5"])
        .start();
    let before = server.wait_for_workers(2, SOON);
    let load = Load::start(server.addr(), CLIENTS, None);
    assert!(load.wait_more_ok(20, SOON), "log:\n{}", server.log());

    let mark = server.log_mark();
    send_signal(server.pid(), "HUP");
    let reloaded = "SIGHUP: configuration reloaded; replacing workers";
    assert!(
        server.wait_for_log_since(mark, reloaded, SOON),
        "log:\n{}",
        server.log_since(mark)
    );
    let ok_at_reload = load.ok();
    let first_retire = "replaced after reload";
    assert!(
        server.wait_for_log_since(mark, first_retire, SOON),
        "log:\n{}",
        server.log_since(mark)
    );
    let ok_at_retire = load.ok();
    for old in &before {
        let exiting = format!("Worker exiting (pid: {old})");
        assert!(
            server.wait_for_log_since(mark, &exiting, SOON),
            "no {exiting:?}; log:\n{}",
            server.log_since(mark)
        );
    }
    let mut after = Vec::new();
    assert!(
        wait_until(SOON, || {
            after = server.workers();
            after.len() == 2 && new_pids(&before, &after).len() == 2
        }),
        "workers before {before:?}, now {after:?}"
    );
    let after = server.wait_for_workers(2, SOON);

    // New workers first, then the old ones drained: nothing was retired
    // while the new workers were importing, and the old ones kept serving.
    let log = server.log_since(mark);
    let import_took = log_time(line_with(&log, first_retire)) - log_time(line_with(&log, reloaded));
    assert!(
        import_took >= 1.4,
        "old workers retired {import_took:.3} s after the reload, before the new ones \
         (1.5 s imports) can have booted:\n{log}"
    );
    assert!(
        ok_at_retire > ok_at_reload,
        "no request was served while the new workers booted ({ok_at_reload} -> \
         {ok_at_retire})"
    );
    for old in &before {
        let retired = format!("Retiring worker (pid:{old}): replaced after reload");
        assert!(log.contains(&retired), "no {retired:?}; log:\n{log}");
    }

    assert!(load.wait_more_ok(100, SOON), "log:\n{}", server.log());
    assert!(
        wait_until(SOON, || after.iter().any(|&pid| load.served_by(pid) > 0)),
        "the new workers {after:?} served nothing"
    );
    let report = load.finish();
    assert!(
        report.errors.is_empty(),
        "{} of {} requests failed across the reload: {:?}\nlog:\n{}",
        report.errors.len(),
        report.ok + report.errors.len() as u64,
        report.errors,
        server.log_since(mark)
    );
}

#[test]
fn ttin_and_ttou_change_the_worker_count() {
    let server = Server::builder("proc_app:app").args(["-w", "1"]).start();
    let first = server.wait_for_workers(1, SOON)[0];

    let mut mark = server.log_mark();
    for count in [2, 3] {
        send_signal(server.pid(), "TTIN");
        let line = format!("SIGTTIN: workers {count}");
        assert!(
            server.wait_for_log_since(mark, &line, SOON),
            "no {line:?}; log:\n{}",
            server.log_since(mark)
        );
        mark = server.log_mark();
        server.wait_for_workers(count, SOON);
    }

    // One fewer: the oldest drains and exits.
    send_signal(server.pid(), "TTOU");
    assert!(
        server.wait_for_log_since(mark, "SIGTTOU: workers 2", SOON),
        "log:\n{}",
        server.log_since(mark)
    );
    let retired = format!("Retiring worker (pid:{first})");
    assert!(
        server.wait_for_log_since(mark, &retired, SOON),
        "the oldest worker {first} was not the one retired; log:\n{}",
        server.log_since(mark)
    );
    let two = server.wait_for_workers(2, SOON);
    assert!(!two.contains(&first), "{two:?}");

    // Never below one.
    for _ in 0..2 {
        mark = server.log_mark();
        send_signal(server.pid(), "TTOU");
        assert!(
            server.wait_for_log_since(mark, "SIGTTOU: workers 1", SOON),
            "log:\n{}",
            server.log_since(mark)
        );
    }
    let one = server.wait_for_workers(1, SOON);
    // Still one a while later: the count settled at 1, not 0.
    assert!(
        !wait_until(Duration::from_secs(1), || server.workers().len() != 1),
        "worker count changed: {:?}",
        server.workers()
    );
    let resp = get_tcp(server.addr(), "/pid").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert_eq!(resp.text(), one[0].to_string());
}

#[test]
fn stopped_worker_is_killed_after_the_timeout_and_replaced() {
    let server = Server::builder("proc_app:app")
        .args(["-w", "1", "--timeout", "2"])
        .start();
    let worker = server.wait_for_workers(1, SOON)[0];
    let _guard = KillOnDrop(worker);
    let mark = server.log_mark();
    send_signal(worker, "STOP");
    let timeout = format!("WORKER TIMEOUT (pid:{worker})");
    assert!(
        server.wait_for_log_since(mark, &timeout, SOON),
        "no {timeout:?}; log:\n{}",
        server.log_since(mark)
    );
    let reaped = format!("Worker (pid:{worker}) was sent SIGKILL!");
    assert!(
        server.wait_for_log_since(mark, &reaped, SOON),
        "no {reaped:?}; log:\n{}",
        server.log_since(mark)
    );
    let replacement = server.wait_for_workers(1, SOON)[0];
    assert_ne!(replacement, worker);
    let resp = get_tcp(server.addr(), "/pid").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert_eq!(resp.text(), replacement.to_string());
    // Killed once, not again and again.
    assert_eq!(
        server.log_since(mark).matches("WORKER TIMEOUT").count(),
        1,
        "{}",
        server.log_since(mark)
    );
}

#[test]
fn usr1_reopens_the_access_log_after_rotation() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("usr1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("access.log");
    let rotated = dir.join("access.log.1");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&rotated);
    let server = Server::builder("proc_app:app")
        .args(["-w", "2", "--access-logfile"])
        .arg(path.display().to_string())
        .start();
    server.wait_for_workers(2, SOON);
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();

    assert!(
        wait_until(SOON, || {
            get_tcp(server.addr(), "/pid?before").unwrap();
            read(&path).contains("GET /pid?before")
        }),
        "the access log {} never got a line; log:\n{}",
        path.display(),
        server.log()
    );
    std::fs::rename(&path, &rotated).unwrap();

    let mark = server.log_mark();
    send_signal(server.pid(), "USR1");
    assert!(
        server.wait_for_log_since(mark, "SIGUSR1: log files reopened", SOON),
        "log:\n{}",
        server.log_since(mark)
    );
    // The workers reopen on their own, just after the master's line: keep
    // asking until a request lands in the new file.
    assert!(
        wait_until(SOON, || {
            get_tcp(server.addr(), "/pid?after").unwrap();
            read(&path).contains("GET /pid?after")
        }),
        "no new {} after USR1; rotated file has:\n{}\nlog:\n{}",
        path.display(),
        read(&rotated),
        server.log_since(mark)
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
