//! The list of settings: [`SETTINGS`], one entry per setting, in
//! `--print-config` and documentation order. This is the one place a
//! setting is declared (see the crate docs, "Adding a setting"); the
//! command line, the layers, `--help`, `--print-config`, the docs tables
//! and the gunicorn mapping are all derived from it.

use std::path::PathBuf;

use figment::value::Value;

use crate::setting::{Builtin, Custom, Default, Field, Group, Setting, Shape, path_value};
use crate::values::{self, Problem};
use crate::{AppSpec, Bind, LogFormat, LogLevel, LogTarget, StatsdHost, WorkerClass, Workers};

/// gunicorn's default access log format.
pub const GUNICORN_ACCESS_LOGFORMAT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

use Builtin::{Bool, Int, Str};
use Group::{Connections, Development, Logging, Processes, Proxy, Python, Sockets, Statsd};

/// Trusted by default (`forwarded_allow_ips`, `proxy_allow_from`): this
/// host, as in gunicorn.
pub(crate) const LOCALHOST: &str = "127.0.0.1,::1";

/// Every setting.
pub(crate) static SETTINGS: &[Setting] = &[
    Setting {
        key: "app",
        value_name: "APP",
        field: Field::Custom(&APP),
        default: Default::Derived("— (required)"),
        group: Sockets,
        doc: "the WSGI app: `module:attr`, `module` (meaning `module:application`), or \
              `'module:factory(args)'` with literal arguments",
        gunicorn: &["wsgi_app"],
        ..Setting::NEW
    },
    Setting {
        key: "bind",
        short: Some('b'),
        value_name: "ADDR",
        field: Field::Custom(&BIND),
        default: Default::Derived("`127.0.0.1:8000`, or `0.0.0.0:$PORT` when `PORT` is set"),
        group: Sockets,
        doc: "`HOST:PORT` or `[IPv6]:PORT`, `unix:PATH` (created with `umask`, removed on clean \
              exit) or `fd://N` (an inherited listening socket) to listen on; a list (repeat \
              the flag). Port 0 picks a free port. Under systemd socket activation \
              (`LISTEN_FDS`/`LISTEN_PID` naming this process) the passed sockets are used instead",
        gunicorn: &["bind"],
        ..Setting::NEW
    },
    Setting {
        key: "backlog",
        value_name: "N",
        field: Field::Custom(&BACKLOG),
        default: Default::Is(Int(2048)),
        group: Sockets,
        doc: "listen backlog: connections the kernel queues while all are busy",
        gunicorn: &["backlog"],
        ..Setting::NEW
    },
    Setting {
        key: "reuse_port",
        field: Field::Flag(|c| &mut c.reuse_port),
        default: Default::Is(Bool(false)),
        group: Sockets,
        doc: "set `SO_REUSEPORT` on listening sockets",
        gunicorn: &["reuse_port"],
        ..Setting::NEW
    },
    Setting {
        key: "metrics_bind",
        value_name: "ADDR",
        field: Field::Custom(&METRICS_BIND),
        default: Default::Derived("off"),
        group: Sockets,
        doc: "`HOST:PORT` (or `[IPv6]:PORT`) where `/live`, `/ready` and `/metrics` \
              (Prometheus) are answered by aserve itself, never by the app, also while every \
              Python thread is busy; see [Health and metrics](metrics.md). Bound once by the \
              master, like `bind`: an address in use stops the start with one line and exit \
              status 1",
        ..Setting::NEW
    },
    Setting {
        key: "umask",
        short: Some('m'),
        value_name: "MASK",
        field: Field::Custom(&UMASK),
        default: Default::Is(Int(0)),
        group: Sockets,
        doc: "file mode mask for files and sockets aserve creates; octal in flags and strings \
              (`022`, `\"0o022\"`), write `0o022` for a TOML integer",
        gunicorn: &["umask"],
        ..Setting::NEW
    },
    Setting {
        key: "workers",
        short: Some('w'),
        value_name: "N",
        field: Field::Custom(&WORKERS),
        default: Default::Derived("`$WEB_CONCURRENCY`, else `1`"),
        group: Processes,
        doc: "number of worker processes, at least 1; or `auto`: the container's CPU limit \
              (cgroup v2 `cpu.max`, v1 quota/period), rounded up, else the CPUs aserve may \
              run on; logged at start with where it came from",
        gunicorn: &["workers"],
        ..Setting::NEW
    },
    Setting {
        key: "worker_class",
        short: Some('k'),
        value_name: "CLASS",
        field: Field::Custom(&WORKER_CLASS),
        default: Default::Derived("none: aserve's own pool (as `gevent`)"),
        group: Processes,
        doc: "gunicorn's worker type, mapped onto aserve's thread pool: `sync` = 1 Python \
              thread per worker (and `request_timeout` defaults to `timeout`), `gthread` = \
              `threads` threads, `gevent`/`eventlet` = the growing pool up to \
              `worker_connections`. ASGI workers are refused",
        gunicorn: &["worker_class"],
        differs: "there is no green-thread monkey-patching: every class is real threads \
                  behind one async front end per worker",
        ..Setting::NEW
    },
    Setting {
        key: "preload",
        field: Field::Flag(|c| &mut c.preload),
        default: Default::Is(Bool(false)),
        group: Processes,
        doc: "import the app before forking the workers",
        gunicorn: &["preload_app"],
        ..Setting::NEW
    },
    Setting {
        key: "timeout",
        short: Some('t'),
        value_name: "SECS",
        field: Field::SecsOrOff(|c| &mut c.timeout),
        default: Default::Is(Int(30)),
        group: Processes,
        doc: "a worker whose event loop is silent this long is killed and replaced; 0 = off",
        gunicorn: &["timeout"],
        differs: "as for gunicorn's gthread and gevent workers, a long request does not count; \
                  under gunicorn's sync worker it did, so with `-k sync` a request running \
                  longer than this gets 504 (`request_timeout` defaults to it)",
        ..Setting::NEW
    },
    Setting {
        key: "max_requests",
        value_name: "N",
        field: Field::IntOrOff(|c| &mut c.max_requests),
        default: Default::Is(Int(0)),
        group: Processes,
        doc: "restart a worker after this many requests; 0 = off",
        gunicorn: &["max_requests"],
        ..Setting::NEW
    },
    Setting {
        key: "max_requests_jitter",
        value_name: "N",
        field: Field::Int {
            min: 0,
            lens: |c| &mut c.max_requests_jitter,
        },
        default: Default::Is(Int(0)),
        group: Processes,
        doc: "add up to this many requests, at random, to `max_requests` per worker",
        gunicorn: &["max_requests_jitter"],
        ..Setting::NEW
    },
    Setting {
        key: "max_worker_memory",
        value_name: "MIB",
        field: Field::Custom(&MAX_WORKER_MEMORY),
        default: Default::Is(Int(0)),
        group: Processes,
        doc: "restart a worker whose resident memory exceeds this many MiB: it takes no new \
              request once over (checked around each request) and is replaced; 0 = off",
        ..Setting::NEW
    },
    Setting {
        key: "graceful_timeout",
        value_name: "SECS",
        field: Field::Secs {
            min: 0,
            lens: |c| &mut c.graceful_timeout,
        },
        default: Default::Is(Int(30)),
        group: Processes,
        doc: "on SIGTERM, how long in-flight requests get to finish",
        gunicorn: &["graceful_timeout"],
        ..Setting::NEW
    },
    Setting {
        key: "shutdown_delay",
        value_name: "SECS",
        field: Field::Secs {
            min: 0,
            lens: |c| &mut c.shutdown_delay,
        },
        default: Default::Is(Int(0)),
        group: Processes,
        doc: "on SIGTERM, keep accepting and serving this long (while `/ready` says 503) \
              before the listeners close: the time a load balancer needs to stop sending; \
              replaces a Kubernetes preStop sleep",
        ..Setting::NEW
    },
    Setting {
        key: "pid",
        short: Some('p'),
        value_name: "FILE",
        field: Field::Path(|c| &mut c.pid),
        group: Processes,
        doc: "write the master's PID to this file (removed at exit); refuses to start if the \
              file names a live process",
        gunicorn: &["pidfile"],
        ..Setting::NEW
    },
    Setting {
        key: "user",
        short: Some('u'),
        value_name: "USER",
        field: Field::Custom(&USER),
        group: Processes,
        doc: "after binding, the master switches to this user (name or uid), so workers run \
              as it; privileged ports still work",
        gunicorn: &["user"],
        ..Setting::NEW
    },
    Setting {
        key: "group",
        short: Some('g'),
        value_name: "GROUP",
        field: Field::Custom(&GROUP),
        group: Processes,
        doc: "likewise for the group (default: the user's primary group)",
        gunicorn: &["group"],
        ..Setting::NEW
    },
    Setting {
        key: "name",
        short: Some('n'),
        value_name: "NAME",
        field: Field::Name(|c| &mut c.name),
        group: Processes,
        doc: "process name shown by `ps`/`top`: `NAME: master`, `NAME: worker` (the kernel \
              keeps 15 bytes)",
        gunicorn: &["proc_name"],
        ..Setting::NEW
    },
    Setting {
        key: "reload",
        field: Field::Flag(|c| &mut c.reload),
        default: Default::Is(Bool(false)),
        group: Development,
        doc: "restart the workers when the app's Python files change: new workers first, then \
              the old ones drained; if the new code fails to import, its traceback is logged \
              once and the old workers keep serving until the next change. Cannot be combined \
              with `preload` (exit 2)",
        gunicorn: &["reload"],
        differs: "a failed import keeps the old workers serving instead of stopping the server",
        ..Setting::NEW
    },
    Setting {
        key: "reload_extra_file",
        value_name: "FILE",
        field: Field::Custom(&RELOAD_EXTRA_FILE),
        group: Development,
        doc: "with `reload`, also restart when this file changes (a template, a settings \
              file: any kind of file); a directory means every file under it, at any depth. \
              Relative to the working directory; a list (repeat the flag)",
        gunicorn: &["reload_extra_files"],
        ..Setting::NEW
    },
    Setting {
        key: "reload_ignore",
        value_name: "GLOB",
        field: Field::Custom(&RELOAD_IGNORE),
        group: Development,
        doc: "with `reload`, changes to files matching this glob do not restart (files named \
              by `reload_extra_file` always do). Matched against the file's name, its path \
              relative to the app's directory (`chdir`, else the working directory) and its \
              absolute path; `*` and `?` stay within a directory, `**` crosses directories \
              (`*_test.py`, `app/migrations/*`, `**/generated/**`). A list (repeat the flag)",
        ..Setting::NEW
    },
    Setting {
        key: "chdir",
        value_name: "DIR",
        field: Field::Path(|c| &mut c.chdir),
        group: Python,
        doc: "change to `DIR` before importing the app, and put it first on `sys.path`",
        gunicorn: &["chdir"],
        ..Setting::NEW
    },
    Setting {
        key: "pythonpath",
        value_name: "PATHS",
        field: Field::Paths(|c| &mut c.pythonpath),
        group: Python,
        doc: "comma-separated (or, in a file, a list of) directories put at the front of \
              `sys.path`",
        gunicorn: &["pythonpath"],
        ..Setting::NEW
    },
    Setting {
        key: "virtualenv",
        value_name: "DIR",
        field: Field::Path(|c| &mut c.virtualenv),
        group: Python,
        doc: "also import the app's dependencies from this other virtualenv, put first on \
              `sys.path`; it must be of the running Python's version (else one line, exit 1). \
              Rarely needed: the venv aserve is installed in is the app's environment already, \
              and naming it adds nothing",
        ..Setting::NEW
    },
    Setting {
        key: "root_path",
        value_name: "PATH",
        field: Field::Custom(&ROOT_PATH),
        default: Default::Derived("`$SCRIPT_NAME`, or `''`"),
        group: Python,
        doc: "where the app is mounted: becomes `SCRIPT_NAME`; must start with `/`, a trailing \
              `/` is dropped",
        gunicorn: &["root_path"],
        ..Setting::NEW
    },
    Setting {
        key: "env",
        short: Some('e'),
        value_name: "KEY=VALUE",
        field: Field::Custom(&ENV),
        group: Python,
        doc: "environment variables set in the workers before the app is imported; a list \
              (repeat the flag)",
        gunicorn: &["raw_env"],
        ..Setting::NEW
    },
    Setting {
        key: "threads",
        value_name: "N",
        field: Field::Count {
            min: 1,
            lens: |c| &mut c.threads,
        },
        default: Default::Derived(
            "`worker_connections` (by `worker_class`: `sync` 1, `gthread` 1)",
        ),
        group: Python,
        doc: "upper bound of the Python thread pool per worker. The pool starts one thread and \
              grows only when queued requests stall (10 ms with no request started: the \
              threads are blocked, e.g. in `time.sleep` or I/O), so a CPU-bound app keeps one \
              thread and a long-poll app gets one per waiting request",
        gunicorn: &["threads"],
        differs: "gunicorn's default is 1 (its sync worker); aserve's pool grows on demand up \
                  to this bound, so its default is `worker_connections` unless `worker_class` \
                  is `sync` or `gthread`",
        ..Setting::NEW
    },
    Setting {
        key: "thread_idle_timeout",
        value_name: "SECS",
        field: Field::Secs {
            min: 0,
            lens: |c| &mut c.thread_idle_timeout,
        },
        default: Default::Is(Int(60)),
        group: Python,
        doc: "an idle Python thread exits after this long",
        ..Setting::NEW
    },
    Setting {
        key: "worker_connections",
        value_name: "N",
        field: Field::Count {
            min: 1,
            lens: |c| &mut c.worker_connections,
        },
        default: Default::Is(Int(1000)),
        group: Connections,
        doc: "open connections per worker; a new one beyond it takes the place of an idle \
              keep-alive connection or of the slowest request head, and waits in the backlog \
              only while every connection is serving a request",
        gunicorn: &["worker_connections"],
        ..Setting::NEW
    },
    Setting {
        key: "keep_alive",
        value_name: "SECS",
        field: Field::Secs {
            min: 0,
            lens: |c| &mut c.keep_alive,
        },
        default: Default::Is(Int(5)),
        group: Connections,
        doc: "an idle keep-alive connection is closed after this long",
        gunicorn: &["keepalive"],
        differs: "gunicorn's default is 2; an idle connection here holds no thread (about \
                  2.5 KiB), so aserve keeps it longer",
        ..Setting::NEW
    },
    Setting {
        key: "header_timeout",
        value_name: "SECS",
        field: Field::Secs {
            min: 1,
            lens: |c| &mut c.header_timeout,
        },
        default: Default::Is(Int(30)),
        group: Connections,
        doc: "a client must send a complete request head within this time; at least 1",
        ..Setting::NEW
    },
    Setting {
        key: "body_timeout",
        value_name: "SECS",
        field: Field::SecsOrOff(|c| &mut c.body_timeout),
        default: Default::Is(Int(60)),
        group: Connections,
        doc: "longest silence while the app reads the request body; 0 = off",
        ..Setting::NEW
    },
    Setting {
        key: "body_min_rate",
        value_name: "BYTES",
        field: Field::IntOrOff(|c| &mut c.body_min_rate),
        default: Default::Is(Int(500)),
        group: Connections,
        doc: "while the app waits for the request body, it must arrive at this many bytes \
              a second on average, after `body_min_rate_grace`; slower gets 408; 0 = off",
        ..Setting::NEW
    },
    Setting {
        key: "body_min_rate_grace",
        value_name: "SECS",
        field: Field::Secs {
            min: 1,
            lens: |c| &mut c.body_min_rate_grace,
        },
        default: Default::Is(Int(20)),
        group: Connections,
        doc: "how long the app may wait for a request body before `body_min_rate` applies",
        ..Setting::NEW
    },
    Setting {
        key: "request_timeout",
        value_name: "SECS",
        field: Field::SecsOrOff(|c| &mut c.request_timeout),
        default: Default::Derived("`0`, or `timeout` with `worker_class = \"sync\"`"),
        group: Connections,
        doc: "a request running longer gets 504 and the app thread a `TimeoutError`; 0 = off",
        ..Setting::NEW
    },
    Setting {
        key: "queue_timeout",
        value_name: "SECS",
        field: Field::SecsOrOff(|c| &mut c.queue_timeout),
        default: Default::Is(Int(0)),
        group: Connections,
        doc: "a request waiting longer for a Python thread gets 503 with `Retry-After`; 0 = off",
        ..Setting::NEW
    },
    Setting {
        key: "limit_request_line",
        value_name: "BYTES",
        field: Field::Count {
            min: 1,
            lens: |c| &mut c.limits.request_line,
        },
        default: Default::Is(Int(4094)),
        group: Connections,
        doc: "longest request line; longer gets 414",
        gunicorn: &["limit_request_line"],
        ..Setting::NEW
    },
    Setting {
        key: "limit_request_fields",
        value_name: "N",
        field: Field::Count {
            min: 1,
            lens: |c| &mut c.limits.request_fields,
        },
        default: Default::Is(Int(100)),
        group: Connections,
        doc: "most request header fields; more gets 431",
        gunicorn: &["limit_request_fields"],
        ..Setting::NEW
    },
    Setting {
        key: "limit_request_field_size",
        aliases: &["limit-request-field_size"],
        value_name: "BYTES",
        field: Field::Count {
            min: 1,
            lens: |c| &mut c.limits.request_field_size,
        },
        default: Default::Is(Int(8190)),
        group: Connections,
        doc: "largest request header field; larger gets 431 (gunicorn's \
              `--limit-request-field_size` also works)",
        gunicorn: &["limit_request_field_size"],
        ..Setting::NEW
    },
    Setting {
        key: "limit_request_body",
        value_name: "BYTES",
        field: Field::IntOrOff(|c| &mut c.limits.request_body),
        default: Default::Is(Int(1 << 30)),
        group: Connections,
        doc: "largest request body (default 1 GiB); larger gets 413; 0 = off",
        ..Setting::NEW
    },
    Setting {
        key: "forwarded_allow_ips",
        value_name: "LIST",
        field: Field::Custom(&FORWARDED_ALLOW_IPS),
        default: Default::Derived("`$FORWARDED_ALLOW_IPS`, else `127.0.0.1,::1`"),
        group: Proxy,
        doc: "proxies whose forwarding headers are believed (see [Behind a \
              proxy](#behind-a-proxy-what-aserve-believes)); addresses and CIDR ranges, `*` \
              for every address, empty for nobody. Unix-socket peers always are",
        gunicorn: &["forwarded_allow_ips"],
        ..Setting::NEW
    },
    Setting {
        key: "forwarded_host_headers",
        field: Field::Flag(|c| &mut c.forwarded_host_headers),
        default: Default::Is(Bool(false)),
        group: Proxy,
        doc: "also believe `X-Forwarded-Host`, `X-Forwarded-Port`, `X-Forwarded-Prefix` and \
              `Forwarded: host=` from those proxies",
        ..Setting::NEW
    },
    Setting {
        key: "proxy_protocol",
        field: Field::Custom(&PROXY_PROTOCOL),
        default: Default::Is(Bool(false)),
        group: Proxy,
        doc: "every connection must start with a PROXY protocol header, v1 or v2 (told apart \
              by its signature); also `off`/`auto`, as gunicorn writes it",
        gunicorn: &["proxy_protocol"],
        differs: "gunicorn's `v1` and `v2` (one version only) are taken as `auto`: aserve \
                  always accepts both",
        ..Setting::NEW
    },
    Setting {
        key: "proxy_allow_from",
        value_name: "LIST",
        field: Field::Custom(&PROXY_ALLOW_FROM),
        default: Default::Is(Str(LOCALHOST)),
        group: Proxy,
        doc: "peers allowed to send that header, as `forwarded_allow_ips`; Unix-socket peers \
              always are",
        gunicorn: &["proxy_allow_ips"],
        ..Setting::NEW
    },
    Setting {
        key: "log_level",
        value_name: "LEVEL",
        field: Field::Custom(&LOG_LEVEL),
        default: Default::Is(Str("info")),
        group: Logging,
        doc: "`debug`, `info`, `warning`, `error` or `critical`",
        gunicorn: &["loglevel"],
        ..Setting::NEW
    },
    Setting {
        key: "log_format",
        value_name: "FORMAT",
        field: Field::Custom(&LOG_FORMAT),
        default: Default::Is(Str("text")),
        group: Logging,
        doc: "error log lines as `text` or `json`",
        ..Setting::NEW
    },
    Setting {
        key: "error_logfile",
        aliases: &["log-file"],
        value_name: "FILE",
        field: Field::Custom(&ERROR_LOGFILE),
        default: Default::Is(Str("-")),
        group: Logging,
        doc: "error log file; `-` is stderr",
        gunicorn: &["errorlog"],
        ..Setting::NEW
    },
    Setting {
        key: "access_logfile",
        value_name: "FILE",
        field: Field::Custom(&ACCESS_LOGFILE),
        default: Default::Derived("— (no access log)"),
        group: Logging,
        doc: "access log file; `-` is stdout",
        gunicorn: &["accesslog"],
        ..Setting::NEW
    },
    Setting {
        key: "access_logformat",
        value_name: "FORMAT",
        field: Field::Text {
            lens: |c| &mut c.access_logformat,
            check: |_| Ok(()),
        },
        default: Default::Is(Str(GUNICORN_ACCESS_LOGFORMAT)),
        group: Logging,
        doc: "access log line format, in gunicorn's `%(x)s` syntax",
        gunicorn: &["access_log_format"],
        ..Setting::NEW
    },
    Setting {
        key: "statsd_host",
        value_name: "STATSD_ADDR",
        field: Field::Custom(&STATSD_HOST),
        default: Default::Derived("— (off)"),
        group: Statsd,
        doc: "the collector: `HOST:PORT` (UDP; `HOST` alone means port 8125), `[IPv6]:PORT`, \
              or `unix:PATH` / `unix://PATH`. A host name is resolved once, when aserve \
              starts (a name that does not resolve stops the start with one line, exit \
              status 2); a collector that moves needs a restart, not a SIGHUP. Nothing \
              listening there is not an error: metrics are dropped",
        gunicorn: &["statsd_host"],
        ..Setting::NEW
    },
    Setting {
        key: "statsd_prefix",
        value_name: "STATSD_PREFIX",
        field: Field::Custom(&STATSD_PREFIX),
        default: Default::Is(Str("")),
        group: Statsd,
        doc: "put before every metric name, with a `.` added if it does not end with one \
              (`app` gives `app.gunicorn.requests`); letters, digits and punctuation other \
              than `:`, `|`, `@`, `#` and `,`",
        gunicorn: &["statsd_prefix"],
        ..Setting::NEW
    },
    Setting {
        key: "dogstatsd_tags",
        value_name: "DOGSTATSD_TAGS",
        field: Field::Custom(&DOGSTATSD_TAGS),
        group: Statsd,
        doc: "Datadog tags added to every metric (`|#env:prod,team:web`): comma-separated \
              (or, in a file, a list) `key:value` or bare `value`, as in gunicorn; \
              `key=value` is sent as `key:value` (Datadog would otherwise make it \
              `key_value`)",
        gunicorn: &["dogstatsd_tags"],
        ..Setting::NEW
    },
];

