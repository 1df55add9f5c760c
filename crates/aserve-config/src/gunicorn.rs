//! gunicorn's settings that are not aserve settings, and what aserve does
//! with each: nothing, because its design makes the setting unnecessary
//! (accepted, with an info line); a server hook, called at the matching
//! moment (Python config files only); or a refusal with the reason, where
//! aserve cannot honour it.
//!
//! gunicorn's settings that *are* aserve settings are not listed here: each
//! setting names them in its `gunicorn` field. Together the two cover
//! `gunicorn.config.KNOWN_SETTINGS` of the pinned gunicorn, which a test
//! checks (`tests/migrating.rs`).

use crate::settings;

/// What aserve does with a gunicorn setting it has no setting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted and ignored, for this reason.
    Unneeded(&'static str),
    /// Refused, for this reason, unless the value is one of `accepts`
    /// (gunicorn's default, or an "off" value).
    Refused(&'static str),
    /// A server hook, run in the process named (Python config files only).
    Hook(&'static str),
}

/// One gunicorn setting aserve has no setting for.
#[derive(Debug)]
pub struct Foreign {
    /// gunicorn's name (its config file key).
    pub name: &'static str,
    /// gunicorn's flags for it (`--certfile`, `-D`); empty for file-only.
    pub flags: &'static [&'static str],
    /// Whether the flag takes a value (`--certfile FILE`) or is on/off.
    pub takes_value: bool,
    /// Values that need nothing (gunicorn's default when it is not "off").
    /// "Off" values (`False`, `None`, `0`, `''`, empty lists) always pass.
    pub accepts: &'static [&'static str],
    pub verdict: Verdict,
}

const NEW: Foreign = Foreign {
    name: "",
    flags: &[],
    takes_value: true,
    accepts: &[],
    verdict: Verdict::Unneeded(""),
};

use Verdict::{Hook, Refused, Unneeded};

const TLS: Verdict = Refused(
    "aserve does not terminate TLS yet: put a TLS-terminating proxy (nginx, a load \
     balancer, an ingress) in front of it",
);
const SYSLOG: Verdict = Refused(
    "aserve does not write to syslog: leave error_logfile at '-' and let journald or your \
     container runtime collect stderr",
);
const LOGCONFIG: Verdict = Refused(
    "aserve's error log is not Python logging: use log_level, log_format and \
     error_logfile instead",
);
const SECURE_SCHEME: Verdict = Refused(
    "aserve believes gunicorn's default secure-scheme headers (X-Forwarded-Proto: https, \
     X-Forwarded-Ssl: on, X-Forwarded-Protocol: ssl) and RFC 7239 Forwarded, from \
     forwarded_allow_ips; other headers cannot be configured",
);
const FORWARDER_HEADERS: Verdict = Refused(
    "aserve never takes SCRIPT_NAME or PATH_INFO from a request header; a proxy's \
     X-Forwarded-Prefix sets SCRIPT_NAME with forwarded_host_headers",
);
const STRICT: Verdict =
    Refused("aserve's HTTP parser is strict (RFC 9112) and cannot be relaxed; fix the client");
const HTTP2: Verdict = Refused("aserve serves HTTP/1.1 only, for now");
const HTTP2_TUNING: Verdict =
    Unneeded("aserve serves HTTP/1.1 only, so HTTP/2 tuning has nothing to tune");
const ASGI: Verdict = Unneeded("an ASGI setting; aserve serves WSGI apps only");
const DIRTY: Verdict = Refused("gunicorn's dirty arbiters have no equivalent in aserve");
const DIRTY_TUNING: Verdict = Unneeded("only used by gunicorn's dirty arbiters (dirty_workers)");
const CONTROL: Verdict =
    Unneeded("aserve has no control socket: it is controlled by signals (docs/signals.md)");
const NOT_CALLED: Verdict = Refused(
    "aserve does not call this server hook; it calls on_starting, when_ready, post_fork, \
     post_worker_init, worker_exit and on_exit",
);

