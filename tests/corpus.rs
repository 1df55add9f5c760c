//! The raw-request corpus: every `tests/corpus/*.http` file (format in
//! `tests/corpus/README.md`) is sent byte for byte, on its own connection,
//! to one aserve running `tests/apps/corpus_app.py`, and checked for the
//! statuses of the responses, whether the connection closed at once, the
//! exact list of requests the app was called with, and the environ the app
//! saw. All cases run, a few at a time; every failure is reported at the
//! end with the case's file, what was expected, what happened and the exact
//! bytes received.
//!
//! `CORPUS_CASE=substring` runs only the cases whose file name contains it;
//! `CORPUS_VERBOSE=1` prints every case's outcome (see it with
//! `-- --nocapture`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Cursor, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::Server;
use crate::support::http::{Response, fetch, get, kv_lines, read_response};

/// A connection that must close does so within this long of the last byte
/// sent or received; one that stays open this long was kept. Well under
/// the server's keep-alive (`KEEP_ALIVE`), so a connection merely left to
/// idle out does not count as closed.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// `--keep-alive` for the server, in seconds.
const KEEP_ALIVE: &str = "10";

/// A case that is still talking after this long is cut off.
const CASE_LIMIT: Duration = Duration::from_secs(20);

/// Cases run at once. Most of a case's time is spent waiting (pauses, the
/// `CLOSE_WITHIN` check), not computing.
const PARALLEL: usize = 6;

/// Written in a case's metadata and request as a stand-in for the server's
/// port.
const PORT: &str = "<port>";

/// An `environ:` value meaning the key must not be in the environ.
const ABSENT: &str = "<absent>";

#[test]
fn corpus() {
    let filter = std::env::var("CORPUS_CASE").unwrap_or_default();
    let cases = load_corpus(&corpus_dir(), &filter);
    assert!(!cases.is_empty(), "no corpus case matches {filter:?}");

    let calls_file =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("corpus-calls-{}", std::process::id()));
    let _ = fs::remove_file(&calls_file);
    let server = Server::builder("corpus_app:app")
        .args(["--keep-alive", KEEP_ALIVE])
        .env("CORPUS_CALLS", &calls_file.display().to_string())
        .start();

    let runs = run_all(&server, &cases);

    // Every case's connection is over or idle, so any request of theirs
    // that reached the server has been handed to the pool before this one;
    // once it is answered, their calls are on file.
    let barrier = fetch(&server, &get("/barrier"));
    assert_eq!(barrier.status, 200, "{}", barrier.dump());
    let client = barrier.kv().get("REMOTE_ADDR").cloned().unwrap_or_default();
    let mut calls = read_calls(&calls_file);
    let _ = fs::remove_file(&calls_file);
    assert_eq!(
        calls.remove(&client),
        Some(vec!["GET /barrier".to_string()]),
        "the app's call record is not working"
    );

    let verbose = std::env::var_os("CORPUS_VERBOSE").is_some();
    let mut report = String::new();
    let mut failed = 0;
    for (case, run) in cases.iter().zip(&runs) {
        let seen = calls.remove(&run.client.to_string()).unwrap_or_default();
        match check(case, run, &seen, server.addr().port()) {
            Ok(summary) if verbose => eprintln!("ok   {}: {summary}", case.name),
            Ok(_) => {}
            Err(why) => {
                if verbose {
                    eprintln!("FAIL {}", case.name);
                }
                failed += 1;
                report.push_str(&why);
            }
        }
    }
    for (client, seen) in &calls {
        failed += 1;
        let _ = writeln!(
            report,
            "FAIL calls from an address no case used ({client}): {seen:?}\n"
        );
    }
    assert!(
        failed == 0,
        "{failed} of {} corpus cases failed:\n\n{report}",
        cases.len()
    );
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("corpus")
}

/// One corpus file.
#[derive(Debug)]
struct Case {
    /// The file name.
    name: String,
    rfc: String,
    rule: String,
    /// The outcomes that pass; one of them must happen.
    outcomes: Vec<Outcome>,
    /// `environ:` checks, one list per 200 response in order
    /// (`environ:` is the first, `environ#2:` the second, ...).
    environ: Vec<Vec<(String, String)>>,
    parts: Vec<Part>,
}

/// One acceptable outcome: `expect`, `closed` and `app-calls` alternatives
/// paired by position.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    statuses: Vec<u16>,
    closed: bool,
    calls: Vec<String>,
}

/// A piece of the request side of a case.
#[derive(Debug, Clone)]
enum Part {
    Send(Vec<u8>),
    Pause(Duration),
    /// Half-close: no more bytes from the client.
    Shutdown,
}