/// Flags that are commands, not settings: only the command line and
/// `ASERVE_CMD_ARGS` take them (`config` also comes from `ASERVE_CONFIG`).
pub(crate) const COMMAND_LINE_ONLY: &[&str] = &["config", "print_config", "check_config"];

/// The setting `key`, if it is one.
pub(crate) fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// The setting a misspelt key most likely meant, if any is close.
pub(crate) fn closest(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase().replace('-', "_");
    SETTINGS
        .iter()
        .filter_map(|s| Some((crate::setting::close(&key, s.key)?, s.key)))
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

// The settings with their own reading rules.

const APP: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.app = AppSpec::parse(&values::string(v)?)?;
        Ok(())
    },
    print: |c| Some(c.app.to_string().into()),
};

const BIND: Custom = Custom {
    shape: Shape::Many,
    read: |c, v| {
        let binds = values::list(v)?;
        if binds.is_empty() {
            return Err(Problem::Expected("at least one address".into()));
        }
        c.binds = binds
            .iter()
            .map(|b| Bind::parse(b))
            .collect::<Result<_, _>>()?;
        Ok(())
    },
    print: |c| Some(strings(c.binds.iter().map(ToString::to_string))),
};

const BACKLOG: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        let n = values::uint(v, 0, u32::MAX.into())?;
        c.backlog = u32::try_from(n).unwrap_or(u32::MAX);
        Ok(())
    },
    print: |c| Some(i64::from(c.backlog).into()),
};

