//! `--print-config`, `--help` and the docs cover every setting.

use super::*;

#[test]
fn print_config_round_trips() {
    let s = setup()
        .env("ASERVE_ENV", "A=1,B=2")
        .env("PORT", "5000")
        .env("ASERVE_UMASK", "022");
    let original = s.ok(&[
        r#"pkg.mod:create("x", n=2)"#,
        "-b",
        "[::1]:8080",
        "-b",
        "127.0.0.1:0",
        "--threads=3",
        "--metrics-bind=[::1]:9100",
        "--user=1000",
        "--group=staff",
        "--name=name with spaces",
        "--pid=/tmp/p.pid",
        "--chdir=/srv",
        "--pythonpath=a,b",
        "--max-worker-memory=64",
        "--access-logfile=/tmp/access.log",
        "--log-level=warning",
        "--body-timeout=0",
        "--reload",
        "--reload-extra-file=templates",
        "--reload-extra-file=conf/app.yaml",
        "--reload-ignore=*_test.py",
        "--forwarded-allow-ips=*",
        "--forwarded-host-headers",
        "--proxy-protocol",
        "--proxy-allow-from=10.0.0.0/8,fd00::/8",
        "--statsd-host=[::1]:9125",
        "--statsd-prefix=svc.app",
        "--dogstatsd-tags=env=prod,team:web",
        "--workers=auto",
        "--shutdown-delay=3",
        "--print-config",
    ]);
    assert!(original.print_config);
    let printed = original.to_toml();
    toml::from_str::<toml::Table>(&printed).expect("valid TOML");
    let reloaded = setup().toml(&printed).ok(&[]);
    let expected = Config {
        config_file: reloaded.config_file.clone(),
        print_config: false,
        ..original
    };
    assert_eq!(reloaded, expected, "printed:\n{printed}");
}

#[test]
fn print_config_covers_every_setting() {
    let c = setup().ok(&[
        "m",
        "--pid=p",
        "--user=u",
        "--group=g",
        "--name=n",
        "--chdir=d",
        "--virtualenv=v",
        "--access-logfile=-",
        "--metrics-bind=127.0.0.1:9100",
        "--statsd-host=localhost",
    ]);
    let printed: toml::Table = toml::from_str(&c.to_toml()).expect("valid TOML");
    let keys: Vec<&str> = printed.keys().map(String::as_str).collect();
    let settings: Vec<&str> = crate::settings::SETTINGS
        .iter()
        .map(|s| s.key)
        .filter(|k| *k != "worker_class")
        .collect();
    assert_eq!(
        keys, settings,
        "--print-config order is the documented order"
    );
}

/// The generated text between `name`'s markers in `page` is up to date;
/// with `ASERVE_BLESS=1`, it is written instead.
fn check_generated(page: &str, name: &str, generated: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(page);
    let doc = std::fs::read_to_string(&path).expect("read the page");
    let spliced = crate::docs::splice(&doc, name, generated)
        .unwrap_or_else(|| panic!("docs/{page} lacks the {name} markers"));
    if std::env::var_os("ASERVE_BLESS").is_some() {
        std::fs::write(&path, spliced).expect("write the page");
    } else {
        assert!(
            spliced == doc,
            "docs/{page} is out of date with the list of settings; \
             run `ASERVE_BLESS=1 cargo test -p aserve-config` to regenerate it"
        );
    }
}

#[test]
fn docs_tables_are_generated_from_the_settings() {
    check_generated(
        "configuration.md",
        "settings",
        &crate::docs::settings_tables(),
    );
    let docs = include_str!("../../../../docs/configuration.md");
    for s in crate::settings::SETTINGS {
        assert!(docs.contains(&format!("`{}`", s.env_var())), "{}", s.key);
    }
}

#[test]
fn migration_guide_table_is_generated() {
    check_generated("migrating.md", "gunicorn", &crate::docs::gunicorn_table());
}

#[test]
fn help_shows_built_in_defaults() {
    let help = crate::cli::help();
    assert!(help.contains("[default: 2048]"), "{help}");
    assert!(help.contains("[default: info]"), "{help}");
}