/// Every gunicorn setting aserve has no setting of its own for.
pub static FOREIGN: &[Foreign] = &[
    Foreign {
        name: "reload_engine",
        flags: &["--reload-engine"],
        accepts: &["auto", "inotify"],
        verdict: Unneeded(
            "--reload watches files with inotify (the notify crate); there is no engine to \
             choose",
        ),
        ..NEW
    },
    Foreign {
        name: "spew",
        flags: &["--spew"],
        takes_value: false,
        verdict: Refused("aserve cannot trace every executed line; use a Python debugger"),
        ..NEW
    },
    Foreign {
        name: "sendfile",
        flags: &["--no-sendfile"],
        takes_value: false,
        verdict: Unneeded(
            "aserve streams wsgi.file_wrapper files from its own event loop, never blocking \
             a Python thread",
        ),
        ..NEW
    },
    Foreign {
        name: "daemon",
        flags: &["-D", "--daemon"],
        takes_value: false,
        verdict: Refused(
            "aserve does not daemonize: run it under systemd, supervisord or a container \
             runtime",
        ),
        ..NEW
    },
    Foreign {
        name: "worker_tmp_dir",
        flags: &["--worker-tmp-dir"],
        verdict: Unneeded("workers send heartbeats through a pipe, not a temporary file"),
        ..NEW
    },
    Foreign {
        name: "initgroups",
        flags: &["--initgroups"],
        takes_value: false,
        verdict: Refused(
            "aserve clears supplementary groups when it switches user; it cannot load the \
             user's group list",
        ),
        ..NEW
    },
    Foreign {
        name: "tmp_upload_dir",
        verdict: Unneeded("gunicorn does not use it either; aserve streams request bodies"),
        ..NEW
    },
    Foreign {
        name: "secure_scheme_headers",
        verdict: SECURE_SCHEME,
        ..NEW
    },
    Foreign {
        name: "disable_redirect_access_to_syslog",
        flags: &["--disable-redirect-access-to-syslog"],
        takes_value: false,
        verdict: Unneeded("aserve never sends the access log to syslog"),
        ..NEW
    },
    Foreign {
        name: "capture_output",
        flags: &["--capture-output"],
        takes_value: false,
        verdict: Refused(
            "aserve does not redirect the app's stdout and stderr into the error log; leave \
             error_logfile at '-' to see both in one stream",
        ),
        ..NEW
    },
    Foreign {
        name: "logger_class",
        flags: &["--logger-class"],
        accepts: &["gunicorn.glogging.Logger"],
        verdict: LOGCONFIG,
        ..NEW
    },
    Foreign {
        name: "logconfig",
        flags: &["--log-config"],
        verdict: LOGCONFIG,
        ..NEW
    },
    Foreign {
        name: "logconfig_dict",
        verdict: LOGCONFIG,
        ..NEW
    },
    Foreign {
        name: "logconfig_json",
        flags: &["--log-config-json"],
        verdict: LOGCONFIG,
        ..NEW
    },
    Foreign {
        name: "syslog_addr",
        flags: &["--log-syslog-to"],
        accepts: &["udp://localhost:514"],
        verdict: SYSLOG,
        ..NEW
    },
    Foreign {
        name: "syslog",
        flags: &["--log-syslog"],
        takes_value: false,
        verdict: SYSLOG,
        ..NEW
    },
    Foreign {
        name: "syslog_prefix",
        flags: &["--log-syslog-prefix"],
        verdict: SYSLOG,
        ..NEW
    },
    Foreign {
        name: "syslog_facility",
        flags: &["--log-syslog-facility"],
        accepts: &["user"],
        verdict: SYSLOG,
        ..NEW
    },
    Foreign {
        name: "enable_stdio_inheritance",
        flags: &["-R", "--enable-stdio-inheritance"],
        takes_value: false,
        verdict: Unneeded("workers always inherit the master's stdout and stderr"),
        ..NEW
    },
    Foreign {
        name: "enable_backlog_metric",
        flags: &["--enable-backlog-metric"],
        takes_value: false,
        verdict: Refused(
            "aserve does not send gunicorn.backlog; the queue of requests waiting for a \
             Python thread is aserve_app_queue_length at --metrics-bind",
        ),
        ..NEW
    },
    Foreign {
        name: "default_proc_name",
        verdict: Unneeded("without `name`, processes are named after aserve"),
        ..NEW
    },
    Foreign {
        name: "paste",
        flags: &["--paste", "--paster"],
        verdict: Refused(
            "aserve does not load PasteDeploy apps; name the app as module:factory() instead",
        ),
        ..NEW
    },
    Foreign {
        name: "raw_paste_global_conf",
        flags: &["--paste-global"],
        verdict: Refused("aserve does not load PasteDeploy apps"),
        ..NEW
    },
    Foreign {
        name: "protocol",
        flags: &["--protocol"],
        accepts: &["http"],
        verdict: Refused("aserve speaks HTTP only, not the uwsgi protocol"),
        ..NEW
    },
    Foreign {
        name: "uwsgi_allow_ips",
        flags: &["--uwsgi-allow-from"],
        verdict: Unneeded("aserve does not speak the uwsgi protocol"),
        ..NEW
    },
    Foreign {
        name: "keyfile",
        flags: &["--keyfile"],
        verdict: TLS,
        ..NEW
    },
    Foreign {
        name: "certfile",
        flags: &["--certfile"],
        verdict: TLS,
        ..NEW
    },
    Foreign {
        name: "ssl_version",
        flags: &["--ssl-version"],
        verdict: Unneeded("aserve does not terminate TLS, so there is no TLS version to pick"),
        ..NEW
    },
    Foreign {
        name: "cert_reqs",
        flags: &["--cert-reqs"],
        verdict: TLS,
        ..NEW
    },
    Foreign {
        name: "ca_certs",
        flags: &["--ca-certs"],
        verdict: TLS,
        ..NEW
    },
    Foreign {
        name: "suppress_ragged_eofs",
        flags: &["--suppress-ragged-eofs"],
        takes_value: false,
        verdict: Unneeded("aserve does not terminate TLS"),
        ..NEW
    },
    Foreign {
        name: "do_handshake_on_connect",
        flags: &["--do-handshake-on-connect"],
        takes_value: false,
        verdict: Unneeded("aserve does not terminate TLS"),
        ..NEW
    },
    Foreign {
        name: "ciphers",
        flags: &["--ciphers"],
        verdict: TLS,
        ..NEW
    },
    Foreign {
        name: "http_protocols",
        flags: &["--http-protocols"],
        accepts: &["h1"],
        verdict: HTTP2,
        ..NEW
    },
    Foreign {
        name: "http2_cleartext",
        flags: &["--http2-cleartext"],
        accepts: &["off"],
        verdict: HTTP2,
        ..NEW
    },
    Foreign {
        name: "http2_max_concurrent_streams",
        flags: &["--http2-max-concurrent-streams"],
        verdict: HTTP2_TUNING,
        ..NEW
    },
    Foreign {
        name: "http2_initial_window_size",
        flags: &["--http2-initial-window-size"],
        verdict: HTTP2_TUNING,
        ..NEW
    },
    Foreign {
        name: "http2_max_frame_size",
        flags: &["--http2-max-frame-size"],
        verdict: HTTP2_TUNING,
        ..NEW
    },
    Foreign {
        name: "http2_max_header_list_size",
        flags: &["--http2-max-header-list-size"],
        verdict: HTTP2_TUNING,
        ..NEW
    },
    Foreign {
        name: "permit_obsolete_folding",
        flags: &["--permit-obsolete-folding"],
        takes_value: false,
        verdict: STRICT,
        ..NEW
    },
    Foreign {
        name: "strip_header_spaces",
        flags: &["--strip-header-spaces"],
        takes_value: false,
        verdict: STRICT,
        ..NEW
    },
    Foreign {
        name: "permit_unconventional_http_method",
        flags: &["--permit-unconventional-http-method"],
        takes_value: false,
        verdict: STRICT,
        ..NEW
    },
    Foreign {
        name: "permit_unconventional_http_version",
        flags: &["--permit-unconventional-http-version"],
        takes_value: false,
        verdict: STRICT,
        ..NEW
    },
    Foreign {
        name: "casefold_http_method",
        flags: &["--casefold-http-method"],
        takes_value: false,
        verdict: STRICT,
        ..NEW
    },
    Foreign {
        name: "forwarder_headers",
        flags: &["--forwarder-headers"],
        accepts: &["SCRIPT_NAME,PATH_INFO"],
        verdict: FORWARDER_HEADERS,
        ..NEW
    },
    Foreign {
        name: "header_map",
        flags: &["--header-map"],
        accepts: &["drop"],
        verdict: Refused(
            "aserve always drops headers with underscores (gunicorn's 'drop'), so they cannot \
             spoof dashed ones",
        ),
        ..NEW
    },
    Foreign {
        name: "asgi_loop",
        flags: &["--asgi-loop"],
        verdict: ASGI,
        ..NEW
    },
    Foreign {
        name: "asgi_lifespan",
        flags: &["--asgi-lifespan"],
        verdict: ASGI,
        ..NEW
    },
    Foreign {
        name: "asgi_disconnect_grace_period",
        flags: &["--asgi-disconnect-grace-period"],
        verdict: ASGI,
        ..NEW
    },
    Foreign {
        name: "websocket_max_message_size",
        flags: &["--websocket-max-message-size"],
        verdict: ASGI,
        ..NEW
    },
    Foreign {
        name: "http_parser",
        flags: &["--http-parser"],
        verdict: Unneeded("aserve always parses HTTP with hyper"),
        ..NEW
    },
    Foreign {
        name: "dirty_apps",
        flags: &["--dirty-app"],
        verdict: DIRTY,
        ..NEW
    },
    Foreign {
        name: "dirty_workers",
        flags: &["--dirty-workers"],
        verdict: DIRTY,
        ..NEW
    },
    Foreign {
        name: "dirty_timeout",
        flags: &["--dirty-timeout"],
        verdict: DIRTY_TUNING,
        ..NEW
    },
    Foreign {
        name: "dirty_threads",
        flags: &["--dirty-threads"],
        verdict: DIRTY_TUNING,
        ..NEW
    },
    Foreign {
        name: "dirty_graceful_timeout",
        flags: &["--dirty-graceful-timeout"],
        verdict: DIRTY_TUNING,
        ..NEW
    },
    Foreign {
        name: "control_socket",
        flags: &["--control-socket"],
        verdict: CONTROL,
        ..NEW
    },
    Foreign {
        name: "control_socket_mode",
        flags: &["--control-socket-mode"],
        verdict: CONTROL,
        ..NEW
    },
    Foreign {
        name: "control_socket_disable",
        flags: &["--no-control-socket"],
        takes_value: false,
        verdict: CONTROL,
        ..NEW
    },
    // Server hooks.
    Foreign {
        name: "on_starting",
        verdict: Hook("the master, before the workers are forked"),
        ..NEW
    },
    Foreign {
        name: "when_ready",
        verdict: Hook("the master, once the first worker serves"),
        ..NEW
    },
    Foreign {
        name: "post_fork",
        verdict: Hook("each worker, right after the fork, before the app is imported"),
        ..NEW
    },
    Foreign {
        name: "post_worker_init",
        verdict: Hook("each worker, after the app is imported"),
        ..NEW
    },
    Foreign {
        name: "worker_exit",
        verdict: Hook("each worker, after it stopped serving, before it exits"),
        ..NEW
    },
    Foreign {
        name: "on_exit",
        verdict: Hook("the master, just before it exits"),
        ..NEW
    },
    Foreign {
        name: "on_reload",
        verdict: NOT_CALLED,
        ..NEW
    },
    Foreign {
        name: "pre_fork",
        verdict: NOT_CALLED,
        ..NEW
    },
    Foreign {
        name: "worker_int",
        verdict: NOT_CALLED,
        ..NEW
    },
    Foreign {
        name: "worker_abort",
        verdict: NOT_CALLED,
        ..NEW
    },
    Foreign {
        name: "pre_exec",
        verdict: NOT_CALLED,
        ..NEW
    },
    Foreign {
        name: "pre_request",
        verdict: NOT_CALLED,
        ..NEW
    },
    Foreign {
        name: "post_request",
        verdict: NOT_CALLED,
        ..NEW
    },
    Foreign {
        name: "child_exit",
        verdict: NOT_CALLED,
        ..NEW
    },
    Foreign {
        name: "nworkers_changed",
        verdict: NOT_CALLED,
        ..NEW
    },
    Foreign {
        name: "ssl_context",
        verdict: NOT_CALLED,
        ..NEW
    },
    Foreign {
        name: "on_dirty_starting",
        verdict: NOT_CALLED,
        ..NEW
    },
    Foreign {
        name: "dirty_post_fork",
        verdict: NOT_CALLED,
        ..NEW
    },
    Foreign {
        name: "dirty_worker_init",
        verdict: NOT_CALLED,
        ..NEW
    },
    Foreign {
        name: "dirty_worker_exit",
        verdict: NOT_CALLED,
        ..NEW
    },
];

