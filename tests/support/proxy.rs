//! A real reverse proxy — nginx or HAProxy — in front of a test server, so
//! tests can check what aserve does with the traffic proxies actually send
//! it: reused keep-alive upstream connections, request bodies streamed
//! while the response may already be on its way.
//!
//! Each [`Proxy`] is its own foreground process (never the system service)
//! with its config, pid file, logs and temp files in a fresh directory
//! under the cargo target's tmp dir, listening on an ephemeral loopback
//! port. It is killed on drop; the directory is removed unless the test
//! panicked, when its path is printed for the logs inside.
//!
//! nginx and haproxy are installed from Debian (`apt-get`, as root) the
//! first time a test needs them and they are not on `PATH`. Within one test
//! process a `OnceLock` makes the check happen once; across processes an
//! exclusive lock on `target/tmp/proxy-install.lock` serialises the
//! check-and-install so two test binaries never run apt at once.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Server;
use super::http::Conn;
use super::venv::describe;

/// How long a proxy may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Client-side read/write timeout on connections to a proxy: short, so a
/// server that leaves a request hanging fails the test quickly.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Haproxy,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Haproxy => "haproxy",
        }
    }
}

/// Paths of the two proxy binaries.
struct Tools {
    nginx: PathBuf,
    haproxy: PathBuf,
}

/// The installed proxies, installing them on first use.
///
/// # Panics
/// If they are missing and cannot be installed; every later call in the
/// same process panics with the same message instead of retrying.
fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    match TOOLS.get_or_init(install) {
        Ok(tools) => tools,
        Err(msg) => panic!("{msg}"),
    }
}

/// `name` on `PATH`, or in the sbin directories Debian puts daemons in
/// (often not on a non-root user's `PATH`).
fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
}

fn find_tools() -> Option<Tools> {
    Some(Tools {
        nginx: find("nginx")?,
        haproxy: find("haproxy")?,
    })
}

