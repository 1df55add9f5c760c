//! The WSGI `environ` dict.
//!
//! Everything that is the same for every request (`wsgi.version`,
//! `wsgi.errors`, `SCRIPT_NAME`, ...) lives in a template dict built once per
//! worker; each request starts from a C-level copy of it and adds only what
//! varies. Keys are interned Python strings made once, so no key is
//! re-encoded per request.
//!
//! Header bytes become `str` by latin-1 decoding, as PEP 3333 requires, so
//! an app can always recover the exact bytes with `.encode('latin-1')`.

use std::borrow::Cow;
use std::net::IpAddr;

use aserve_http::ConnInfo;
use http::request::Parts;
use http::{HeaderName, Method, Version, header};
use percent_encoding::percent_decode;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::ErrorStream;
use crate::file_wrapper::FileWrapper;

/// Per-worker facts that go into every environ.
pub(crate) struct EnvironSettings<'a> {
    pub(crate) script_name: &'a str,
    pub(crate) multiprocess: bool,
}

macro_rules! keys {
    ($($field:ident = $text:literal),* $(,)?) => {
        /// Interned environ keys and common values.
        struct Keys { $($field: Py<PyString>,)* }
        impl Keys {
            fn new(py: Python<'_>) -> Self {
                Self { $($field: PyString::intern(py, $text).unbind(),)* }
            }
        }
    };
}

keys! {
    request_method = "REQUEST_METHOD",
    path_info = "PATH_INFO",
    query_string = "QUERY_STRING",
    raw_uri = "RAW_URI",
    content_type = "CONTENT_TYPE",
    content_length = "CONTENT_LENGTH",
    server_name = "SERVER_NAME",
    server_port = "SERVER_PORT",
    server_protocol = "SERVER_PROTOCOL",
    remote_addr = "REMOTE_ADDR",
    remote_port = "REMOTE_PORT",
    script_name = "SCRIPT_NAME",
    url_scheme = "wsgi.url_scheme",
    input = "wsgi.input",
    http = "http",
    https = "https",
    http_10 = "HTTP/1.0",
    http_11 = "HTTP/1.1",
    http_2 = "HTTP/2",
    get = "GET",
    post = "POST",
    head = "HEAD",
    empty = "",
}

/// Request headers common enough that their `HTTP_*` key is made once.
const COMMON_HEADERS: [HeaderName; 16] = [
    header::HOST,
    header::USER_AGENT,
    header::ACCEPT,
    header::ACCEPT_ENCODING,
    header::ACCEPT_LANGUAGE,
    header::CONNECTION,
    header::COOKIE,
    header::REFERER,
    header::AUTHORIZATION,
    header::CACHE_CONTROL,
    header::ORIGIN,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::UPGRADE_INSECURE_REQUESTS,
    header::RANGE,
    header::PRAGMA,
];

pub(crate) struct EnvironBuilder {
    template: Py<PyDict>,
    keys: Keys,
    /// `HTTP_*` keys of [`COMMON_HEADERS`], interned, in the same order.
    common: Vec<Py<PyString>>,
    script_name: String,
}

impl EnvironBuilder {
    pub(crate) fn new(py: Python<'_>, settings: &EnvironSettings<'_>) -> PyResult<Self> {
        let template = PyDict::new(py);
        template.set_item("wsgi.version", (1, 0))?;
        template.set_item("wsgi.errors", Bound::new(py, ErrorStream::new())?)?;
        template.set_item("wsgi.multithread", true)?;
        template.set_item("wsgi.multiprocess", settings.multiprocess)?;
        template.set_item("wsgi.run_once", false)?;
        template.set_item("wsgi.input_terminated", true)?;
        template.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
        template.set_item("SCRIPT_NAME", settings.script_name)?;
        template.set_item(
            "SERVER_SOFTWARE",
            concat!("aserve/", env!("CARGO_PKG_VERSION")),
        )?;
        let keys = Keys::new(py);
        // Every request sets these. Present in the template already, each
        // set is a value swap in the copy, not an insertion that may grow
        // the dict's table.
        for key in [
            &keys.request_method,
            &keys.path_info,
            &keys.query_string,
            &keys.raw_uri,
            &keys.server_protocol,
            &keys.url_scheme,
            &keys.remote_addr,
            &keys.remote_port,
            &keys.server_name,
            &keys.server_port,
            &keys.input,
        ] {
            template.set_item(key, &keys.empty)?;
        }
        Ok(Self {
            template: template.unbind(),
            keys,
            common: COMMON_HEADERS
                .iter()
                .map(|name| PyString::intern(py, &cgi_name(name)).unbind())
                .collect(),
            script_name: settings.script_name.to_string(),
        })
    }