const UMASK: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.umask = values::umask(v)?;
        Ok(())
    },
    print: |c| Some(format!("0o{:03o}", c.umask).into()),
};

const WORKER_CLASS: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.worker_class = Some(WorkerClass::parse(&values::string(v)?).map_err(Problem::Reason)?);
        Ok(())
    },
    print: |c| Some(c.worker_class?.name().into()),
};

const METRICS_BIND: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.metrics_bind = Some(metrics_bind(v)?);
        Ok(())
    },
    print: |c| Some(c.metrics_bind.as_ref()?.to_string().into()),
};

/// `HOST:PORT` only: probes and scrapers reach a pod over TCP.
fn metrics_bind(value: &Value) -> Result<Bind, Problem> {
    let raw = values::nonempty(value)?;
    let has_port = raw
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && !port.contains(']'));
    match Bind::parse(&raw)? {
        tcp @ Bind::Tcp { .. } if has_port => Ok(tcp),
        Bind::Tcp { .. } => Err(Problem::Reason(format!(
            "{raw:?}: expected HOST:PORT (no default port for metrics)"
        ))),
        _ => Err(Problem::Reason(format!("{raw:?}: expected HOST:PORT"))),
    }
}

const RELOAD_EXTRA_FILE: Custom = Custom {
    shape: Shape::Many,
    read: |c, v| {
        c.reload_extra_file = values::list(v)?.into_iter().map(PathBuf::from).collect();
        Ok(())
    },
    print: |c| {
        Some(strings(
            c.reload_extra_file.iter().map(|p| p.display().to_string()),
        ))
    },
};