/// Runs `apt-get ARGS` non-interactively, waiting for a dpkg lock held by
/// something else on the machine rather than failing at once.
fn apt_get(args: &[&str]) -> Result<(), String> {
    let what = format!("apt-get {}", args.join(" "));
    let out = Command::new("apt-get")
        .args(["-q", "-o", "DPkg::Lock::Timeout=300"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run apt-get: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(describe(&what, &out))
    }
}

/// While alive, a `policy-rc.d` that tells package scripts not to start
/// services, if the machine has none (container images usually do): the
/// tests run their own nginx and haproxy and want no system ones on port
/// 80. Removed on drop.
struct NoServiceStart(Option<PathBuf>);

impl NoServiceStart {
    fn new() -> Result<NoServiceStart, String> {
        let path = PathBuf::from("/usr/sbin/policy-rc.d");
        if path.exists() {
            return Ok(NoServiceStart(None));
        }
        fs::write(
            &path,
            "#!/bin/sh\n# aserve tests: installing packages\nexit 101\n",
        )
        .and_then(|()| {
            fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        })
        .map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(NoServiceStart(Some(path)))
    }
}

impl Drop for NoServiceStart {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

/// Installs whichever of nginx and haproxy is missing, from Debian.
/// `nginx-light` is enough and smallest; releases without it get `nginx`.
/// `apt-get update` runs only when the install fails without it.
fn install() -> Result<Tools, String> {
    if let Some(tools) = find_tools() {
        return Ok(tools);
    }
    // Blocks while another test process installs; released on drop.
    let _lock =
        super::venv::file_lock(Path::new(env!("CARGO_TARGET_TMPDIR")), "proxy-install.lock")?;
    if let Some(tools) = find_tools() {
        return Ok(tools);
    }
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        return Err(
            "the proxy tests need nginx and haproxy: not found, and not root to \
                    install them (apt-get install nginx-light haproxy)"
                .into(),
        );
    }
    let started = Instant::now();
    let mut packages = vec!["install", "-y", "--no-install-recommends"];
    let nginx_missing = find("nginx").is_none();
    if nginx_missing {
        packages.push("nginx-light");
    }
    if find("haproxy").is_none() {
        packages.push("haproxy");
    }
    eprintln!("installing {} ...", packages[3..].join(" "));
    let _no_services = NoServiceStart::new()?;
    let mut result = apt_get(&packages);
    if result.is_err() {
        apt_get(&["update"])?;
        result = apt_get(&packages);
    }
    if let Err(first) = result {
        if !nginx_missing {
            return Err(first);
        }
        let nginx = packages.iter().position(|p| *p == "nginx-light");
        packages[nginx.expect("nginx-light listed")] = "nginx";
        apt_get(&packages).map_err(|e| format!("{first}\n\nand then, with nginx:\n{e}"))?;
    }
    let tools = find_tools().ok_or("apt-get succeeded but nginx or haproxy is still missing")?;
    eprintln!("proxies installed in {:.1?}", started.elapsed());
    Ok(tools)
}

/// A fresh, empty directory for one proxy's files.
fn fresh_dir(kind: Kind) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "proxy-{}-{}-{}",
        kind.name(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A loopback port that was free a moment ago. Neither proxy can listen on
/// port 0 and say which port it got, so this can race with another
/// process; [`Proxy::start`] retries on "address in use".
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// nginx modules whose temp path defaults to a system directory; each is
/// pointed into the proxy's own directory unless this build lacks it (the
/// directive would then be unknown).
fn nginx_optional_temp_paths(nginx: &Path, dir: &Path) -> String {
    let version = Command::new(nginx)
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    ["fastcgi", "uwsgi", "scgi"]
        .iter()
        .filter(|m| !version.contains(&format!("--without-http_{m}_module")))
        .map(|m| format!("    {m}_temp_path {}/{m}_temp;\n", dir.display()))
        .collect()
}

fn nginx_conf(nginx: &Path, dir: &Path, listen: u16, upstream: SocketAddr, extra: &str) -> String {
    let optional = nginx_optional_temp_paths(nginx, dir);
    let dir = dir.display();
    format!(
        "\
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{
    worker_connections 512;
}}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body_temp;
    proxy_temp_path {dir}/proxy_temp;
{optional}
    upstream aserve {{
        server {upstream};
        keepalive 16;
        keepalive_timeout 20s;
    }}
    server {{
        listen 127.0.0.1:{listen};
        # Unlimited, so a 413 comes from aserve, not from nginx.
        client_max_body_size 0;
        location / {{
            proxy_pass http://aserve;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_request_buffering off;
            proxy_connect_timeout 5s;
            proxy_send_timeout 10s;
            proxy_read_timeout 10s;
{extra}
        }}
    }}
}}
"
    )
}

fn haproxy_cfg(listen: u16, upstream: SocketAddr, extra: &str) -> String {
    format!(
        "\
global
    log stderr format raw local0 info
    maxconn 512
defaults
    mode http
    log global
    option httplog
    # The readiness probe connects and closes without a request.
    option dontlognull
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 10s
    timeout server 10s
    timeout http-keep-alive 10s
frontend in
    bind 127.0.0.1:{listen}
    default_backend aserve
backend aserve
    server aserve {upstream} {extra}
"
    )
}

