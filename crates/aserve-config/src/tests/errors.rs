//! Each bad configuration gives one line naming the setting and its source.

use super::*;

#[test]
fn bad_cmd_args_are_named() {
    let e = setup().env("ASERVE_CMD_ARGS", "--wokers 5").err(&["m"]);
    assert!(
        e.starts_with("in ASERVE_CMD_ARGS: unexpected argument '--wokers'"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    let e = setup()
        .env("ASERVE_CMD_ARGS", "--name 'unclosed")
        .err(&["m"]);
    assert_eq!(
        e,
        "in ASERVE_CMD_ARGS: unbalanced quotes or trailing backslash"
    );
    let e = setup().env("ASERVE_CMD_ARGS", "--threads 0").err(&["m"]);
    assert_eq!(
        e,
        "invalid value for 'threads' in ASERVE_CMD_ARGS (--threads): \
         expected an integer >= 1, found 0"
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
         expected an integer >= 1, found 0"
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
    let e = setup().toml("env = ['NOEQUALS']\n").err(&["m"]);
    assert!(e.ends_with("expected KEY=VALUE, found \"NOEQUALS\""), "{e}");
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
fn bad_flags_stay_clap_errors() {
    for args in [
        &["m", "--backlog", "x"][..],
        &["m", "--env", "NOEQUALS"],
        &["--wokers"],
    ] {
        match setup().load(args) {
            Err(ConfigError::CommandLine(e)) => assert_eq!(e.exit_code(), 2, "{args:?}"),
            other => panic!("{args:?}: {other:?}"),
        }
    }
}
