//! gunicorn's access-log format language, parsed once into atoms.
//!
//! `%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"` is a Python
//! %-format over named atoms; `{name}i`, `{name}o` and `{name}e` name a
//! request header, a response header and an environment variable.

use std::fmt::Write;

use base64::Engine;
use http::header::{AUTHORIZATION, REFERER, USER_AGENT};

use super::Entry;

/// One piece of a parsed format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Atom {
    Literal(String),
    /// `h`: remote address.
    RemoteAddr,
    /// `l`: always `-`.
    Dash,
    /// `u`: user name from Basic authentication.
    User,
    /// `t`: `[10/Oct/2000:13:55:36 +0000]`.
    Time,
    /// `r`: `GET /path?q HTTP/1.1`.
    RequestLine,
    /// `m`
    Method,
    /// `U`: path without the query.
    Path,
    /// `q`
    Query,
    /// `H`
    Protocol,
    /// `s`
    Status,
    /// `B`: body bytes.
    Bytes,
    /// `b`: body bytes, `-` for none.
    BytesOrDash,
    /// `f`
    Referer,
    /// `a`
    UserAgent,
    /// `T`: whole seconds.
    Seconds,
    /// `M`: milliseconds.
    Millis,
    /// `D`: microseconds.
    Micros,
    /// `L`: decimal seconds.
    DecimalSeconds,
    /// `p`: `<pid>`.
    Pid,
    RequestHeader(http::HeaderName),
    ResponseHeader(http::HeaderName),
    Env(String),
}

/// A format that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid access log format at {at:?}: {why}")]
pub struct FormatError {
    at: String,
    why: &'static str,
}