/// Reads every `*.http` file under `dir` whose name contains `filter`,
/// panicking with every format error found.
fn load_corpus(dir: &Path, filter: &str) -> Vec<Case> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus dir entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".http") && name.contains(filter))
        .collect();
    names.sort();
    let mut errors = String::new();
    let mut cases = Vec::new();
    for name in names {
        let text = fs::read_to_string(dir.join(&name))
            .unwrap_or_else(|e| panic!("read corpus file {name}: {e}"));
        match parse_case(&name, &text) {
            Ok(case) => cases.push(case),
            Err(e) => {
                let _ = writeln!(errors, "{name}: {e}");
            }
        }
    }
    assert!(errors.is_empty(), "malformed corpus files:\n{errors}");
    cases
}

/// Parses one case; the format is `tests/corpus/README.md`'s.
fn parse_case(name: &str, text: &str) -> Result<Case, String> {
    let mut lines = text.lines();
    let mut meta: Vec<(String, String)> = Vec::new();
    loop {
        let line = lines.next().ok_or("no `---` line before the request")?;
        let line = line.trim();
        if line == "---" {
            break;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("not `key: value`: {line:?}"))?;
        meta.push((key.trim().to_string(), value.trim().to_string()));
    }
    let one = |key: &str| -> Result<String, String> {
        let mut found = meta.iter().filter(|(k, _)| k == key);
        match (found.next(), found.next()) {
            (Some((_, v)), None) if !v.is_empty() => Ok(v.clone()),
            (None, _) => Err(format!("no `{key}:` line")),
            _ => Err(format!("`{key}:` must be given once, not empty")),
        }
    };
    let rfc = one("rfc")?;
    let rule = one("rule")?;
    let statuses = alternatives(&one("expect")?, |alt| {
        if alt == "none" {
            return Ok(Vec::new());
        }
        alt.split_whitespace()
            .map(|s| match s.parse::<u16>() {
                Ok(n) if (100..600).contains(&n) => Ok(n),
                _ => Err(format!("bad status {s:?} in `expect:`")),
            })
            .collect()
    })?;
    let closed = alternatives(&one("closed")?, |alt| match alt {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("`closed:` is yes or no, not {alt:?}")),
    })?;
    let calls = alternatives(&one("app-calls")?, |alt| {
        if alt == "none" {
            return Ok(Vec::new());
        }
        Ok(alt.split(',').map(|c| c.trim().to_string()).collect())
    })?;
    let n = statuses.len().max(closed.len()).max(calls.len());
    for (key, len) in [
        ("expect", statuses.len()),
        ("closed", closed.len()),
        ("app-calls", calls.len()),
    ] {
        if len != 1 && len != n {
            return Err(format!(
                "`{key}:` has {len} alternatives; paired fields need 1 or {n}"
            ));
        }
    }
    let pick = |i: usize, len: usize| if len == 1 { 0 } else { i };
    let outcomes = (0..n)
        .map(|i| Outcome {
            statuses: statuses[pick(i, statuses.len())].clone(),
            closed: closed[pick(i, closed.len())],
            calls: calls[pick(i, calls.len())].clone(),
        })
        .collect();

    let mut environ: Vec<Vec<(String, String)>> = Vec::new();
    for (key, value) in &meta {
        let index = match key.as_str() {
            "rfc" | "rule" | "expect" | "closed" | "app-calls" => continue,
            "environ" => 1,
            other => match other.strip_prefix("environ#").map(str::parse::<usize>) {
                Some(Ok(k)) if k >= 1 => k,
                _ => return Err(format!("unknown key `{other}:`")),
            },
        };
        let (k, v) = value
            .split_once('=')
            .ok_or_else(|| format!("`{key}:` wants KEY=value, not {value:?}"))?;
        if environ.len() < index {
            environ.resize(index, Vec::new());
        }
        environ[index - 1].push((k.to_string(), v.to_string()));
    }

    let parts = parse_request(lines)?;
    if !parts
        .iter()
        .any(|p| matches!(p, Part::Send(b) if !b.is_empty()))
    {
        return Err("the request is empty".into());
    }
    Ok(Case {
        name: name.to_string(),
        rfc,
        rule,
        outcomes,
        environ,
        parts,
    })
}

/// Splits `value` on `|` and parses each alternative.
fn alternatives<T>(
    value: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    value.split('|').map(|alt| parse(alt.trim())).collect()
}

