//! Listen addresses (`--bind`).

use crate::ConfigError;

/// One address to listen on. Host names are resolved when binding, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// `HOST:PORT`; `host` has no brackets (`::1`, not `[::1]`).
    Tcp { host: String, port: u16 },
    /// `unix:PATH`: a Unix-domain socket, created (with `--umask`) and
    /// removed on clean exit.
    Unix(std::path::PathBuf),
    /// `fd://N`: an already listening socket inherited as descriptor N.
    Fd(i32),
}

impl Bind {
    /// Parses `HOST:PORT` or `[V6]:PORT`. A bare `HOST` means port 8000, as
    /// in gunicorn.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::invalid("--bind", format!("{raw:?}: {why}"));
        if let Some(path) = raw.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad("missing the socket path after 'unix:'"));
            }
            return Ok(Bind::Unix(path.into()));
        }
        if let Some(fd) = raw.strip_prefix("fd://") {
            let fd: i32 = fd
                .parse()
                .map_err(|_| bad("expected fd://N with N a descriptor number"))?;
            if fd < 0 {
                return Err(bad("a descriptor number is not negative"));
            }
            return Ok(Bind::Fd(fd));
        }
        let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or_else(|| bad("expected ':PORT'"))?),
                ),
            }
        } else {
            match raw.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err(bad("IPv6 addresses need brackets: [::1]:8000"));
                }
                Some((h, p)) => (h, Some(p)),
                None => (raw, None),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port = match port {
            None => 8000,
            Some(p) => p
                .parse()
                .map_err(|_| bad("port must be a number from 0 to 65535"))?,
        };
        Ok(Bind::Tcp {
            host: host.to_string(),
            port,
        })
    }

    /// 127.0.0.1:8000, or 0.0.0.0:$PORT when the platform sets PORT.
    pub fn default_for_port_env(port_env: Option<&str>) -> Result<Self, ConfigError> {
        match port_env.filter(|p| !p.is_empty()) {
            None => Ok(Bind::Tcp {
                host: "127.0.0.1".into(),
                port: 8000,
            }),
            Some(p) => {
                let port = p.parse().map_err(|_| {
                    ConfigError::invalid("$PORT", format!("{p:?} is not a port number"))
                })?;
                Ok(Bind::Tcp {
                    host: "0.0.0.0".into(),
                    port,
                })
            }
        }
    }
}

/// The `--bind` spelling, which [`Bind::parse`] reads back.
impl std::fmt::Display for Bind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bind::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Bind::Tcp { host, port } => write!(f, "{host}:{port}"),
            Bind::Unix(path) => write!(f, "unix:{}", path.display()),
            Bind::Fd(fd) => write!(f, "fd://{fd}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Bind {
        Bind::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_v4_v6_and_names() {
        assert_eq!(Bind::parse("127.0.0.1:0").unwrap(), tcp("127.0.0.1", 0));
        assert_eq!(Bind::parse("[::1]:9000").unwrap(), tcp("::1", 9000));
        assert_eq!(Bind::parse("localhost").unwrap(), tcp("localhost", 8000));
    }

    #[test]
    fn parses_unix_and_fd() {
        assert_eq!(
            Bind::parse("unix:/run/app.sock").unwrap(),
            Bind::Unix("/run/app.sock".into())
        );
        assert_eq!(
            Bind::parse("unix:///run/app.sock").unwrap(),
            Bind::Unix("/run/app.sock".into())
        );
        assert_eq!(Bind::parse("fd://3").unwrap(), Bind::Fd(3));
        assert!(Bind::parse("unix:").is_err());
        assert!(Bind::parse("fd://x").is_err());
        for b in ["unix:/a/b.sock", "fd://7", "[::1]:80", "h:1"] {
            assert_eq!(Bind::parse(b).unwrap().to_string(), b);
        }
    }

    #[test]
    fn rejects_bad_ports_and_unbracketed_v6() {
        assert!(Bind::parse("127.0.0.1:http").is_err());
        assert!(Bind::parse("127.0.0.1:70000").is_err());
        assert!(Bind::parse("::1:80").is_err());
        assert!(Bind::parse(":80").is_err());
    }

    #[test]
    fn display_round_trips() {
        for raw in ["127.0.0.1:0", "[::1]:9000", "localhost:8000"] {
            assert_eq!(Bind::parse(raw).unwrap().to_string(), raw);
        }
    }

    #[test]
    fn port_env_binds_all_interfaces() {
        assert_eq!(
            Bind::default_for_port_env(Some("5000")).unwrap(),
            tcp("0.0.0.0", 5000)
        );
        assert_eq!(
            Bind::default_for_port_env(None).unwrap(),
            tcp("127.0.0.1", 8000)
        );
        assert!(Bind::default_for_port_env(Some("x")).is_err());
    }
}