const RELOAD_IGNORE: Custom = Custom {
    shape: Shape::Many,
    read: |c, v| {
        let globs = values::list(v)?;
        for glob in &globs {
            globset::Glob::new(glob)
                .map_err(|e| Problem::Reason(format!("{glob:?}: {}", e.kind())))?;
        }
        c.reload_ignore = globs;
        Ok(())
    },
    print: |c| Some(strings(c.reload_ignore.iter().cloned())),
};

const FORWARDED_ALLOW_IPS: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.forwarded_allow_ips = values::addr_list(v)?;
        Ok(())
    },
    print: |c| {
        Some(strings(
            c.forwarded_allow_ips.iter().map(ToString::to_string),
        ))
    },
};

const PROXY_ALLOW_FROM: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.proxy_allow_from = values::addr_list(v)?;
        Ok(())
    },
    print: |c| Some(strings(c.proxy_allow_from.iter().map(ToString::to_string))),
};

/// On or off; also gunicorn's `off`, `auto`, `v1`, `v2` (the last three on).
const PROXY_PROTOCOL: Custom = Custom {
    shape: Shape::Flag,
    read: |c, v| {
        c.proxy_protocol = match v {
            Value::String(_, s) => match s.trim().to_ascii_lowercase().as_str() {
                "auto" | "v1" | "v2" => true,
                "none" => false,
                _ => values::boolean(v)?,
            },
            _ => values::boolean(v)?,
        };
        Ok(())
    },
    print: |c| Some(c.proxy_protocol.into()),
};

