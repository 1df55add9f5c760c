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
    ]);
    let printed: toml::Table = toml::from_str(&c.to_toml()).expect("valid TOML");
    let keys: Vec<&str> = printed.keys().map(String::as_str).collect();
    let settings: Vec<&str> = crate::settings::SETTINGS.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys, settings,
        "--print-config order is the documented order"
    );
}

#[test]
fn docs_cover_every_setting() {
    let docs = include_str!("../../../../docs/configuration.md");
    for (key, _) in crate::settings::SETTINGS {
        let env = crate::settings::env_var(key);
        for spelling in [format!("`{key}`"), format!("`{env}`")] {
            assert!(
                docs.contains(&spelling),
                "docs/configuration.md lacks {spelling}"
            );
        }
        if *key != "app" {
            let flag = crate::settings::flag(key);
            assert!(docs.contains(&format!("`{flag}")), "docs lack {flag}");
        }
    }
}

#[test]
fn help_shows_built_in_defaults() {
    let help = crate::Cli::command_with_defaults()
        .render_help()
        .to_string();
    assert!(help.contains("[default: 2048]"), "{help}");
    assert!(help.contains("[default: info]"), "{help}");
}