/// A running proxy in front of one server. Killed (SIGKILL) and reaped on
/// drop.
pub struct Proxy {
    kind: Kind,
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Proxy {
    /// Starts `kind` in front of `server` and waits until it accepts
    /// connections.
    ///
    /// # Panics
    /// If the proxy cannot be installed or does not come up within 10 s;
    /// the message carries its log.
    pub fn start(kind: Kind, server: &Server) -> Proxy {
        Self::start_with(kind, server, "")
    }

    /// Like [`Proxy::start`], with `extra` configuration: nginx directives
    /// for its `location /` block, or options of HAProxy's `server` line
    /// (`send-proxy`).
    pub fn start_with(kind: Kind, server: &Server, extra: &str) -> Proxy {
        let tools = tools();
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = fresh_dir(kind);
            let port = free_port();
            let log = File::create(dir.join("stderr.log")).expect("create stderr.log");
            let mut cmd = match kind {
                Kind::Nginx => {
                    let conf = dir.join("nginx.conf");
                    fs::write(
                        &conf,
                        nginx_conf(&tools.nginx, &dir, port, server.addr(), extra),
                    )
                    .expect("write nginx.conf");
                    let mut cmd = Command::new(&tools.nginx);
                    cmd.arg("-p")
                        .arg(&dir)
                        .arg("-c")
                        .arg(&conf)
                        // The error log before the config is read, which
                        // otherwise is the system's /var/log/nginx.
                        .arg("-e")
                        .arg(dir.join("error.log"))
                        .args(["-g", "daemon off; master_process off;"]);
                    cmd
                }
                Kind::Haproxy => {
                    let cfg = dir.join("haproxy.cfg");
                    fs::write(&cfg, haproxy_cfg(port, server.addr(), extra))
                        .expect("write haproxy.cfg");
                    let mut cmd = Command::new(&tools.haproxy);
                    cmd.arg("-f").arg(&cfg).arg("-db");
                    cmd
                }
            };
            let child = cmd
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", kind.name()));
            let mut proxy = Proxy {
                kind,
                child,
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                dir,
            };
            match proxy.wait_ready() {
                Ok(()) => return proxy,
                Err(log) if log.contains("in use") => last_log = log,
                Err(log) => panic!("{} did not start:\n{log}", kind.name()),
            }
        }
        panic!(
            "{} found its port in use three times:\n{last_log}",
            kind.name()
        );
    }

    /// Connects in a loop until the proxy accepts, it exits, or the
    /// deadline passes; Err carries its logs.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status})\n{}", self.log()));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not listening after {READY_TIMEOUT:?}\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A fresh connection with [`IO_TIMEOUT`] read/write timeouts.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.kind.name()));
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("set read timeout");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("set write timeout");
        stream
    }

    /// A fresh [`Conn`] to the proxy.
    pub fn conn(&self) -> Conn {
        Conn::from_stream(self.connect())
    }

    /// Everything the proxy logged (its stderr, error log and access log).
    pub fn log(&self) -> String {
        ["stderr.log", "error.log", "access.log"]
            .iter()
            .filter_map(|name| {
                let text = fs::read_to_string(self.dir.join(name));
                match text {
                    Ok(text) if !text.is_empty() => Some(format!("--- {name} ---\n{text}")),
                    Ok(_) => None,
                    Err(e) if e.kind() == ErrorKind::NotFound => None,
                    Err(e) => Some(format!("--- {name}: {e}")),
                }
            })
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "{} files kept for inspection in {}",
                self.kind.name(),
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Proxy {
    /// Starts nginx with `site` — `upstream`/`server` blocks as a user puts
    /// them in `conf.d` (the one in `docs/deploy.md`) — inside a minimal
    /// `nginx.conf` of the proxy's own (pid, logs, temp paths). Every
    /// `@LISTEN@` in `site` becomes the loopback address it listens on.
    ///
    /// # Panics
    /// As [`Proxy::start`].
    pub fn nginx_site(site: &str) -> Proxy {
        let tools = tools();
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = fresh_dir(Kind::Nginx);
            let port = free_port();
            let optional = nginx_optional_temp_paths(&tools.nginx, &dir);
            let site = site.replace("@LISTEN@", &format!("127.0.0.1:{port}"));
            let d = dir.display();
            let conf = format!(
                "pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
                 events {{\n    worker_connections 512;\n}}\n\
                 http {{\n    access_log {d}/access.log;\n    \
                 client_body_temp_path {d}/client_body_temp;\n    \
                 proxy_temp_path {d}/proxy_temp;\n{optional}\n{site}\n}}\n"
            );
            let conf_path = dir.join("nginx.conf");
            fs::write(&conf_path, conf).expect("write nginx.conf");
            let log = File::create(dir.join("stderr.log")).expect("create stderr.log");
            let child = Command::new(&tools.nginx)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(dir.join("error.log"))
                .args(["-g", "daemon off; master_process off;"])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn nginx: {e}"));
            let mut proxy = Proxy {
                kind: Kind::Nginx,
                child,
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                dir,
            };
            match proxy.wait_ready() {
                Ok(()) => return proxy,
                Err(log) if log.contains("in use") => last_log = log,
                Err(log) => panic!("nginx did not start:\n{log}"),
            }
        }
        panic!("nginx found its port in use three times:\n{last_log}");
    }
}
