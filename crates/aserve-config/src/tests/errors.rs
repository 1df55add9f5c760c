//! Each bad configuration gives one line naming the setting and its source.

use super::*;

#[test]
fn bad_cmd_args_are_named() {
    let e = setup().env("ASERVE_CMD_ARGS", "--wokers 5").err(&["m"]);
    assert_eq!(
        e,
        "unknown flag '--wokers' in ASERVE_CMD_ARGS (did you mean --workers?)"
    );
    let e = setup()
        .env("ASERVE_CMD_ARGS", "--name 'unclosed")
        .err(&["m"]);
    assert_eq!(
        e,
        "unbalanced quotes or a trailing backslash (in ASERVE_CMD_ARGS)"
    );
    let e = setup().env("ASERVE_CMD_ARGS", "--threads 0").err(&["m"]);
    assert_eq!(
        e,
        "invalid value for 'threads' in ASERVE_CMD_ARGS (--threads): \
         expected an integer >= 1, found \"0\""
    );
}

#[test]
fn missing_app_is_one_clear_error() {
    let e = setup().err(&["-w", "2"]);
    assert!(e.starts_with("no app given: pass APP"), "{e}");
    let e = setup().err(&["bad app"]);
    assert!(
        e.starts_with("invalid value for 'app' on the command line (APP): \"bad app\""),
        "{e}"
    );
}

#[test]
fn unknown_key_in_file_names_file_and_suggests() {
    let s = setup().toml("app = 'm'\nwokers = 2\n");
    let path = s.path("aserve.toml");
    assert_eq!(
        s.err(&[]),
        format!(
            "unknown setting 'wokers' in {} (did you mean 'workers'?)",
            path.display()
        )
    );
    let e = setup().toml("[limits]\nrequest_line = 1\n").err(&["m"]);
    assert!(e.starts_with("unknown setting 'limits' in "), "{e}");
    let e = setup().toml("print_config = true\n").err(&["m"]);
    assert!(e.contains("'print_config' cannot be set in "), "{e}");
    assert!(
        e.ends_with("it is a command-line flag (--print-config)"),
        "{e}"
    );
}

#[test]
fn unknown_env_key_is_an_error_but_test_vars_are_not() {
    let s = setup().env("ASERVE_WOKERS", "2");
    assert_eq!(
        s.err(&["m"]),
        "unknown setting 'wokers' in the ASERVE_WOKERS environment variable \
         (did you mean ASERVE_WORKERS?)"
    );
    let s = setup()
        .env("ASERVE_TEST_ECHO", "1")
        .env("ASERVE_TEST_WHATEVER", "x");
    assert!(s.load(&["m"]).is_ok());
    let e = setup().env("ASERVE_workers", "2").err(&["m"]);
    assert!(
        e.starts_with("unknown setting 'workers' in the ASERVE_workers"),
        "{e}"
    );
}

#[test]
fn wrong_type_names_key_source_and_value() {
    let s = setup().toml("app = 'm'\nworkers = 'x'\n");
    assert_eq!(
        s.err(&[]),
        format!(
            "invalid value for 'workers' in {}: expected an integer >= 1 or \"auto\", found \"x\"",
            s.path("aserve.toml").display()
        )
    );
    let e = setup().toml("preload = 'maybe'\n").err(&["m"]);
    assert!(
        e.ends_with("expected true or false, found \"maybe\""),
        "{e}"
    );
    let e = setup().toml("log_format = 'xml'\n").err(&["m"]);
    assert!(
        e.ends_with("expected one of text, json, found \"xml\""),
        "{e}"
    );
    let e = setup().toml("bind = 8000\n").err(&["m"]);
    assert!(e.ends_with("expected a list of strings, found 8000"), "{e}");
}

#[test]
fn out_of_range_names_the_env_var() {
    let s = setup().env("ASERVE_WORKERS", "0");
    assert_eq!(
        s.err(&["m"]),
        "invalid value for 'workers' in the ASERVE_WORKERS environment variable: \
         expected an integer >= 1 or \"auto\", found \"0\""
    );
    let e = setup().env("ASERVE_UMASK", "0o1777").err(&["m"]);
    assert!(e.contains("'umask' in the ASERVE_UMASK"), "{e}");
    let e = setup().err(&["m", "--header-timeout", "0"]);
    assert_eq!(
        e,
        "invalid value for 'header_timeout' on the command line (--header-timeout): \
         expected an integer >= 1, found \"0\""
    );
    let e = setup().env("WEB_CONCURRENCY", "none").err(&["m"]);
    assert!(
        e.starts_with("invalid value for 'workers' in the WEB_CONCURRENCY"),
        "{e}"
    );
    let e = setup().toml("bind = ['127.0.0.1:http']\n").err(&["m"]);
    assert!(
        e.contains("\"127.0.0.1:http\": port must be a number"),
        "{e}"
    );
    for bad in [
        "unix:/tmp/m.sock",
        "127.0.0.1",
        "[::1]",
        "127.0.0.1:99999",
        "",
    ] {
        let e = setup().err(&["m", "--metrics-bind", bad]);
        assert!(
            e.starts_with("invalid value for 'metrics_bind' on the command line"),
            "{bad}: {e}"
        );
    }
    let e = setup().toml("env = ['NOEQUALS']\n").err(&["m"]);
    assert!(e.ends_with("expected KEY=VALUE, found \"NOEQUALS\""), "{e}");
}

