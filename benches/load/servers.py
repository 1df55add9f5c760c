"""The servers under test: how each is started, and with which settings.

Every server gets the same app, the same number of worker processes (where
it has such a setting), a listen backlog of 2048 and otherwise its defaults.
The `idle` scenario additionally raises idle keep-alive timeouts and
connection caps wherever a server has them, so that 10 000 idle connections
can be held at all (see IDLE_MAX_CONNECTIONS).

A server's whole process tree lives in its own process group, so the harness
can always take it down with one killpg, whatever the server does with
signals.
"""

import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field

BACKLOG = 2048
IDLE_MAX_CONNECTIONS = 12000
IDLE_KEEP_ALIVE = 120  # seconds


@dataclass
class Launch:
    """Everything needed to start one server for one scenario."""

    port: int
    workers: int
    app: str  # "module:attr" inside the apps dir
    idle: bool = False  # the idle-connections scenario: raise caps and timeouts


@dataclass
class Server:
    name: str
    # Only the reference ignores the app (it always answers hello).
    hello_only: bool = False
    # False when the server cannot run N workers; the harness then warns.
    multi_worker: bool = True
    note: str = ""
    optional_package: str = ""  # pip name that may fail to install
    opt_in: bool = False  # only when its option is given (aserve-baseline)
    argv: object = None  # callable(ctx: Context, launch: Launch) -> (argv, cwd)


@dataclass
class Context:
    repo: str
    venv: str
    apps: str
    load_dir: str
    aserve_bin: str
    reference_bin: str
    baseline_bin: str = ""  # --aserve-baseline: a second aserve build to A/B against
    aserve_has_workers: bool = False
    log_dir: str = ""

    def bin(self, name):
        return os.path.join(self.venv, "bin", name)


def _aserve(ctx, l):
    argv = [ctx.aserve_bin, "-b", f"127.0.0.1:{l.port}", "--chdir", ctx.apps,
            "--virtualenv", ctx.venv, "--backlog", str(BACKLOG)]
    if ctx.aserve_has_workers:
        argv += ["-w", str(l.workers)]
    if l.idle:
        argv += ["--worker-connections", str(IDLE_MAX_CONNECTIONS),
                 "--keep-alive", str(IDLE_KEEP_ALIVE)]
    return argv + [l.app], ctx.apps


def _aserve_baseline(ctx, l):
    argv, cwd = _aserve(ctx, l)
    return [ctx.baseline_bin] + argv[1:], cwd


def _aserve_threads1(ctx, l):
    argv, cwd = _aserve(ctx, l)
    return argv[:-1] + ["--threads", "1", argv[-1]], cwd


def _reference(ctx, l):
    argv = [ctx.reference_bin, f"127.0.0.1:{l.port}"]
    if l.idle:
        argv += ["--max-connections", str(IDLE_MAX_CONNECTIONS),
                 "--keep-alive", str(IDLE_KEEP_ALIVE)]
    return argv, ctx.apps


def _granian(ctx, l):
    argv = [ctx.bin("granian"), "--interface", "wsgi", "--host", "127.0.0.1",
            "--port", str(l.port), "--workers", str(l.workers),
            "--backlog", str(BACKLOG), "--working-dir", ctx.apps, "--no-ws",
            "--log-level", "warning"]
    if l.idle:
        # Granian admits at most `backpressure` connections' requests at
        # once (default backlog / workers); past it, it closes connections.
        argv += ["--backpressure", str(IDLE_MAX_CONNECTIONS)]
    return argv + [l.app], ctx.apps


def _gunicorn(worker_class, *extra):
    def build(ctx, l):
        argv = [ctx.bin("gunicorn"), "-k", worker_class, "-w", str(l.workers),
                "-b", f"127.0.0.1:{l.port}", "--backlog", str(BACKLOG),
                "--chdir", ctx.apps, "--log-level", "warning", *extra]
        if l.idle:
            argv += ["--keep-alive", str(IDLE_KEEP_ALIVE)]
            if worker_class in ("gthread", "gevent"):
                argv += ["--worker-connections", str(IDLE_MAX_CONNECTIONS)]
        return argv + [l.app], ctx.apps
    return build


def _waitress(ctx, l):
    argv = [ctx.bin("waitress-serve"), f"--listen=127.0.0.1:{l.port}",
            f"--backlog={BACKLOG}"]
    if l.idle:
        argv += [f"--connection-limit={IDLE_MAX_CONNECTIONS}",
                 f"--channel-timeout={IDLE_KEEP_ALIVE}", "--asyncore-use-poll"]
    return argv + [l.app], ctx.apps


