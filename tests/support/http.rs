//! A small raw HTTP/1.x client for protocol-level checks: builds requests
//! byte for byte and parses responses framed by Content-Length, chunked
//! transfer coding or connection close, reporting whether the body was
//! complete instead of hiding truncation.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Cursor, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::Server;

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// `HTTP/1.1`, `HTTP/1.0`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// False when the connection ended before the framing said the body was
    /// done (short Content-Length body, unterminated chunked body).
    pub complete: bool,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Whether the body was sent with `Transfer-Encoding: chunked`.
    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// Every header and the body as text, for leak checks and messages.
    pub fn dump(&self) -> String {
        let head: String = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        format!(
            "{} {} {}\n{head}\n{}",
            self.version,
            self.status,
            self.reason,
            self.text()
        )
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as `key\tvalue` lines (the format the test apps report in).
    pub fn kv(&self) -> HashMap<String, String> {
        kv_lines(&self.text())
    }
}

/// Parses `key\tvalue` lines into a map.
pub fn kv_lines(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Decodes one line of lowercase/uppercase hex.
pub fn unhex(hex: &str) -> Vec<u8> {
    let hex = hex.trim();
    assert!(hex.len().is_multiple_of(2), "odd-length hex {hex:?}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// An `HTTP/1.1` request with a Host header (unless `headers` has one) and,
/// when `body` is non-empty and no framing header was given, a
/// Content-Length.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    request_version(method, path, "HTTP/1.1", headers, body)
}

/// Like [`request`] with an explicit version.
pub fn request_version(
    method: &str,
    path: &str,
    version: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {path} {version}\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        out.push_str("Host: 127.0.0.1\r\n");
    }
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    let framed = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    if !body.is_empty() && !framed {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// `GET path HTTP/1.1`.
pub fn get(path: &str) -> Vec<u8> {
    request("GET", path, &[], b"")
}

/// Encodes `pieces` as a chunked body, terminator included.
pub fn chunked(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in pieces.iter().filter(|p| !p.is_empty()) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Reads one response from `r`. `head_request` says the request was HEAD
/// (so the response has no body whatever its headers say). 1xx responses
/// are returned as they are, without a body.
pub fn read_response(r: &mut impl BufRead, head_request: bool) -> io::Result<Response> {
    let status_line =
        read_line(r)?.ok_or_else(|| io::Error::new(ErrorKind::UnexpectedEof, "no status line"))?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_string();
    let status = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
        io::Error::new(
            ErrorKind::InvalidData,
            format!("bad status line {status_line:?}"),
        )
    })?;
    let reason = parts.next().unwrap_or_default().to_string();
    if !version.starts_with("HTTP/1.") {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            format!("bad status line {status_line:?}"),
        ));
    }
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?
            .ok_or_else(|| io::Error::new(ErrorKind::UnexpectedEof, "eof in response head"))?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').ok_or_else(|| {
            io::Error::new(ErrorKind::InvalidData, format!("bad header {line:?}"))
        })?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Response {
        version,
        status,
        reason,
        headers,
        body: Vec::new(),
        complete: true,
    };
    if head_request || status < 200 || status == 204 || status == 304 {
        return Ok(resp);
    }
    if resp.is_chunked() {
        read_chunked(r, &mut resp)?;
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| io::Error::new(ErrorKind::InvalidData, format!("bad length {len:?}")))?;
        let got = read_up_to(r, len, &mut resp.body)?;
        resp.complete = got == len;
    } else {
        read_to_close(r, &mut resp.body)?;
    }
    Ok(resp)
}

/// Sends `request` on a new connection and reads one response.
pub fn fetch(server: &Server, request: &[u8]) -> Response {
    Conn::open(server).roundtrip(request)
}

/// Parses every response in `bytes` (as returned by [`Server::raw`]).
pub fn parse_all(bytes: &[u8]) -> io::Result<Vec<Response>> {
    let mut cursor = Cursor::new(bytes);
    let mut out = Vec::new();
    while (cursor.position() as usize) < bytes.len() {
        out.push(read_response(&mut cursor, false)?);
    }
    Ok(out)
}

/// Parses exactly one response from `bytes`, panicking with the raw text if
/// it does not parse.
pub fn parse_one(bytes: &[u8]) -> Response {
    read_response(&mut Cursor::new(bytes), false).unwrap_or_else(|e| {
        panic!(
            "unparsable response ({e}): {:?}",
            String::from_utf8_lossy(bytes)
        )
    })
}