    /// The environ for one request; `input` becomes `wsgi.input`.
    pub(crate) fn build<'py>(
        &self,
        py: Python<'py>,
        parts: &Parts,
        conn: &ConnInfo,
        input: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let k = &self.keys;
        let environ = self.template.bind(py).copy()?;
        let method = match parts.method {
            Method::GET => k.get.bind(py).clone(),
            Method::POST => k.post.bind(py).clone(),
            Method::HEAD => k.head.bind(py).clone(),
            ref other => PyString::new(py, other.as_str()),
        };
        environ.set_item(&k.request_method, method)?;
        environ.set_item(&k.path_info, latin1(py, &self.path_info(parts.uri.path()))?)?;
        let query = parts.uri.query().unwrap_or("");
        environ.set_item(
            &k.query_string,
            if query.is_empty() {
                k.empty.bind(py).clone()
            } else {
                latin1(py, query.as_bytes())?
            },
        )?;
        let raw_uri = match parts.uri.scheme() {
            None => latin1(
                py,
                parts
                    .uri
                    .path_and_query()
                    .map_or("/", |pq| pq.as_str())
                    .as_bytes(),
            )?,
            Some(_) => latin1(py, parts.uri.to_string().as_bytes())?,
        };
        environ.set_item(&k.raw_uri, raw_uri)?;
        let protocol = match parts.version {
            Version::HTTP_10 | Version::HTTP_09 => &k.http_10,
            Version::HTTP_2 | Version::HTTP_3 => &k.http_2,
            _ => &k.http_11,
        };
        environ.set_item(&k.server_protocol, protocol)?;
        environ.set_item(&k.url_scheme, if conn.secure { &k.https } else { &k.http })?;
        // A Unix-domain socket has no client address; CGI wants the keys.
        let (addr, port) = match conn.peer {
            Some(peer) => (
                latin1(py, IpText::new(peer.ip()).as_bytes())?,
                latin1(py, itoa::Buffer::new().format(peer.port()).as_bytes())?,
            ),
            None => (k.empty.bind(py).clone(), k.empty.bind(py).clone()),
        };
        environ.set_item(&k.remote_addr, addr)?;
        environ.set_item(&k.remote_port, port)?;
        let (name, port) = server_name_port(parts, conn);
        environ.set_item(&k.server_name, latin1(py, name.as_bytes())?)?;
        environ.set_item(&k.server_port, latin1(py, port.as_bytes())?)?;
        environ.set_item(&k.input, input)?;
        self.add_headers(py, &environ, parts)?;
        if let Some(forwarded) = conn.forwarded.as_deref() {
            if let Some(host) = &forwarded.host {
                // COMMON_HEADERS[0] is Host.
                environ.set_item(&self.common[0], latin1(py, host.as_bytes())?)?;
            }
            if let Some(prefix) = &forwarded.prefix {
                let script_name = format!("{prefix}{}", self.script_name);
                environ.set_item(&k.script_name, latin1(py, script_name.as_bytes())?)?;
            }
        }
        Ok(environ)
    }

    /// The percent-decoded path, minus the `SCRIPT_NAME` mount point when the
    /// request is under it.
    fn path_info(&self, path: &str) -> Vec<u8> {
        let decoded: Vec<u8> = percent_decode(path.as_bytes()).collect();
        let mount = self.script_name.as_bytes();
        match decoded.strip_prefix(mount) {
            Some(rest) if !mount.is_empty() && (rest.is_empty() || rest[0] == b'/') => {
                rest.to_vec()
            }
            _ => decoded,
        }
    }

    fn add_headers(
        &self,
        py: Python<'_>,
        environ: &Bound<'_, PyDict>,
        parts: &Parts,
    ) -> PyResult<()> {
        let headers = &parts.headers;
        for name in headers.keys() {
            let key = if name == header::CONTENT_TYPE {
                self.keys.content_type.bind(py).clone()
            } else if name == header::CONTENT_LENGTH {
                self.keys.content_length.bind(py).clone()
            } else if let Some(i) = COMMON_HEADERS.iter().position(|common| common == name) {
                self.common[i].bind(py).clone()
            } else if name.as_str().contains('_') {
                // `X_Forwarded_For` would otherwise collide with (and spoof)
                // `X-Forwarded-For` once both become HTTP_X_FORWARDED_FOR.
                continue;
            } else {
                latin1(py, cgi_name(name).as_bytes())?
            };
            let mut values = headers.get_all(name).iter();
            let Some(first) = values.next() else { continue };
            let value = match values.next() {
                None => latin1(py, first.as_bytes())?,
                Some(second) => {
                    let sep: &[u8] = if name == header::COOKIE { b"; " } else { b"," };
                    let mut joined = first.as_bytes().to_vec();
                    for v in std::iter::once(second).chain(values) {
                        joined.extend_from_slice(sep);
                        joined.extend_from_slice(v.as_bytes());
                    }
                    latin1(py, &joined)?
                }
            };
            environ.set_item(key, value)?;
        }
        Ok(())
    }
}

