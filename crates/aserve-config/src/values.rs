//! Reading one figment [`Value`] as a typed value.
//!
//! Values arrive typed from TOML and the command line but always as strings
//! from the environment, so every reader here accepts both (`30` and
//! `"30"`); list readers take a list or a comma-separated string. A reader
//! fails with a [`Problem`]; the caller adds the key and the source.

use std::net::IpAddr;

use figment::value::Value;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::ConfigError;

/// Why a value was rejected: what was expected (the caller adds "found …"),
/// or a complete reason.
#[derive(Debug)]
pub(crate) enum Problem {
    Expected(String),
    Reason(String),
}

impl From<ConfigError> for Problem {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid { reason, .. } => Problem::Reason(reason),
            other => Problem::Reason(other.to_string()),
        }
    }
}

fn expected<T>(what: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Expected(what.into()))
}

/// An unsigned integer in `min..=max`.
pub(crate) fn uint(value: &Value, min: u64, max: u64) -> Result<u64, Problem> {
    let n = match value {
        Value::Num(_, n) => n.to_u128_lossy(),
        Value::String(_, s) => s.trim().parse::<u128>().ok(),
        _ => None,
    };
    match n.and_then(|n| u64::try_from(n).ok()) {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ if max == u64::MAX => expected(format!("an integer >= {min}")),
        _ => expected(format!("an integer from {min} to {max}")),
    }
}

/// A `usize` of at least `min`.
pub(crate) fn count(value: &Value, min: u64) -> Result<usize, Problem> {
    let max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
    let n = uint(value, min, max)?;
    usize::try_from(n).or_else(|_| expected(format!("an integer >= {min}")))
}

/// `workers`: an integer >= 1, or `auto` (any case).
pub(crate) fn workers(value: &Value) -> Result<crate::Workers, Problem> {
    if let Value::String(_, s) = value
        && s.trim().eq_ignore_ascii_case("auto")
    {
        return Ok(crate::Workers::Auto);
    }
    count(value, 1)
        .map(crate::Workers::Count)
        .or_else(|_| expected("an integer >= 1 or \"auto\""))
}