pub(crate) fn parse(format: &str) -> Result<Vec<Atom>, FormatError> {
    let mut atoms = Vec::new();
    let mut literal = String::new();
    let mut rest = format;
    while let Some(i) = rest.find('%') {
        literal.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("%%") {
            literal.push('%');
            rest = after;
            continue;
        }
        let Some(after) = rest.strip_prefix("%(") else {
            return Err(FormatError {
                at: rest.chars().take(12).collect(),
                why: "expected %(name)s",
            });
        };
        let Some(end) = after.find(")s") else {
            return Err(FormatError {
                at: rest.chars().take(12).collect(),
                why: "missing ')s'",
            });
        };
        if !literal.is_empty() {
            atoms.push(Atom::Literal(std::mem::take(&mut literal)));
        }
        atoms.push(atom(&after[..end]).ok_or(FormatError {
            at: after[..end].to_string(),
            why: "unknown atom",
        })?);
        rest = &after[end + 2..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        atoms.push(Atom::Literal(literal));
    }
    Ok(atoms)
}

fn atom(name: &str) -> Option<Atom> {
    if let Some(inner) = name.strip_prefix('{') {
        let (key, kind) = inner.rsplit_once('}')?;
        return match kind {
            "i" => http::HeaderName::from_bytes(key.as_bytes())
                .ok()
                .map(Atom::RequestHeader),
            "o" => http::HeaderName::from_bytes(key.as_bytes())
                .ok()
                .map(Atom::ResponseHeader),
            "e" => Some(Atom::Env(key.to_string())),
            _ => None,
        };
    }
    Some(match name {
        "h" => Atom::RemoteAddr,
        "l" => Atom::Dash,
        "u" => Atom::User,
        "t" => Atom::Time,
        "r" => Atom::RequestLine,
        "m" => Atom::Method,
        "U" => Atom::Path,
        "q" => Atom::Query,
        "H" => Atom::Protocol,
        "s" => Atom::Status,
        "B" => Atom::Bytes,
        "b" => Atom::BytesOrDash,
        "f" => Atom::Referer,
        "a" => Atom::UserAgent,
        "T" => Atom::Seconds,
        "M" => Atom::Millis,
        "D" => Atom::Micros,
        "L" => Atom::DecimalSeconds,
        "p" => Atom::Pid,
        _ => return None,
    })
}

/// The value of one atom for one request (`-` where there is none).
pub(crate) fn render(atom: &Atom, entry: &Entry, out: &mut String) {
    let header =
        |map: &http::HeaderMap, name: &http::HeaderName, out: &mut String| match map.get(name) {
            Some(v) => out.push_str(&String::from_utf8_lossy(v.as_bytes())),
            None => out.push('-'),
        };
    let _ = match atom {
        Atom::Literal(text) => {
            out.push_str(text);
            Ok(())
        }
        Atom::RemoteAddr => match entry.peer {
            Some(peer) => write!(out, "{}", peer.ip()),
            None => write!(out, "-"),
        },
        Atom::Dash => write!(out, "-"),
        Atom::User => write!(
            out,
            "{}",
            basic_user(&entry.request_headers).unwrap_or_else(|| "-".into())
        ),
        Atom::Time => write!(out, "[{}]", clf_time(entry.started_at)),
        Atom::RequestLine => write!(out, "{} {} {:?}", entry.method, entry.target, entry.version),
        Atom::Method => write!(out, "{}", entry.method),
        Atom::Path => write!(out, "{}", entry.path()),
        Atom::Query => write!(out, "{}", entry.query()),
        Atom::Protocol => write!(out, "{:?}", entry.version),
        Atom::Status => write!(out, "{}", entry.status.as_u16()),
        Atom::Bytes => write!(out, "{}", entry.bytes),
        Atom::BytesOrDash if entry.bytes == 0 => write!(out, "-"),
        Atom::BytesOrDash => write!(out, "{}", entry.bytes),
        Atom::Referer => {
            header(&entry.request_headers, &REFERER, out);
            Ok(())
        }
        Atom::UserAgent => {
            header(&entry.request_headers, &USER_AGENT, out);
            Ok(())
        }
        Atom::Seconds => write!(out, "{}", entry.duration.as_secs()),
        Atom::Millis => write!(out, "{}", entry.duration.as_millis()),
        Atom::Micros => write!(out, "{}", entry.duration.as_micros()),
        Atom::DecimalSeconds => write!(out, "{:.6}", entry.duration.as_secs_f64()),
        Atom::Pid => write!(out, "<{}>", std::process::id()),
        Atom::RequestHeader(name) => {
            header(&entry.request_headers, name, out);
            Ok(())
        }
        Atom::ResponseHeader(name) => {
            header(&entry.response_headers, name, out);
            Ok(())
        }
        Atom::Env(key) => write!(out, "{}", std::env::var(key).unwrap_or_else(|_| "-".into())),
    };
}

/// The user name of `Authorization: Basic ...`, if any.
fn basic_user(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    Some(
        decoded
            .split_once(':')
            .map_or(decoded.as_str(), |(user, _)| user)
            .to_string(),
    )
}

/// `10/Oct/2000:13:55:36 +0000` (UTC).
pub(crate) fn clf_time(at: std::time::SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let month = MONTHS[(month - 1) as usize];
    format!(
        "{day:02}/{month}/{year}:{:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month 1-12, day 1-31); Howard Hinnant's
/// algorithm for the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gunicorn_default_format() {
        let atoms =
            parse(r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#).unwrap();
        assert_eq!(atoms[0], Atom::RemoteAddr);
        assert_eq!(atoms[1], Atom::Literal(" ".into()));
        assert!(atoms.contains(&Atom::UserAgent));
    }

    #[test]
    fn parses_braced_atoms_and_percent() {
        let atoms = parse("%({x-real-ip}i)s %({content-type}o)s %({HOME}e)s 100%%").unwrap();
        assert_eq!(
            atoms[0],
            Atom::RequestHeader(http::HeaderName::from_static("x-real-ip"))
        );
        assert_eq!(
            atoms[2],
            Atom::ResponseHeader(http::HeaderName::from_static("content-type"))
        );
        assert_eq!(atoms[4], Atom::Env("HOME".into()));
        assert_eq!(atoms[5], Atom::Literal(" 100%".into()));
    }

    #[test]
    fn rejects_unknown_atoms() {
        assert!(parse("%(zz)s").is_err());
        assert!(parse("%(h)d").is_err());
        assert!(parse("%s").is_err());
    }

    #[test]
    fn formats_dates_like_apache() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(971_186_136);
        assert_eq!(clf_time(at), "10/Oct/2000:13:55:36 +0000");
        let leap = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(clf_time(leap), "29/Feb/2000:00:00:00 +0000");
    }
}
