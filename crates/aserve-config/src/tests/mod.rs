//! Loading end to end, through [`Config::load_from`]: a temp dir as the
//! working directory, an injected environment, never the process's own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Account, Bind, Config, ConfigError, LogFormat, LogLevel, LogTarget, Workers};

mod coverage;
mod errors;
mod precedence;
mod statsd;

/// A working directory with an optional `aserve.toml`, and an environment.
struct Setup {
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

fn setup() -> Setup {
    Setup {
        dir: tempfile::tempdir().expect("temp dir"),
        env: BTreeMap::new(),
    }
}

impl Setup {
    fn file(self, name: &str, toml: &str) -> Self {
        std::fs::write(self.dir.path().join(name), toml).expect("write config file");
        self
    }

    fn toml(self, toml: &str) -> Self {
        self.file("aserve.toml", toml)
    }

    fn env(mut self, var: &str, value: &str) -> Self {
        self.env.insert(var.into(), value.into());
        self
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn load(&self, args: &[&str]) -> Result<Config, ConfigError> {
        let args = std::iter::once("aserve").chain(args.iter().copied());
        Config::load_from(args, &self.env, self.dir.path(), &crate::NoHost)
    }

    fn ok(&self, args: &[&str]) -> Config {
        self.load(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn err(&self, args: &[&str]) -> String {
        match self.load(args) {
            Ok(config) => panic!("{args:?} loaded: {config:?}"),
            Err(e) => e.to_string(),
        }
    }
}

fn tcp(host: &str, port: u16) -> Bind {
    Bind::Tcp {
        host: host.into(),
        port,
    }
}

#[test]
fn defaults_are_gunicorns_and_the_old_flags() {
    let c = setup().ok(&["m:app"]);
    assert_eq!(c.binds, [tcp("127.0.0.1", 8000)]);
    assert_eq!(
        (c.backlog, c.workers, c.umask),
        (2048, Workers::Count(1), 0)
    );
    assert_eq!((c.worker_connections, c.threads), (1000, 1000));
    assert_eq!(c.keep_alive, Duration::from_secs(5));
    assert_eq!(c.header_timeout, Duration::from_secs(30));
    assert_eq!(c.body_timeout, Some(Duration::from_secs(60)));
    assert_eq!((c.request_timeout, c.queue_timeout), (None, None));
    assert_eq!(c.timeout, Some(Duration::from_secs(30)));
    assert_eq!((c.max_requests, c.max_worker_memory), (None, None));
    assert_eq!(c.limits.request_line, 4094);
    assert_eq!(c.limits.request_fields, 100);
    assert_eq!(c.limits.request_field_size, 8190);
    assert_eq!(c.limits.request_body, Some(1 << 30));
    assert_eq!(
        (c.log_level, c.log_format),
        (LogLevel::Info, LogFormat::Text)
    );
    assert_eq!(
        (c.error_logfile, c.access_logfile),
        (LogTarget::Stderr, None)
    );
    assert!(c.access_logformat.starts_with("%(h)s %(l)s"));
    assert!(!c.preload && !c.reuse_port && !c.print_config && !c.check_config);
    assert_eq!(c.config_file, None);
}

#[test]
fn new_settings_parse_to_typed_values() {
    let s = setup()
        .env("ASERVE_UMASK", "027")
        .env("ASERVE_ENV", "A=1, B=x=y")
        .env("ASERVE_USER", "1000")
        .env("ASERVE_ACCESS_LOGFILE", "-");
    let c = s.ok(&[
        "m",
        "--group=www-data",
        "--max-requests=100",
        "--max-requests-jitter=10",
        "--max-worker-memory=512",
        "--timeout=0",
        "--pid=/run/a.pid",
        "--reuse-port",
        "--log-format=JSON",
        "--error-logfile=/var/log/err",
    ]);
    assert_eq!(c.umask, 0o27);
    assert_eq!(
        c.env,
        [("A".into(), "1".into()), ("B".into(), "x=y".into())]
    );
    assert_eq!(c.user, Some(Account::Id(1000)));
    assert_eq!(c.group, Some(Account::Name("www-data".into())));
    assert_eq!((c.max_requests, c.max_requests_jitter), (Some(100), 10));
    assert_eq!(c.max_worker_memory, Some(512 * 1024 * 1024));
    assert_eq!(c.timeout, None);
    assert_eq!(c.pid, Some(PathBuf::from("/run/a.pid")));
    assert!(c.reuse_port);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.error_logfile, LogTarget::File("/var/log/err".into()));
    assert_eq!(c.access_logfile, Some(LogTarget::Stdout));
    let c = setup().toml("umask = 0o022\nenv = ['X=1']\n").ok(&["m"]);
    assert_eq!((c.umask, c.env.len()), (0o22, 1));
}

#[test]
fn old_flag_behaviour_is_kept() {
    let s = setup();
    assert_eq!(s.ok(&["--worker-connections", "7", "m"]).threads, 7);
    let c = s.ok(&["--request-timeout", "0", "--body-timeout", "9", "m"]);
    assert_eq!(
        (c.request_timeout, c.body_timeout),
        (None, Some(Duration::from_secs(9)))
    );
    let c = s.ok(&[
        "--limit-request-field_size",
        "100",
        "--limit-request-body",
        "0",
        "m",
    ]);
    assert_eq!(
        (c.limits.request_field_size, c.limits.request_body),
        (100, None)
    );
    let c = s.ok(&["--pythonpath", "a, b,,c", "m"]);
    assert_eq!(c.pythonpath, ["a", "b", "c"].map(PathBuf::from));
    assert_eq!(s.ok(&["--root-path", "/", "m"]).root_path, "");
    assert!(
        s.err(&["--root-path", "api", "m"])
            .contains("must start with '/'")
    );
    assert!(s.err(&["--threads", "0", "m"]).contains("(--threads)"));
}