def _uwsgi(ctx, l):
    # --http starts uWSGI's async HTTP router in front of the workers; it is
    # the router that keeps client connections alive (--http-keepalive).
    # A plain --http-socket with keep-alive pins a connection to a worker,
    # which with one worker starves every other client. --http-auto-chunked
    # lets the router keep streamed (length-less) responses alive too; without
    # it every streamed response ends with a close.
    argv = [ctx.bin("uwsgi"), "--http", f"127.0.0.1:{l.port}", "--http-keepalive", "--http-auto-chunked",
            "--chdir", ctx.apps, "--module", l.app, "--processes", str(l.workers),
            "--master", "--die-on-term", "--disable-logging", "--listen", str(BACKLOG),
            "--need-app"]
    if l.idle:
        argv += ["--http-timeout", str(IDLE_KEEP_ALIVE)]
    return argv, ctx.apps


def _bjoern(ctx, l):
    argv = [ctx.bin("python"), os.path.join(ctx.load_dir, "bjoern_serve.py"),
            "127.0.0.1", str(l.port), str(l.workers), l.app]
    return argv, ctx.apps


SERVERS = [
    Server("aserve", argv=_aserve),
    Server("aserve-baseline", argv=_aserve_baseline, opt_in=True,
           note="a second aserve binary (--aserve-baseline PATH) with aserve's flags: an A/B of two builds"),
    Server("aserve-threads1", hello_only=True, argv=_aserve_threads1,
           note="aserve with --threads 1: the baseline the default pool must match on CPU-bound work"),
    Server("reference", hello_only=True, argv=_reference,
           note="bare Rust hello world on aserve-http (no Python): the front end's ceiling"),
    Server("granian", argv=_granian),
    Server("gunicorn-sync", argv=_gunicorn("sync")),
    Server("gunicorn-gthread", argv=_gunicorn("gthread", "--threads", "8")),
    Server("gunicorn-gevent", argv=_gunicorn("gevent", "--worker-connections", "1000")),
    Server("waitress", multi_worker=False, argv=_waitress,
           note="one process (4 threads); has no worker processes"),
    Server("uwsgi", optional_package="uWSGI", argv=_uwsgi,
           note="--http router + --http-keepalive"),
    Server("bjoern", optional_package="bjoern", argv=_bjoern),
]


@dataclass
class Running:
    server: Server
    port: int
    proc: subprocess.Popen
    log_path: str
    log: object = field(repr=False, default=None)

    @property
    def pid(self):
        return self.proc.pid


def start(server, ctx, launch, core, probe_path, timeout=30.0):
    """Start `server` pinned to `core` (None: unpinned), wait until
    `probe_path` answers 200, and return a Running. Raises RuntimeError with
    the log's tail if it does not come up."""
    argv, cwd = server.argv(ctx, launch)
    if core is not None:
        argv = ["taskset", "-c", str(core), *argv]
    log_path = os.path.join(ctx.log_dir, f"{server.name}.log")
    log = open(log_path, "ab")
    log.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
    log.flush()
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True, env=env)
    running = Running(server, launch.port, proc, log_path, log)
    try:
        if _wait_ready(running, f"http://127.0.0.1:{launch.port}{probe_path}", timeout):
            return running
    except BaseException:  # Ctrl-C while waiting: take the server down too
        stop(running)
        raise
    exited = proc.poll() is not None
    stop(running)
    if exited:
        raise RuntimeError(f"{server.name} exited with {proc.returncode}:\n{tail(log_path)}")
    raise RuntimeError(f"{server.name} did not answer {probe_path} within {timeout:.0f} s:\n"
                       f"{tail(log_path)}")


def _wait_ready(running, url, timeout):
    """True once `url` answers 200; False if the server exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    response.read()
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def stop(running, grace=5.0):
    """Stop the server's whole process group: SIGTERM, then SIGKILL after
    `grace` seconds. Returns (seconds the leader took to exit, whether it
    needed SIGKILL)."""
    pgid = running.proc.pid
    started = time.monotonic()
    killed = False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        killed = sig == signal.SIGKILL
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            running.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no child outlived it.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        break
    if running.log:
        running.log.close()
        running.log = None
    return time.monotonic() - started, killed


def tail(path, lines=15):
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""