/// The request section: escaped text, newlines ignored, and `<<...>>`
/// directive lines.
fn parse_request<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut current = Vec::new();
    for line in lines {
        let trimmed = line.trim();
        let Some(directive) = trimmed
            .strip_prefix("<<")
            .and_then(|d| d.strip_suffix(">>"))
        else {
            current.extend(unescape(line)?);
            continue;
        };
        let (word, arg) = directive.split_once(' ').unwrap_or((directive, ""));
        match word {
            "pause" => {
                let ms = arg
                    .strip_suffix("ms")
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| format!("`<<pause Nms>>`, not {trimmed:?}"))?;
                parts.push(Part::Send(std::mem::take(&mut current)));
                parts.push(Part::Pause(Duration::from_millis(ms)));
            }
            "shutdown" if arg.is_empty() => {
                parts.push(Part::Send(std::mem::take(&mut current)));
                parts.push(Part::Shutdown);
            }
            "repeat" => {
                let (count, text) = arg
                    .split_once(' ')
                    .ok_or_else(|| format!("`<<repeat N text>>`, not {trimmed:?}"))?;
                let count: usize = count
                    .parse()
                    .map_err(|_| format!("bad count in {trimmed:?}"))?;
                current.extend(unescape(text)?.repeat(count));
            }
            _ => return Err(format!("unknown directive {trimmed:?}")),
        }
    }
    parts.push(Part::Send(current));
    parts.retain(|p| !matches!(p, Part::Send(b) if b.is_empty()));
    Ok(parts)
}

/// Decodes `\r`, `\n`, `\0`, `\t`, `\\` and `\xHH`; other bytes are taken
/// as they are.
fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b'0') => out.push(0),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = [bytes.next(), bytes.next()];
                let [Some(hi), Some(lo)] = hex else {
                    return Err(format!("`\\x` wants two hex digits in {text:?}"));
                };
                let hex = String::from_utf8(vec![hi, lo]).unwrap_or_default();
                out.push(
                    u8::from_str_radix(&hex, 16)
                        .map_err(|_| format!("bad `\\x{hex}` in {text:?}"))?,
                );
            }
            other => {
                return Err(format!(
                    "unknown escape `\\{}` in {text:?}",
                    other.map_or(String::new(), |b| char::from(b).to_string())
                ));
            }
        }
    }
    Ok(out)
}

/// The inverse of [`unescape`] for display, one line per `\n`.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n\n"),
            0 => out.push_str("\\0"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

/// What happened on a case's connection.
struct Run {
    /// The client's own loopback address, one per case: how the app's
    /// calls are told apart. (Not the client port: the server closes
    /// first, so a port is free again at once and a later case may get it.)
    client: Ipv4Addr,
    received: Vec<u8>,
    end: End,
    /// A write that failed (the server had closed), for the report.
    write_error: Option<String>,
}

enum End {
    /// EOF or reset within [`CLOSE_WITHIN`] of the last activity.
    Closed { after: Duration, reset: bool },
    /// Still open [`CLOSE_WITHIN`] after the last activity.
    Open,
}

/// Runs every case, [`PARALLEL`] at a time; the runs in case order.
fn run_all(server: &Server, cases: &[Case]) -> Vec<Run> {
    let next = AtomicUsize::new(0);
    let runs: Mutex<Vec<Option<Run>>> = Mutex::new((0..cases.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL.min(cases.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let run = run_case(server, case, case_address(i));
                    runs.lock().expect("runs lock")[i] = Some(run);
                }
            });
        }
    });
    runs.into_inner()
        .expect("runs lock")
        .into_iter()
        .map(|run| run.expect("every case ran"))
        .collect()
}