const STATSD_HOST: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.statsd_host = Some(statsd_host(v)?);
        Ok(())
    },
    print: |c| Some(c.statsd_host.as_ref()?.to_string().into()),
};

/// gunicorn's forms: `HOST:PORT`, `[V6]:PORT`, `HOST` (port 8125, statsd's
/// own), `unix:PATH` or `unix://PATH`.
fn statsd_host(value: &Value) -> Result<StatsdHost, Problem> {
    let raw = values::nonempty(value)?;
    let has_port = raw
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && !port.contains(']'));
    match Bind::parse(&raw)? {
        Bind::Unix(path) => Ok(StatsdHost::Unix(path)),
        Bind::Tcp { port: 0, .. } if has_port => Err(Problem::Reason(format!(
            "{raw:?}: port 0 cannot receive metrics"
        ))),
        Bind::Tcp { host, port } => Ok(StatsdHost::Udp {
            host,
            port: if has_port { port } else { 8125 },
        }),
        Bind::Fd(_) => Err(Problem::Reason(format!(
            "{raw:?}: expected HOST:PORT or unix:PATH"
        ))),
    }
}

/// A character that would end a statsd line or field early.
fn breaks_statsd_line(c: char) -> bool {
    !c.is_ascii_graphic() || matches!(c, ':' | '|' | '@' | '#' | ',')
}

