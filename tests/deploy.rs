//! `docs/deploy.md`, tested: its Kubernetes manifests are valid against a
//! pinned Kubernetes version (`kubernetes-validate`, offline, strict) and
//! agree with the settings they pass, and its nginx configuration is the
//! one started here in front of aserve, reached over the unix socket.
//!
//! Blocks are taken from the page by the HTML comment before them
//! (`<!-- validate: kubernetes -->`, `<!-- nginx: site -->`), so what a
//! reader copies is what was tested.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Server;
use crate::support::http::get;
use crate::support::proxy::Proxy;
use crate::support::venv::framework_venv;

/// The Kubernetes version the manifests are checked against.
const KUBERNETES: &str = "1.33.0";

fn page() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deploy.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fenced code blocks that follow `<!-- marker -->`.
fn blocks(page: &str, marker: &str) -> Vec<String> {
    let tag = format!("<!-- {marker} -->");
    page.split(&tag)
        .skip(1)
        .map(|rest| {
            let body = rest
                .trim_start()
                .strip_prefix("```")
                .and_then(|b| b.split_once('\n'))
                .map(|(_, body)| body)
                .unwrap_or_else(|| panic!("no code block after {tag}"));
            let end = body.find("\n```").expect("an unterminated code block");
            body[..=end].to_string()
        })
        .collect()
}

fn dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// Runs `kubernetes-validate --strict` on `files`; Err carries its output.
fn validate(files: &[PathBuf]) -> Result<String, String> {
    let tool = framework_venv().join("bin").join("kubernetes-validate");
    let out = Command::new(&tool)
        .args(["--strict", "--kubernetes-version", KUBERNETES])
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", tool.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "kubernetes-validate failed ({}):\n{text}\n{stderr}",
            out.status
        ))
    }
}

/// `--NAME=N` in the manifest's args.
fn arg(manifest: &str, name: &str) -> u64 {
    let key = format!("--{name}=");
    manifest
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("- ")?
                .strip_prefix(&key)?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {key}N in the Deployment"))
}

#[test]
fn kubernetes_manifests_in_the_deploy_docs_are_valid() {
    let manifests = blocks(&page(), "validate: kubernetes");
    let kinds: Vec<&str> = manifests
        .iter()
        .filter_map(|m| m.lines().find_map(|l| l.strip_prefix("kind: ")))
        .collect();
    assert_eq!(kinds, ["Deployment", "Service", "Ingress"]);
    let dir = dir("deploy-manifests");
    let files: Vec<PathBuf> = manifests
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let file = dir.join(format!("{i}.yaml"));
            std::fs::write(&file, m).expect("write");
            file
        })
        .collect();
    let report = validate(&files).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.matches("passed").count(), 3, "{report}");

    // The check is real: a misspelt field fails it.
    let broken = dir.join("broken.yaml");
    std::fs::write(&broken, manifests[0].replace("replicas: 3", "replica: 3")).expect("write");
    assert!(validate(&[broken]).is_err(), "a misspelt field passed");

    // The Deployment agrees with itself: the grace period covers the
    // shutdown delay, the graceful timeout and the handshake wait (5 s),
    // and `-w auto` has a CPU limit to read.
    let deployment = &manifests[0];
    let grace: u64 = deployment
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("terminationGracePeriodSeconds: ")?
                .parse()
                .ok()
        })
        .expect("terminationGracePeriodSeconds");
    let needed = arg(deployment, "shutdown-delay") + arg(deployment, "graceful-timeout") + 5;
    assert!(
        grace > needed,
        "grace period {grace} s, stop may take {needed} s"
    );
    assert!(deployment.contains("- --workers=auto"));
    let limits = deployment
        .split("limits:")
        .nth(1)
        .expect("resources.limits");
    assert!(limits.contains("cpu: \"2\""), "{limits}");
    for probe in ["path: /ready", "path: /live", "--metrics-bind=0.0.0.0:9000"] {
        assert!(deployment.contains(probe), "no {probe}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nginx_config_in_the_deploy_docs_proxies_over_the_unix_socket() {
    let sites = blocks(&page(), "nginx: site");
    assert_eq!(sites.len(), 1);
    let site = &sites[0];
    for needed in [
        "unix:/run/myapp/aserve.sock",
        "listen 80;",
        "keepalive ",
        "proxy_http_version 1.1;",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
    ] {
        assert!(site.contains(needed), "no {needed:?} in:\n{site}");
    }
    let dir = dir("deploy-nginx");
    let socket = dir.join("aserve.sock");
    let server = Server::builder("environ_app:app")
        .args(["-b", &format!("unix:{}", socket.display())])
        .start();
    let site = site
        .replace("/run/myapp/aserve.sock", &socket.display().to_string())
        .replace("listen 80;", "listen @LISTEN@;");
    let proxy = Proxy::nginx_site(&site);
    for _ in 0..3 {
        let resp = proxy.conn().roundtrip(&get("/through/nginx"));
        assert_eq!(resp.status, 200, "{}\n{}", resp.dump(), proxy.log());
        let environ = resp.text();
        for line in [
            "PATH_INFO\t'/through/nginx'",
            "HTTP_X_FORWARDED_FOR\t'127.0.0.1'",
            "HTTP_X_FORWARDED_PROTO\t'http'",
        ] {
            assert!(environ.contains(line), "no {line:?} in:\n{environ}");
        }
    }
    drop(proxy);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