#[test]
fn reload_with_preload_is_refused_naming_both_sources() {
    let s = setup().toml("preload = true\n");
    assert_eq!(
        s.err(&["m", "--reload"]),
        format!(
            "'reload' on the command line (--reload) cannot be combined with 'preload' in {}: \
             --reload restarts workers so that they import the changed code, and a preloaded \
             app is imported once, in the master; drop one of them",
            s.path("aserve.toml").display()
        )
    );
    let e = setup().env("ASERVE_RELOAD", "1").err(&["m", "--preload"]);
    assert!(
        e.starts_with(
            "'reload' in the ASERVE_RELOAD environment variable cannot be combined with \
             'preload' on the command line (--preload)"
        ),
        "{e}"
    );
    assert!(setup().ok(&["m", "--reload"]).reload);
}

#[test]
fn reload_ignore_must_be_a_glob() {
    let e = setup().err(&["m", "--reload", "--reload-ignore", "a[b"]);
    assert!(
        e.starts_with(
            "invalid value for 'reload_ignore' on the command line (--reload-ignore): \"a[b\": "
        ),
        "{e}"
    );
    let c = setup()
        .toml("reload_ignore = ['*_test.py', 'build/**']\nreload_extra_file = ['t.html']\n")
        .ok(&["m"]);
    assert_eq!(c.reload_ignore, ["*_test.py", "build/**"]);
    assert_eq!(c.reload_extra_file, [PathBuf::from("t.html")]);
}

#[test]
fn invalid_toml_is_one_line_with_position() {
    let s = setup().toml("app = 'm'\nworkers = = 2\n");
    let e = s.err(&[]);
    assert!(
        e.contains("aserve.toml: invalid TOML: line 2, column"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn bad_flag_values_name_the_flag() {
    let e = setup().err(&["m", "--workers", "x"]);
    assert_eq!(
        e,
        "invalid value for 'workers' on the command line (--workers): \
         expected an integer >= 1 or \"auto\", found \"x\""
    );
    let e = setup().err(&["m", "--workers", "-1"]);
    assert!(
        e.ends_with("expected an integer >= 1 or \"auto\", found \"-1\""),
        "{e}"
    );
    let e = setup().err(&["m", "--env", "NOEQUALS"]);
    assert!(e.ends_with("expected KEY=VALUE, found \"NOEQUALS\""), "{e}");
    let e = setup().err(&["m", "--workers"]);
    assert_eq!(e, "--workers needs a value (on the command line)");
}

#[test]
fn help_and_version_are_not_errors() {
    for args in [&["--help"][..], &["-h", "--wokers"]] {
        match setup().load(args) {
            Err(ConfigError::ShowHelp(help)) => assert!(help.contains("--workers"), "{help}"),
            other => panic!("{args:?}: {other:?}"),
        }
    }
    for flag in ["-v", "-V", "--version"] {
        assert!(matches!(
            setup().load(&[flag]),
            Err(ConfigError::ShowVersion)
        ));
    }
}

#[test]
fn every_problem_of_every_source_in_one_run() {
    let s = setup()
        .toml("app = 'm'\nwokers = 2\nkeepalive = 3\nthreads = 0\ncertfile = 'x'\n")
        .env("ASERVE_BACKLOG", "lots")
        .env("ASERVE_TIMOUT", "3")
        .env("ASERVE_CMD_ARGS", "--worker-conections 5");
    let e = s.err(&["--workers", "-1", "--certfile", "c.pem", "--daemon"]);
    let lines: Vec<&str> = e.lines().collect();
    let expect = [
        "unknown setting 'wokers' in ",
        "(did you mean 'workers'?)",
        "gunicorn's 'keepalive' is 'keep_alive' here",
        "invalid value for 'threads' in ",
        "unknown setting 'certfile' in ",
        "unknown setting 'timout' in the ASERVE_TIMOUT environment variable \
         (did you mean ASERVE_TIMEOUT?)",
        "invalid value for 'backlog' in the ASERVE_BACKLOG",
        "unknown flag '--worker-conections' in ASERVE_CMD_ARGS \
         (did you mean --worker-connections?)",
        "invalid value for 'workers' on the command line (--workers)",
        "gunicorn's 'certfile' (on the command line (--certfile)) is not supported: \
         aserve does not terminate TLS",
        "gunicorn's 'daemon' (on the command line (--daemon)) is not supported",
    ];
    for needle in expect {
        assert!(e.contains(needle), "no {needle:?} in:\n{e}");
    }
    assert_eq!(lines.len(), 10, "{e}");
}

#[test]
fn no_hint_names_a_flag_of_another_meaning() {
    for (flag, not) in [
        ("--certfile", "--graceful-timeout"),
        ("--reload", "--preload"),
        ("--keyfile", "--"),
    ] {
        let e = setup().err(&["m", flag, "x"]);
        assert!(!e.contains("did you mean"), "{flag}: {e}");
        assert!(!e.contains(not) || not == "--", "{flag}: {e}");
    }
    let e = setup().err(&["m", "--worker-clas", "sync"]);
    assert!(e.contains("did you mean --worker-class?"), "{e}");
}

#[test]
fn bad_address_lists_name_setting_source_and_entry() {
    let e = setup()
        .env("FORWARDED_ALLOW_IPS", "127.0.0.1,10.0.0.0/33")
        .err(&["m"]);
    assert!(
        e.starts_with(
            "invalid value for 'forwarded_allow_ips' in the FORWARDED_ALLOW_IPS \
             environment variable: \"10.0.0.0/33\" is not an IP address or CIDR range"
        ),
        "{e}"
    );
    let e = setup().err(&["m", "--proxy-allow-from", "::1, nginx"]);
    assert!(
        e.starts_with(
            "invalid value for 'proxy_allow_from' on the command line \
             (--proxy-allow-from): \"nginx\" is not"
        ),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}