const STATSD_PREFIX: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        let raw = values::string(v)?;
        if let Some(ch) = raw.chars().find(|&ch| breaks_statsd_line(ch)) {
            return Err(Problem::Reason(format!(
                "{raw:?}: {ch:?} cannot be part of a statsd metric name"
            )));
        }
        c.statsd_prefix = raw;
        Ok(())
    },
    print: |c| Some(c.statsd_prefix.clone().into()),
};

/// A list (or comma-separated string) of `key:value`, `key=value` or
/// `value` tags.
const DOGSTATSD_TAGS: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        let mut tags = Vec::new();
        for tag in values::list(v)? {
            // Datadog would turn `=` into `_`; `key=value` is surely meant
            // as the `key:value` tag.
            let tag = match tag.split_once('=') {
                Some((key, value)) if !tag.contains(':') => format!("{key}:{value}"),
                _ => tag,
            };
            if let Some(ch) = tag.chars().find(|&ch| ch != ':' && breaks_statsd_line(ch)) {
                return Err(Problem::Reason(format!(
                    "tag {tag:?}: {ch:?} cannot be part of a Datadog tag"
                )));
            }
            tags.push(tag);
        }
        c.dogstatsd_tags = tags;
        Ok(())
    },
    print: |c| Some(strings(c.dogstatsd_tags.iter().cloned())),
};