/// `user-agent` → `HTTP_USER_AGENT`.
fn cgi_name(name: &HeaderName) -> String {
    let mut key = String::with_capacity(5 + name.as_str().len());
    key.push_str("HTTP_");
    key.extend(name.as_str().chars().map(|c| {
        if c == '-' {
            '_'
        } else {
            c.to_ascii_uppercase()
        }
    }));
    key
}

/// SERVER_NAME and SERVER_PORT.
///
/// SERVER_PORT is the port the request arrived on (RFC 3875 §4.1.15), never
/// one the client wrote in its Host header: an app may trust it to tell its
/// listeners apart. SERVER_NAME is the name the client directed the request
/// to (§4.1.14): the Host header's (or an absolute request target's) host,
/// else the local address, so virtual hosts work without the Host header's
/// port leaking into SERVER_PORT. A Unix-domain socket has no address or
/// port: there both come from the Host header (as under gunicorn), with
/// `localhost` and the scheme's default port when it has none.
///
/// Behind a trusted proxy that forwards them (the user opted in), the
/// host the client addressed and the port it connected to at the proxy
/// take the place of the request's and the local ones.
fn server_name_port<'a>(parts: &'a Parts, conn: &'a ConnInfo) -> (Cow<'a, str>, Cow<'a, str>) {
    let (name, port) = direct_name_port(parts, conn);
    match conn.forwarded.as_deref().and_then(|f| f.port) {
        Some(forwarded) => (name, port_text(forwarded)),
        None => (name, port),
    }
}

fn direct_name_port<'a>(parts: &'a Parts, conn: &'a ConnInfo) -> (Cow<'a, str>, Cow<'a, str>) {
    let default_port = if conn.secure { "443" } else { "80" };
    let forwarded = conn.forwarded.as_deref().and_then(|f| f.host.as_deref());
    let host = forwarded
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .filter(|h| !h.is_empty());
    // `[::1]:8000`, `[::1]`, `example.com:8000`, `example.com`.
    let split = host.map(|host| match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => (&host[..i], &host[i + 1..]),
        _ => (host, ""),
    });
    let split = split.filter(|(name, _)| !name.is_empty());
    match (conn.local, split) {
        (Some(local), Some((name, _))) => (name.into(), port_text(local.port())),
        (Some(local), None) => (
            String::from_utf8_lossy(IpText::new(local.ip()).as_bytes())
                .into_owned()
                .into(),
            port_text(local.port()),
        ),
        (None, Some((name, port))) => {
            let port = if port.is_empty() { default_port } else { port };
            (name.into(), port.into())
        }
        (None, None) => ("localhost".into(), default_port.into()),
    }
}

fn port_text(port: u16) -> Cow<'static, str> {
    itoa::Buffer::new().format(port).to_owned().into()
}

/// An IP address as text. IPv4, nearly every request's, is written by hand
/// into a buffer on the stack: `Display` goes through `core::fmt`, which
/// cost more instructions than all the other environ strings together
/// (callgrind, hello world).
enum IpText {
    V4 { text: [u8; 15], len: usize },
    Other(String),
}