pub(crate) fn boolean(value: &Value) -> Result<bool, Problem> {
    let b = match value {
        Value::Bool(_, b) => Some(*b),
        Value::String(_, s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    };
    b.map_or_else(|| expected("true or false"), Ok)
}

pub(crate) fn string(value: &Value) -> Result<String, Problem> {
    match value {
        Value::String(_, s) => Ok(s.clone()),
        _ => expected("a string"),
    }
}

pub(crate) fn nonempty(value: &Value) -> Result<String, Problem> {
    match string(value)? {
        s if s.is_empty() => expected("a non-empty string"),
        s => Ok(s),
    }
}

/// A list of strings, or one comma-separated string. Items are trimmed and
/// empty items dropped.
pub(crate) fn list(value: &Value) -> Result<Vec<String>, Problem> {
    let items: Vec<String> = match value {
        Value::String(_, s) => s.split(',').map(str::to_string).collect(),
        Value::Array(_, items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .map_or_else(|| expected("a list of strings"), Ok)?,
        _ => return expected("a list of strings"),
    };
    Ok(items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

/// Addresses and CIDR ranges, IPv4 or IPv6 (`10.0.0.0/8`, `::1`), as a list
/// or a comma-separated string; `*` is every address. A bare address is a
/// range of one; host bits after the prefix are ignored (`10.1.2.3/8` is
/// `10.0.0.0/8`). An empty list trusts nobody.
pub(crate) fn addr_list(value: &Value) -> Result<Vec<IpNet>, Problem> {
    let mut nets = Vec::new();
    for item in list(value)? {
        if item == "*" {
            nets.extend([IpNet::V4(Ipv4Net::default()), IpNet::V6(Ipv6Net::default())]);
            continue;
        }
        let net = match item.parse::<IpNet>() {
            Ok(net) => net.trunc(),
            Err(_) => match item.parse::<IpAddr>() {
                Ok(addr) => IpNet::from(addr),
                Err(_) => {
                    return Err(Problem::Reason(format!(
                        "{item:?} is not an IP address or CIDR range \
                         (e.g. 10.0.0.0/8, 2001:db8::/32, 127.0.0.1, or *)"
                    )));
                }
            },
        };
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    Ok(nets)
}

/// One of a clap value enum's names, any case.
pub(crate) fn choice<E: clap::ValueEnum>(value: &Value) -> Result<E, Problem> {
    let names = || {
        let names: Vec<String> = E::value_variants()
            .iter()
            .filter_map(|v| Some(v.to_possible_value()?.get_name().to_string()))
            .collect();
        format!("one of {}", names.join(", "))
    };
    match value {
        Value::String(_, s) => E::from_str(s.trim(), true).or_else(|_| expected(names())),
        _ => expected(names()),
    }
}

/// A file mode mask: an integer as is (write `0o022` in TOML), or a string
/// in octal (`"022"`, `"0o22"`).
pub(crate) fn umask(value: &Value) -> Result<u32, Problem> {
    let mask = match value {
        Value::Num(_, n) => n.to_u128_lossy().and_then(|n| u32::try_from(n).ok()),
        Value::String(_, s) => parse_octal(s).ok(),
        _ => None,
    };
    match mask {
        Some(m) if m <= 0o777 => Ok(m),
        _ => expected("an octal mode from 000 to 777, e.g. 022"),
    }
}

/// `022`, `0o022`, `0022` → 0o22.
pub(crate) fn parse_octal(raw: &str) -> Result<u32, String> {
    let s = raw.trim();
    let digits = s.strip_prefix("0o").or(s.strip_prefix("0O")).unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(mask) if mask <= 0o777 && !digits.starts_with('+') => Ok(mask),
        _ => Err(format!(
            "{raw:?} is not an octal mode from 000 to 777, e.g. 022"
        )),
    }
}

/// `KEY=VALUE`, split.
pub(crate) fn env_pair(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.contains('\0') => {
            Ok((key.to_string(), value.to_string()))
        }
        Some(_) => Err(format!("{raw:?}: the variable name is empty")),
        None => Err(format!("expected KEY=VALUE, found {raw:?}")),
    }
}

/// A user or group: a numeric id, or a name.
pub(crate) fn account(value: &Value) -> Result<crate::Account, Problem> {
    let name = match value {
        Value::Num(_, n) => {
            return n
                .to_u128_lossy()
                .and_then(|n| u32::try_from(n).ok())
                .map(crate::Account::Id)
                .map_or_else(|| expected("a name or a numeric id"), Ok);
        }
        Value::String(_, s) => s.trim(),
        _ => return expected("a name or a numeric id"),
    };
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return name
            .parse()
            .map(crate::Account::Id)
            .or_else(|_| expected("a name or a numeric id"));
    }
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ':') {
        return expected("a name or a numeric id");
    }
    Ok(crate::Account::Name(name.to_string()))
}

/// A value as the user would recognise it in a message.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{c:?}"),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => match (n.to_u128(), n.to_i128()) {
            (Some(u), _) => u.to_string(),
            (None, Some(i)) => i.to_string(),
            (None, None) => n
                .to_f64()
                .map_or_else(|| "a number".into(), |f| f.to_string()),
        },
        Value::Empty(..) => "nothing".to_string(),
        Value::Dict(..) => "a table".to_string(),
        Value::Array(_, items) => {
            let items: Vec<String> = items.iter().map(describe).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_come_typed_or_as_strings() {
        assert_eq!(uint(&Value::from(7u64), 1, u64::MAX).unwrap(), 7);
        assert_eq!(uint(&Value::from(" 7 "), 1, u64::MAX).unwrap(), 7);
        assert!(uint(&Value::from(0u64), 1, u64::MAX).is_err());
        assert!(uint(&Value::from(-1i64), 0, u64::MAX).is_err());
        assert!(uint(&Value::from("x"), 0, u64::MAX).is_err());
    }

    #[test]
    fn workers_are_a_count_or_auto() {
        use crate::Workers;
        assert_eq!(workers(&Value::from(3u64)).unwrap(), Workers::Count(3));
        assert_eq!(workers(&Value::from(" 2 ")).unwrap(), Workers::Count(2));
        assert_eq!(workers(&Value::from("AUTO")).unwrap(), Workers::Auto);
        assert!(workers(&Value::from(0u64)).is_err());
        assert!(workers(&Value::from("autox")).is_err());
        assert!(workers(&Value::from(true)).is_err());
    }

    #[test]
    fn umask_is_octal_in_strings() {
        assert_eq!(parse_octal("022"), Ok(0o22));
        assert_eq!(parse_octal("0o077"), Ok(0o77));
        assert!(parse_octal("8").is_err());
        assert!(parse_octal("01000").is_err());
        assert_eq!(umask(&Value::from(18u64)).unwrap(), 0o22);
        assert_eq!(umask(&Value::from("0o022")).unwrap(), 0o22);
    }

    #[test]
    fn accounts_are_ids_or_names() {
        use crate::Account;
        assert_eq!(account(&Value::from("1000")).unwrap(), Account::Id(1000));
        assert_eq!(account(&Value::from(0u64)).unwrap(), Account::Id(0));
        assert_eq!(
            account(&Value::from("www-data")).unwrap(),
            Account::Name("www-data".into())
        );
        assert!(account(&Value::from("a b")).is_err());
        assert!(account(&Value::from("")).is_err());
    }

    #[test]
    fn env_pairs_need_an_equals_sign() {
        assert_eq!(env_pair("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(env_pair("A="), Ok(("A".into(), String::new())));
        assert!(env_pair("A").is_err());
        assert!(env_pair("=b").is_err());
    }

    #[test]
    fn addr_lists_take_addresses_ranges_and_star() {
        let nets = |s: &str| {
            addr_list(&Value::from(s))
                .map(|n| n.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(
            nets("127.0.0.1, ::1, 10.1.2.3/8, 2001:db8::/32").unwrap(),
            ["127.0.0.1/32", "::1/128", "10.0.0.0/8", "2001:db8::/32"]
        );
        assert_eq!(nets("*").unwrap(), ["0.0.0.0/0", "::/0"]);
        assert_eq!(nets("").unwrap(), Vec::<String>::new());
        for bad in [
            "10.0.0.300",
            "10.0.0.0/33",
            "example.com",
            "::1/129",
            "1.2.3.4/",
        ] {
            let Err(Problem::Reason(reason)) = nets(bad) else {
                panic!("{bad} accepted");
            };
            assert!(reason.contains(&format!("{bad:?}")), "{reason}");
        }
    }

    #[test]
    fn lists_take_commas_or_arrays() {
        assert_eq!(list(&Value::from("a, b,,c")).unwrap(), ["a", "b", "c"]);
        let array = Value::from(vec![Value::from("a"), Value::from("b")]);
        assert_eq!(list(&array).unwrap(), ["a", "b"]);
        assert!(list(&Value::from(vec![Value::from(1u64)])).is_err());
    }
}