const WORKERS: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.workers = values::workers(v)?;
        Ok(())
    },
    print: |c| {
        Some(match c.workers {
            Workers::Count(n) => i64::try_from(n).unwrap_or(i64::MAX).into(),
            Workers::Auto => "auto".into(),
        })
    },
};

const MIB: u64 = 1024 * 1024;

const MAX_WORKER_MEMORY: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        let mib = values::uint(v, 0, u64::MAX)?;
        let bytes = mib
            .checked_mul(MIB)
            .ok_or_else(|| Problem::Reason(format!("{mib} MiB is more than 2^64 bytes")))?;
        c.max_worker_memory = Some(bytes).filter(|&b| b > 0);
        Ok(())
    },
    print: |c| {
        Some(
            i64::try_from(c.max_worker_memory.unwrap_or(0) / MIB)
                .unwrap_or(0)
                .into(),
        )
    },
};

const USER: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.user = Some(values::account(v)?);
        Ok(())
    },
    print: |c| Some(c.user.as_ref()?.to_string().into()),
};

const GROUP: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.group = Some(values::account(v)?);
        Ok(())
    },
    print: |c| Some(c.group.as_ref()?.to_string().into()),
};

/// `SCRIPT_NAME` is '' or starts with '/' and never ends with one.
pub(crate) fn root_path(value: &Value) -> Result<String, Problem> {
    let raw = values::string(value)?;
    let trimmed = raw.trim_end_matches('/');
    if !trimmed.is_empty() && !trimmed.starts_with('/') {
        return Err(Problem::Reason(format!("{raw:?} must start with '/'")));
    }
    Ok(trimmed.to_string())
}