impl IpText {
    fn new(ip: IpAddr) -> Self {
        let IpAddr::V4(v4) = ip else {
            return Self::Other(ip.to_string());
        };
        let (mut text, mut len) = ([0; 15], 0);
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                text[len] = b'.';
                len += 1;
            }
            let mut digits = itoa::Buffer::new();
            let digits = digits.format(octet).as_bytes();
            text[len..len + digits.len()].copy_from_slice(digits);
            len += digits.len();
        }
        Self::V4 { text, len }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::V4 { text, len } => &text[..*len],
            Self::Other(text) => text.as_bytes(),
        }
    }
}

/// Bytes → str, one char per byte (latin-1), as PEP 3333 wants every
/// environ string. CPython's latin-1 decoder is also the cheapest way to
/// make a `str` of ASCII: it copies, where UTF-8 decoding validates.
pub(crate) fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = ffi::Py_ssize_t::try_from(bytes.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("string too long"))?;
    // SAFETY: the GIL is held (`py`); the pointer and length describe
    // `bytes`, which outlives the call; NULL asks for strict errors (none
    // can occur: every byte is a latin-1 character).
    let text = unsafe { ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), len, std::ptr::null()) };
    // SAFETY: the call returns a new reference, or NULL with an exception
    // set (out of memory).
    unsafe { Bound::from_owned_ptr_or_err(py, text) }.map(|text| {
        // SAFETY: PyUnicode_DecodeLatin1 returns a str.
        unsafe { text.cast_into_unchecked() }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_port(target: &str, host: Option<&str>, local: Option<&str>) -> (String, String) {
        let mut request = http::Request::builder().uri(target);
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        let (parts, ()) = request.body(()).expect("a request").into_parts();
        let conn = ConnInfo {
            peer: None,
            local: local.map(|l| l.parse().expect("an address")),
            secure: false,
            forwarded: None,
        };
        let (name, port) = server_name_port(&parts, &conn);
        (name.into_owned(), port.into_owned())
    }

    #[test]
    fn server_port_is_the_local_port_whatever_the_host_says() {
        let local = Some("127.0.0.1:8000");
        let cases = [
            ("/", Some("example.com:9999"), ("example.com", "8000")),
            ("/", Some("[::1]:9999"), ("[::1]", "8000")),
            ("/", Some("example.com"), ("example.com", "8000")),
            ("/", Some(":9999"), ("127.0.0.1", "8000")),
            ("/", None, ("127.0.0.1", "8000")),
            (
                "http://other.org:7/x",
                Some("example.com"),
                ("other.org", "8000"),
            ),
        ];
        for (target, host, (name, port)) in cases {
            let got = name_port(target, host, local);
            assert_eq!(got, (name.into(), port.into()), "{target} Host: {host:?}");
        }
    }

    #[test]
    fn a_forwarded_host_and_port_replace_the_requests() {
        let (parts, ()) = http::Request::builder()
            .uri("/")
            .header(header::HOST, "internal:8000")
            .body(())
            .expect("a request")
            .into_parts();
        let mut conn = ConnInfo {
            peer: None,
            local: Some("127.0.0.1:8000".parse().expect("an address")),
            secure: true,
            forwarded: Some(Box::new(aserve_http::ForwardedTarget {
                host: Some("example.com:8443".into()),
                port: Some(8443),
                prefix: None,
            })),
        };
        let got = server_name_port(&parts, &conn);
        assert_eq!(got, ("example.com".into(), "8443".into()));
        conn.forwarded = Some(Box::new(aserve_http::ForwardedTarget {
            port: Some(443),
            ..Default::default()
        }));
        let got = server_name_port(&parts, &conn);
        assert_eq!(got, ("internal".into(), "443".into()));
    }

    #[test]
    fn unix_socket_takes_name_and_port_from_the_host_header() {
        let cases = [
            (Some("example.com:9999"), ("example.com", "9999")),
            (Some("example.com"), ("example.com", "80")),
            (None, ("localhost", "80")),
        ];
        for (host, (name, port)) in cases {
            let got = name_port("/", host, None);
            assert_eq!(got, (name.into(), port.into()), "Host: {host:?}");
        }
    }

    #[test]
    fn ip_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.200.3.45",
            "255.255.255.255",
            "::1",
            "fe80::1:2",
        ] {
            let ip: IpAddr = ip.parse().expect("an address");
            assert_eq!(IpText::new(ip).as_bytes(), ip.to_string().as_bytes());
        }
    }
}