fn read_chunked(r: &mut impl BufRead, resp: &mut Response) -> io::Result<()> {
    loop {
        let Some(line) = read_line(r)? else {
            resp.complete = false;
            return Ok(());
        };
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| {
            io::Error::new(ErrorKind::InvalidData, format!("bad chunk size {line:?}"))
        })?;
        if size == 0 {
            // Trailers, then the blank line.
            loop {
                match read_line(r)? {
                    Some(l) if l.is_empty() => return Ok(()),
                    Some(_) => {}
                    None => {
                        resp.complete = false;
                        return Ok(());
                    }
                }
            }
        }
        if read_up_to(r, size, &mut resp.body)? < size {
            resp.complete = false;
            return Ok(());
        }
        match read_line(r)? {
            Some(l) if l.is_empty() => {}
            Some(l) => {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    format!("junk after chunk: {l:?}"),
                ));
            }
            None => {
                resp.complete = false;
                return Ok(());
            }
        }
    }
}

/// One CRLF- (or LF-) terminated line without its terminator; None at EOF
/// (or connection reset) before any byte.
fn read_line(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    match r.read_until(b'\n', &mut buf) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => return Err(e),
    }
    if buf.is_empty() {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") {
        return Ok(None);
    }
    buf.pop();
    if buf.ends_with(b"\r") {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Reads up to `n` bytes into `out`, stopping early at EOF or reset.
fn read_up_to(r: &mut impl Read, n: usize, out: &mut Vec<u8>) -> io::Result<usize> {
    let mut got = 0;
    let mut buf = [0u8; 16 * 1024];
    while got < n {
        let want = (n - got).min(buf.len());
        match r.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(k) => {
                out.extend_from_slice(&buf[..k]);
                got += k;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn read_to_close(r: &mut impl Read, out: &mut Vec<u8>) -> io::Result<()> {
    match r.read_to_end(out) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
        Err(e) => Err(e),
    }
}

/// A client connection that can carry several requests.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// A new connection to `server` (10 s read/write timeouts).
    pub fn open(server: &Server) -> Conn {
        Conn {
            reader: BufReader::new(server.connect()),
        }
    }

    /// Wraps an already connected stream.
    pub fn from_stream(stream: TcpStream) -> Conn {
        Conn {
            reader: BufReader::new(stream),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream()
            .set_read_timeout(Some(timeout))
            .expect("set timeout");
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .expect("write to aserve");
    }

    /// Reads the next response, panicking if none can be parsed.
    pub fn response(&mut self) -> Response {
        self.read(false)
    }

    /// Reads the next response to a HEAD request.
    pub fn head_response(&mut self) -> Response {
        self.read(true)
    }

    fn read(&mut self, head_request: bool) -> Response {
        read_response(&mut self.reader, head_request)
            .unwrap_or_else(|e| panic!("could not read a response: {e}"))
    }

    /// Reads a 200 response whose body was cut short: the head (and what
    /// the app produced before failing) must have been flushed, and the
    /// body must not look complete. `what` names the failure in messages.
    pub fn cut_response(&mut self, what: &str) -> Response {
        let resp = self
            .response_or_eof()
            .expect("the head must be flushed before the connection is cut");
        assert_eq!(resp.status, 200, "{}", resp.dump());
        assert!(
            !resp.complete,
            "{what} must not look complete: {}",
            resp.dump()
        );
        resp
    }

    /// Reads the next response; Err on EOF, timeout or garbage.
    pub fn try_response(&mut self) -> io::Result<Response> {
        read_response(&mut self.reader, false)
    }

    /// Reads the next response, or None if the server closed the
    /// connection before sending a status line (a cut connection).
    pub fn response_or_eof(&mut self) -> Option<Response> {
        match read_response(&mut self.reader, false) {
            Ok(resp) => Some(resp),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof && e.to_string() == "no status line" => {
                None
            }
            Err(e) => panic!("could not read a response: {e}"),
        }
    }

    /// Sends `request` and reads its response.
    pub fn roundtrip(&mut self, request: &[u8]) -> Response {
        self.send(request);
        self.response()
    }

    /// Reads exactly `n` bytes (panics on EOF or timeout).
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.reader
            .read_exact(&mut buf)
            .expect("read bytes from aserve");
        buf
    }

    /// Waits for the server to close the connection: Ok(bytes that arrived
    /// first, time it took) on EOF or reset, Err on read timeout.
    pub fn wait_closed(&mut self) -> Result<(Vec<u8>, Duration), String> {
        let start = Instant::now();
        let mut extra = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return Ok((extra, start.elapsed())),
                Ok(k) => extra.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    return Ok((extra, start.elapsed()));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(format!(
                        "connection still open after {:?} ({e}); got {:?}",
                        start.elapsed(),
                        String::from_utf8_lossy(&extra)
                    ));
                }
            }
        }
    }
}
