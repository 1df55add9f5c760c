//! The access log: one line per response, written off the hot path.
//!
//! The access log is one observer of the front end's per-request hook
//! ([`crate::observe`]): the line is formatted when that reports the
//! request (hyper dropped the response body, so the byte count and
//! duration are final) and handed to a writer thread through a
//! bounded channel. The reactor never waits on the disk: if the writer falls
//! behind and the channel fills, lines are dropped and counted, and the
//! count is reported once the writer catches up.

mod format;

use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, StatusCode, Uri, Version};

pub use format::FormatError;
use format::{Atom, render};

use crate::observe::Finished;

/// Lines waiting for the writer before new ones are dropped.
const BACKLOG: usize = 16 * 1024;

/// Where access lines go: the configuration's `access_logfile`.
pub use aserve_config::LogTarget as AccessLogTarget;

/// Checks an access log format without starting a log: what
/// `--check-config` and the master run before any worker is forked.
pub fn check_format(format: &str) -> Result<(), FormatError> {
    format::parse(format).map(drop)
}

/// The access log could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("cannot open the access log {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start the access log writer: {0}")]
    Thread(std::io::Error),
}

enum Message {
    Line(String),
    Reopen,
}

/// A running access log. Cheap to share; one per worker process.
pub struct AccessLog {
    atoms: Vec<Atom>,
    json: bool,
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl AccessLog {
    /// Parses `format` and starts the writer thread. With `json`, each line
    /// is one JSON object with fixed keys instead (see `docs/`).
    pub fn start(
        target: AccessLogTarget,
        format: &str,
        json: bool,
    ) -> Result<Arc<Self>, AccessLogError> {
        let atoms = format::parse(format)?;
        let out = open(&target)?;
        let (tx, rx) = sync_channel(BACKLOG);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer_dropped = Arc::clone(&dropped);
        std::thread::Builder::new()
            .name("aserve-access-log".into())
            .spawn(move || write_lines(target, out, rx, &writer_dropped))
            .map_err(AccessLogError::Thread)?;
        Ok(Arc::new(Self {
            atoms,
            json,
            tx,
            dropped,
        }))
    }

    /// Reopens the file (SIGUSR1, after log rotation moved it away).
    pub fn reopen(&self) {
        let _ = self.tx.try_send(Message::Reopen);
    }

    fn record(&self, entry: &Entry) {
        let line = if self.json {
            json_line(entry)
        } else {
            self.text_line(entry)
        };
        match self.tx.try_send(Message::Line(line)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn text_line(&self, entry: &Entry) -> String {
        let mut line = String::with_capacity(160);
        for atom in &self.atoms {
            render(atom, entry, &mut line);
        }
        line.push('\n');
        line
    }
}

fn json_line(entry: &Entry) -> String {
    let header = |name: http::header::HeaderName| {
        entry
            .request_headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let object = serde_json::json!({
        "time": format::clf_time(entry.started_at),
        "remote_addr": entry.peer.map(|p| p.ip().to_string()),
        "method": entry.method.as_str(),
        "path": entry.path(),
        "query": entry.query(),
        "protocol": format!("{:?}", entry.version),
        "status": entry.status.as_u16(),
        "bytes": entry.bytes,
        "referer": header(http::header::REFERER),
        "user_agent": header(http::header::USER_AGENT),
        "duration_us": u64::try_from(entry.duration.as_micros()).unwrap_or(u64::MAX),
        "pid": std::process::id(),
    });
    let mut line = object.to_string();
    line.push('\n');
    line
}

fn open(target: &AccessLogTarget) -> Result<Box<dyn Write + Send>, AccessLogError> {
    Ok(match target {
        AccessLogTarget::Stdout => Box::new(std::io::stdout()),
        AccessLogTarget::Stderr => Box::new(std::io::stderr()),
        AccessLogTarget::File(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| AccessLogError::Open {
                    path: path.display().to_string(),
                    source,
                })?,
        ),
    })
}

fn write_lines(
    target: AccessLogTarget,
    out: Box<dyn Write + Send>,
    rx: Receiver<Message>,
    dropped: &AtomicU64,
) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    // Block for the first message, take whatever else is queued, then
    // flush: lines reach the file within one batch, and a busy server
    // writes in large chunks.
    while let Ok(first) = rx.recv() {
        for message in std::iter::once(first).chain(rx.try_iter()) {
            match message {
                Message::Line(line) => {
                    let _ = out.write_all(line.as_bytes());
                }
                Message::Reopen => {
                    let _ = out.flush();
                    match open(&target) {
                        Ok(file) => out = BufWriter::with_capacity(64 * 1024, file),
                        Err(e) => tracing::error!("{e}"),
                    }
                }
            }
        }
        let _ = out.flush();
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!("access log fell behind: {lost} lines dropped");
        }
    }
}

/// What one request/response contributes to its line.
pub(crate) struct Entry {
    started_at: SystemTime,
    peer: Option<SocketAddr>,
    method: Method,
    target: String,
    version: Version,
    request_headers: HeaderMap,
    status: StatusCode,
    response_headers: HeaderMap,
    bytes: u64,
    duration: Duration,
}

impl Entry {
    fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }

    fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }
}

/// An access line being assembled: started with the request, completed
/// when the hook reports it finished.
pub(crate) struct Pending {
    log: Arc<AccessLog>,
    entry: Entry,
}

impl Pending {
    pub(crate) fn start<B>(
        log: &Arc<AccessLog>,
        request: &http::Request<B>,
        peer: Option<SocketAddr>,
    ) -> Self {
        let uri: &Uri = request.uri();
        let target = match uri.scheme() {
            None => uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string()),
            Some(_) => uri.to_string(),
        };
        let entry = Entry {
            started_at: SystemTime::now(),
            peer,
            method: request.method().clone(),
            target,
            version: request.version(),
            request_headers: request.headers().clone(),
            status: StatusCode::OK,
            response_headers: HeaderMap::new(),
            bytes: 0,
            duration: Duration::ZERO,
        };
        Self {
            log: Arc::clone(log),
            entry,
        }
    }

    pub(crate) fn respond<B>(&mut self, response: &http::Response<B>) {
        self.entry.status = response.status();
        self.entry.response_headers = response.headers().clone();
    }

    pub(crate) fn finish(mut self: Box<Self>, finished: &Finished) {
        self.entry.bytes = finished.bytes;
        self.entry.duration = finished.duration;
        self.log.record(&self.entry);
    }
}