/// What aserve does with gunicorn's setting `name`.
#[derive(Debug, Clone, Copy)]
pub enum Mapping {
    /// It is the aserve setting of this key.
    Setting(&'static str),
    /// A command-line flag aserve has too (`config`, `check_config`,
    /// `print_config`).
    Command,
    /// Not an aserve setting; see the verdict.
    Foreign(&'static Foreign),
}

/// How aserve reads gunicorn's setting `name`; `None` for a name gunicorn
/// does not have either.
pub fn mapping(name: &str) -> Option<Mapping> {
    if let Some(s) = settings::SETTINGS
        .iter()
        .find(|s| s.gunicorn.contains(&name))
    {
        return Some(Mapping::Setting(s.key));
    }
    if matches!(name, "config" | "check_config" | "print_config") {
        return Some(Mapping::Command);
    }
    FOREIGN
        .iter()
        .find(|f| f.name == name)
        .map(Mapping::Foreign)
}

/// The foreign gunicorn setting with this flag (`--certfile`, `-D`).
pub(crate) fn by_flag(flag: &str) -> Option<&'static Foreign> {
    FOREIGN.iter().find(|f| f.flags.contains(&flag))
}

/// The hooks aserve calls, by gunicorn's name.
pub fn hooks() -> impl Iterator<Item = &'static str> {
    FOREIGN
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::Hook(_)))
        .map(|f| f.name)
}

impl Foreign {
    /// Whether `value` (as text) needs nothing from aserve.
    pub(crate) fn accepts(&self, value: &str) -> bool {
        let v = value.trim();
        matches!(v, "" | "false" | "False" | "0" | "None" | "[]" | "{}")
            || self.accepts.contains(&v)
    }
}
