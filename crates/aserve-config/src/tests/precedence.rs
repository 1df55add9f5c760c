//! Which source wins: defaults < file < environment < `ASERVE_CMD_ARGS` <
//! command line, and where the config file and platform defaults come from.

use super::*;

#[test]
fn precedence_is_file_then_env_then_command_line() {
    let s = setup()
        .toml("app = 'm:app'\nworkers = 2\nbacklog = 10\nkeep_alive = 7\nlog_level = 'debug'\n")
        .env("ASERVE_WORKERS", "3")
        .env("ASERVE_BACKLOG", "20");
    let c = s.ok(&["-w", "4"]);
    assert_eq!(
        c.workers,
        Workers::Count(4),
        "command line beats env and file"
    );
    assert_eq!(c.backlog, 20, "env beats file");
    assert_eq!(c.keep_alive, Duration::from_secs(7), "file beats defaults");
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(
        c.graceful_timeout,
        Duration::from_secs(30),
        "untouched default"
    );
    assert_eq!(c.config_file, Some(s.path("aserve.toml")));
}

#[test]
fn lists_are_replaced_not_appended() {
    let s = setup().toml("app = 'm'\nbind = ['127.0.0.1:1', '127.0.0.1:2']\n");
    assert_eq!(s.ok(&[]).binds, [tcp("127.0.0.1", 1), tcp("127.0.0.1", 2)]);
    let s = s.env("ASERVE_BIND", "127.0.0.1:9000, [::1]:9001");
    assert_eq!(s.ok(&[]).binds, [tcp("127.0.0.1", 9000), tcp("::1", 9001)]);
    assert_eq!(s.ok(&["-b", "0.0.0.0:80"]).binds, [tcp("0.0.0.0", 80)]);
}

#[test]
fn cmd_args_rank_between_env_and_command_line() {
    let s = setup()
        .env("ASERVE_WORKERS", "3")
        .env("ASERVE_CMD_ARGS", "--workers 5 -n 'my app' --preload m:app");
    let c = s.ok(&[]);
    assert_eq!(
        (c.workers, c.name.as_deref(), c.preload),
        (Workers::Count(5), Some("my app"), true)
    );
    assert_eq!(c.app.module, "m");
    let c = s.ok(&["-w", "6", "other:app"]);
    assert_eq!(
        (c.workers, c.app.module.as_str()),
        (Workers::Count(6), "other")
    );
}

#[test]
fn app_comes_from_file_or_env_and_the_positional_wins() {
    let s = setup().toml("app = 'fromfile:app'\n");
    assert_eq!(s.ok(&[]).app.module, "fromfile");
    let s = s.env("ASERVE_APP", "fromenv:create()");
    assert_eq!(s.ok(&[]).app.to_string(), "fromenv:create()");
    assert_eq!(s.ok(&["cli"]).app.to_string(), "cli:application");
}

#[test]
fn config_file_selection() {
    let s = setup().file("other.toml", "app = 'other'\n");
    assert_eq!(s.ok(&["-c", "other.toml"]).app.module, "other");
    let s = s.env("ASERVE_CONFIG", "other.toml");
    assert_eq!(s.ok(&[]).config_file, Some(s.path("other.toml")));
    let e = setup().err(&["m", "-c", "missing.toml"]);
    let missing = setup();
    assert!(e.starts_with("config file /"), "{e}");
    assert!(e.ends_with("missing.toml: no such file"), "{e}");
    let e = missing
        .env("ASERVE_CONFIG", "/nonexistent/aserve.toml")
        .err(&["m"]);
    assert_eq!(e, "config file /nonexistent/aserve.toml: no such file");
}

#[test]
fn relative_config_path_is_resolved_against_cwd() {
    let s = setup().file("sub.toml", "app = 'm'\n");
    let c = s.ok(&["--config", "sub.toml"]);
    assert_eq!(c.config_file.as_deref(), Some(s.path("sub.toml").as_path()));
    assert!(Path::new(&s.path("sub.toml")).is_absolute());
}