const ROOT_PATH: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.root_path = root_path(v)?;
        Ok(())
    },
    print: |c| Some(c.root_path.clone().into()),
};

const ENV: Custom = Custom {
    shape: Shape::Many,
    read: |c, v| {
        c.env = values::list(v)?
            .iter()
            .map(|pair| values::env_pair(pair).map_err(Problem::Reason))
            .collect::<Result<_, _>>()?;
        Ok(())
    },
    print: |c| Some(strings(c.env.iter().map(|(k, v)| format!("{k}={v}")))),
};

const LOG_LEVEL: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.log_level = values::choice::<LogLevel>(v)?;
        Ok(())
    },
    print: |c| Some(enum_name(c.log_level).into()),
};

const LOG_FORMAT: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.log_format = values::choice::<LogFormat>(v)?;
        Ok(())
    },
    print: |c| Some(enum_name(c.log_format).into()),
};

/// `-` is the process's own stream (`stdio`); anything else a file.
fn log_target(value: &Value, stdio: LogTarget) -> Result<LogTarget, Problem> {
    match values::nonempty(value)?.as_str() {
        "-" => Ok(stdio),
        path => Ok(LogTarget::File(PathBuf::from(path))),
    }
}

fn log_target_value(target: &LogTarget) -> toml::Value {
    match target {
        LogTarget::Stdout | LogTarget::Stderr => "-".into(),
        LogTarget::File(path) => path_value(path),
    }
}

const ERROR_LOGFILE: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.error_logfile = log_target(v, LogTarget::Stderr)?;
        Ok(())
    },
    print: |c| Some(log_target_value(&c.error_logfile)),
};

const ACCESS_LOGFILE: Custom = Custom {
    shape: Shape::One,
    read: |c, v| {
        c.access_logfile = Some(log_target(v, LogTarget::Stdout)?);
        Ok(())
    },
    print: |c| Some(log_target_value(c.access_logfile.as_ref()?)),
};

fn strings(items: impl Iterator<Item = String>) -> toml::Value {
    toml::Value::Array(items.map(toml::Value::from).collect())
}

fn enum_name(value: impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspellings_suggest_the_setting() {
        assert_eq!(closest("wokers"), Some("workers"));
        assert_eq!(closest("worker-connections"), Some("worker_connections"));
        assert_eq!(closest("KEEPALIVE"), Some("keep_alive"));
        assert_eq!(closest("completely_unrelated"), None);
    }

    #[test]
    fn keys_flags_and_shorts_are_unique() {
        for (i, s) in SETTINGS.iter().enumerate() {
            let earlier = &SETTINGS[..i];
            assert!(!earlier.iter().any(|e| e.key == s.key), "{}", s.key);
            assert!(
                s.short.is_none() || !earlier.iter().any(|e| e.short == s.short),
                "{}",
                s.key
            );
            assert!(s.key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(!s.doc.is_empty(), "{} has no doc line", s.key);
        }
        assert_eq!(
            crate::setting::env_var("limit_request_line"),
            "ASERVE_LIMIT_REQUEST_LINE"
        );
        assert_eq!(
            crate::setting::flag("limit_request_line"),
            "--limit-request-line"
        );
    }
}