/// Sends a case's parts on a new connection while reading everything that
/// comes back, until the server closes or stays quiet for [`CLOSE_WITHIN`].
fn run_case(server: &Server, case: &Case, client: Ipv4Addr) -> Run {
    let mut stream = connect_from(client, server.addr());
    let server_port = server.addr().port().to_string();
    let parts: Vec<Part> = case
        .parts
        .iter()
        .map(|part| match part {
            Part::Send(bytes) => {
                Part::Send(replace(bytes, PORT.as_bytes(), server_port.as_bytes()))
            }
            other => other.clone(),
        })
        .collect();

    // The writer runs on its own thread so that responses are read as they
    // come: a response left unread while the client keeps writing into a
    // closed connection can be lost to the reset that provokes.
    let mut writer = stream.try_clone().expect("clone stream");
    let (done_tx, done_rx) = mpsc::channel();
    let writing = std::thread::spawn(move || {
        let mut error = None;
        for part in parts {
            let result = match part {
                Part::Send(bytes) => writer.write_all(&bytes),
                // The client's timing is what the case is about.
                Part::Pause(pause) => {
                    std::thread::sleep(pause);
                    Ok(())
                }
                Part::Shutdown => writer.shutdown(Shutdown::Write),
            };
            if let Err(e) = result {
                error = Some(e.to_string());
                break;
            }
        }
        let _ = done_tx.send(Instant::now());
        error
    });

    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("set read timeout");
    let start = Instant::now();
    let mut received = Vec::new();
    let mut last_byte = start;
    let mut sent = None;
    let mut buf = [0u8; 16 * 1024];
    let end = loop {
        if sent.is_none() {
            sent = done_rx.try_recv().ok();
        }
        let quiet_since = sent.map(|t: Instant| t.max(last_byte));
        match stream.read(&mut buf) {
            Ok(0) => {
                break End::Closed {
                    after: quiet_since.map_or(Duration::ZERO, |t| t.elapsed()),
                    reset: false,
                };
            }
            Ok(n) => {
                received.extend_from_slice(&buf[..n]);
                last_byte = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                break End::Closed {
                    after: quiet_since.map_or(Duration::ZERO, |t| t.elapsed()),
                    reset: true,
                };
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if quiet_since.is_some_and(|t| t.elapsed() >= CLOSE_WITHIN) {
                    break End::Open;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("{}: reading from aserve: {e}", case.name),
        }
        if start.elapsed() > CASE_LIMIT {
            break End::Open;
        }
    };
    drop(stream);
    let write_error = writing.join().expect("writer thread");
    Run {
        client,
        received,
        end,
        write_error,
    }
}

/// `bytes` with every `from` replaced by `to`.
fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Case `i`'s client address: 127.0.1.2 on, never the barrier's 127.0.0.1.
fn case_address(i: usize) -> Ipv4Addr {
    let (high, low) = (i / 250, i % 250);
    Ipv4Addr::new(
        127,
        0,
        u8::try_from(high + 1).expect("fewer than 60000 cases"),
        u8::try_from(low + 2).expect("below 252"),
    )
}

/// A connection to `server` from `client` (any port).
fn connect_from(client: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket
        .bind(&SocketAddr::from((client, 0)).into())
        .expect("bind the case's loopback address");
    socket.connect(&server.into()).expect("connect to aserve");
    socket.into()
}

/// The app's calls, by the client address they came from: `METHOD target`
/// each.
fn read_calls(path: &Path) -> HashMap<String, Vec<String>> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut calls: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines() {
        let (port, call) = line.split_once(' ').unwrap_or((line, ""));
        calls
            .entry(port.to_string())
            .or_default()
            .push(call.to_string());
    }
    calls
}

/// The responses in `bytes`, and what could not be parsed as one.
fn parse_responses(bytes: &[u8]) -> (Vec<Response>, Option<String>) {
    let mut cursor = Cursor::new(bytes);
    let mut responses = Vec::new();
    while (cursor.position() as usize) < bytes.len() {
        let at = cursor.position() as usize;
        match read_response(&mut cursor, false) {
            Ok(resp) if resp.complete => responses.push(resp),
            Ok(resp) => {
                return (
                    responses,
                    Some(format!("response {} cut short at byte {at}", resp.status)),
                );
            }
            Err(e) => return (responses, Some(format!("unparsable from byte {at}: {e}"))),
        }
    }
    (responses, None)
}

/// What happened, in one line, when `run` passes `case`; why it does not
/// pass, with the bytes received, when it does not.
fn check(case: &Case, run: &Run, calls: &[String], port: u16) -> Result<String, String> {
    let (responses, garbage) = parse_responses(&run.received);
    let actual = Outcome {
        statuses: responses.iter().map(|r| r.status).collect(),
        closed: matches!(run.end, End::Closed { .. }),
        calls: calls.to_vec(),
    };
    let mut problems = Vec::new();
    if let Some(garbage) = garbage {
        problems.push(garbage);
    }
    let matched = case.outcomes.iter().find(|o| **o == actual);
    if matched.is_none() {
        problems.push("no expected outcome happened".into());
    }
    // The environ checks that apply: those of 200 responses the outcome
    // promises (the matched one, else the first with these statuses).
    let promised = matched
        .or_else(|| case.outcomes.iter().find(|o| o.statuses == actual.statuses))
        .unwrap_or(&case.outcomes[0]);
    let reports: Vec<&Response> = responses.iter().filter(|r| r.status == 200).collect();
    let promised_200s = promised.statuses.iter().filter(|&&s| s == 200).count();
    for (k, checks) in case.environ.iter().enumerate().take(promised_200s) {
        let Some(resp) = reports.get(k) else {
            problems.push(format!(
                "no 200 response #{} to check the environ of",
                k + 1
            ));
            continue;
        };
        let seen = kv_lines(&resp.text());
        if !seen.contains_key("corpus.report") {
            problems.push(format!("200 response #{} is not the app's report", k + 1));
            continue;
        }
        for (key, want) in checks {
            let want = want.replace(PORT, &port.to_string());
            let got = seen.get(key);
            let ok = match got {
                None => want == ABSENT,
                Some(got) => *got == want,
            };
            if !ok {
                problems.push(format!(
                    "environ #{}: {key} expected {want:?}, got {}",
                    k + 1,
                    got.map_or(ABSENT.to_string(), |g| format!("{g:?}"))
                ));
            }
        }
    }
    let how_closed = match run.end {
        End::Closed { after, reset } => format!(
            "{} {:.1}s after the last byte",
            if reset { "reset" } else { "closed" },
            after.as_secs_f64()
        ),
        End::Open => format!("still open {}s after the last byte", CLOSE_WITHIN.as_secs()),
    };
    let summary = format!("{} ({how_closed})", describe(&actual));
    if problems.is_empty() {
        return Ok(summary);
    }

    let mut out = String::new();
    let _ = writeln!(out, "FAIL {} ({}: {})", case.name, case.rfc, case.rule);
    let expected: Vec<String> = case.outcomes.iter().map(describe).collect();
    let _ = writeln!(out, "  expected: {}", expected.join("\n        or: "));
    let _ = writeln!(out, "  actual:   {summary}");
    for problem in problems {
        let _ = writeln!(out, "  {problem}");
    }
    if let Some(e) = &run.write_error {
        let _ = writeln!(out, "  sending stopped: {e}");
    }
    let _ = writeln!(out, "  received {} bytes:", run.received.len());
    for line in escape(&run.received).lines() {
        let _ = writeln!(out, "    {line}");
    }
    out.push('\n');
    Err(out)
}

/// `403 200, closed, app-calls: POST /noread, GET /after`.
fn describe(outcome: &Outcome) -> String {
    let statuses = if outcome.statuses.is_empty() {
        "no response".to_string()
    } else {
        let s: Vec<String> = outcome.statuses.iter().map(u16::to_string).collect();
        s.join(" ")
    };
    let calls = if outcome.calls.is_empty() {
        "none".to_string()
    } else {
        outcome.calls.join(", ")
    };
    format!(
        "{statuses}, {}, app-calls: {calls}",
        if outcome.closed { "closed" } else { "open" }
    )
}

#[test]
fn corpus_format_decodes_escapes_and_directives() {
    let case = parse_case(
        "t.http",
        "rfc: RFC 9112 §2\nrule: r\nexpect: 403 200 | 403\nclosed: no | yes\n\
         app-calls: POST /noread, GET /after | POST /noread\nenviron: A=b c\n\
         environ#2: X=<absent>\n---\nGET / HTTP/1.1\\r\\n\n\\0\\t\\\\\\x7f\n\
         <<pause 300ms>>\n<<repeat 3 a\\n>>\n<<shutdown>>\n",
    )
    .expect("parses");
    assert_eq!(
        case.outcomes,
        vec![
            Outcome {
                statuses: vec![403, 200],
                closed: false,
                calls: vec!["POST /noread".into(), "GET /after".into()],
            },
            Outcome {
                statuses: vec![403],
                closed: true,
                calls: vec!["POST /noread".into()],
            },
        ]
    );
    assert_eq!(
        case.environ,
        vec![
            vec![("A".to_string(), "b c".to_string())],
            vec![("X".to_string(), ABSENT.to_string())],
        ]
    );
    let parts: Vec<String> = case
        .parts
        .iter()
        .map(|p| match p {
            Part::Send(b) => escape(b),
            Part::Pause(d) => format!("pause {d:?}"),
            Part::Shutdown => "shutdown".into(),
        })
        .collect();
    assert_eq!(
        parts,
        [
            "GET / HTTP/1.1\\r\\n\n\\0\\t\\\\\\x7f",
            "pause 300ms",
            "a\\n\na\\n\na\\n\n",
            "shutdown"
        ]
    );
    assert!(parse_case("t.http", "rfc: x\nrule: y\nexpect: 200\n---\nGET").is_err());
    assert!(unescape("\\q").is_err());
    assert!(unescape("\\x4").is_err());
}