#[test]
fn platform_variables_are_fallbacks() {
    let s = setup()
        .env("PORT", "5000")
        .env("WEB_CONCURRENCY", "4")
        .env("VIRTUAL_ENV", "/venv")
        .env("SCRIPT_NAME", "/mount/");
    let c = s.ok(&["m"]);
    assert_eq!(c.binds, [tcp("0.0.0.0", 5000)]);
    assert_eq!(c.workers, Workers::Count(4));
    // An activated venv is not a setting: the interpreter is the package's.
    assert_eq!(c.virtualenv, None);
    assert_eq!(c.root_path, "/mount");
    let s = s
        .env("ASERVE_ROOT_PATH", "/api/")
        .env("ASERVE_WORKERS", "2");
    let c = s.ok(&["m", "-b", "127.0.0.1:1", "--virtualenv", "/other"]);
    assert_eq!(
        (c.root_path.as_str(), c.workers),
        ("/api", Workers::Count(2))
    );
    assert_eq!(c.binds, [tcp("127.0.0.1", 1)]);
    assert_eq!(c.virtualenv, Some(PathBuf::from("/other")));
    let e = setup().env("PORT", "x").err(&["m"]);
    assert!(e.contains("$PORT"), "{e}");
}

#[test]
fn metrics_bind_is_off_unless_set() {
    let s = setup().toml("app = 'm'\n");
    assert_eq!(s.ok(&[]).metrics_bind, None);
    let s = s.env("ASERVE_METRICS_BIND", "0.0.0.0:9100");
    assert_eq!(s.ok(&[]).metrics_bind, Some(tcp("0.0.0.0", 9100)));
    let c = s.ok(&["--metrics-bind", "[::1]:9101"]);
    assert_eq!(c.metrics_bind, Some(tcp("::1", 9101)));
}

#[test]
fn forwarded_allow_ips_falls_back_to_gunicorns_variable() {
    let nets = |c: &Config| {
        c.forwarded_allow_ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    let c = setup().ok(&["m"]);
    assert_eq!(nets(&c), ["127.0.0.1/32", "::1/128"]);
    assert_eq!(
        c.proxy_allow_from
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["127.0.0.1/32", "::1/128"]
    );
    let s = setup().env("FORWARDED_ALLOW_IPS", "10.0.0.0/8");
    assert_eq!(nets(&s.ok(&["m"])), ["10.0.0.0/8"]);
    let s = s.env("ASERVE_FORWARDED_ALLOW_IPS", "*");
    assert_eq!(nets(&s.ok(&["m"])), ["0.0.0.0/0", "::/0"]);
    let c = s.ok(&["m", "--forwarded-allow-ips", "192.0.2.1"]);
    assert_eq!(nets(&c), ["192.0.2.1/32"]);
    let c = setup().toml("forwarded_allow_ips = []").ok(&["m"]);
    assert!(c.forwarded_allow_ips.is_empty());
}

#[test]
fn workers_auto_comes_from_every_source() {
    let auto = Workers::Auto;
    assert_eq!(setup().ok(&["m", "-w", "auto"]).workers, auto);
    assert_eq!(setup().toml("workers = 'auto'\n").ok(&["m"]).workers, auto);
    assert_eq!(
        setup().env("ASERVE_WORKERS", "Auto").ok(&["m"]).workers,
        auto
    );
    assert_eq!(
        setup().env("WEB_CONCURRENCY", "auto").ok(&["m"]).workers,
        auto
    );
    let s = setup().env("WEB_CONCURRENCY", "auto");
    assert_eq!(s.ok(&["m", "-w", "3"]).workers, Workers::Count(3));
    let e = setup().err(&["m", "-w", "0"]);
    assert_eq!(
        e,
        "invalid value for 'workers' on the command line (--workers): \
         expected an integer >= 1 or \"auto\", found \"0\""
    );
}

#[test]
fn shutdown_delay_defaults_to_zero() {
    assert_eq!(setup().ok(&["m"]).shutdown_delay, Duration::ZERO);
    let c = setup().env("ASERVE_SHUTDOWN_DELAY", "5").ok(&["m"]);
    assert_eq!(c.shutdown_delay, Duration::from_secs(5));
    assert_eq!(
        setup().ok(&["m", "--shutdown-delay", "2"]).shutdown_delay,
        Duration::from_secs(2)
    );
}
