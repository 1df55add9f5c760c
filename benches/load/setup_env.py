"""What the harness needs before it measures anything: aserve (the Python
package, built and installed) and the reference binary, the peers' virtualenv, wrk, and a description of the machine."""

import hashlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time

STAMP = "bench-requirements.json"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


MATURIN = "maturin==1.16.0"  # as tests/support/package.rs


def build(repo):
    """Build aserve the way users get it, a release wheel of the Python
    package for the interpreter running this script, installed into a venv
    of its own (target/bench-bin/aserve-venv), and the reference example
    in release mode, copied to target/bench-bin: a rebuild by someone else
    in the middle of a run cannot swap what is under test. The wheel keeps
    its symbols (`--strip false`) so callgrind can name functions. A failed
    build falls back to what is already there, with a note. Returns
    (aserve console script, reference_bin or None, notes)."""
    notes = []
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(repo, "target"))
    snapshot = os.path.join(target, "bench-bin")
    os.makedirs(snapshot, exist_ok=True)
    out = {"aserve": _build_package(repo, target, snapshot, notes)}
    argv = ["cargo", "build", "--release", "-p", "aserve-http", "--example", "hello"]
    path = os.path.join(target, "release", "examples", "hello")
    log(f"== {' '.join(argv)}")
    ok = subprocess.run(argv, cwd=repo).returncode == 0
    if not ok and os.path.exists(path):
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(path)))
        notes.append(f"`{' '.join(argv)}` failed (the tree was mid-edit); measured the "
                     f"reference binary already built at {stamp}")
    if ok or os.path.exists(path):
        out["reference"] = os.path.join(snapshot, "reference")
        shutil.copy2(path, out["reference"])
    else:
        notes.append(f"`{' '.join(argv)}` failed and no earlier build exists: no reference")
        out["reference"] = None
    if out["aserve"] is None:
        sys.exit("aserve did not build; see the maturin output above")
    return out["aserve"], out["reference"], notes


def package_script(target):
    """The console script of the package the last build installed."""
    return os.path.join(target, "bench-bin", "aserve-venv", "bin", "aserve")


def _build_package(repo, target, snapshot, notes):
    tools = os.path.join(target, "bench-tools")
    maturin = os.path.join(tools, "bin", "maturin")
    if not os.path.exists(maturin):
        subprocess.run([sys.executable, "-m", "venv", "--clear", tools], check=True)
        subprocess.run([os.path.join(tools, "bin", "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", MATURIN], check=True)
    wheels = os.path.join(target, "bench-wheel")
    shutil.rmtree(wheels, ignore_errors=True)
    argv = [maturin, "build", "--release", "--strip", "false", "--locked",
            "-i", sys.executable, "-o", wheels]
    log(f"== {' '.join(argv)}")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    script = package_script(target)
    if subprocess.run(argv, cwd=repo, env=env).returncode != 0:
        if os.path.exists(script):
            stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(script)))
            notes.append(f"`maturin build` failed (the tree was mid-edit); measured the "
                         f"package installed at {stamp}")
            return script
        return None
    wheel = [os.path.join(wheels, w) for w in os.listdir(wheels) if w.endswith(".whl")]
    venv = os.path.dirname(os.path.dirname(script))
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True, env=env)
    subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", "--no-index", "--no-deps", *wheel],
                   check=True, env=env)
    return script


def revision(repo):
    """The commit measured, and whether the work tree had local changes."""
    def git(*argv):
        return subprocess.run(["git", *argv], cwd=repo, capture_output=True,
                               text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src", "crates")
    return commit + (" + uncommitted changes in src/ or crates/" if dirty else "")


def python_for(aserve_bin):
    """The interpreter aserve runs on, so the peers' venv (whose packages
    the apps import, via --virtualenv) matches its version: a console
    script's `#!` interpreter; a binary's libpython (the developer build);
    else the one running this script."""
    try:
        with open(aserve_bin, "rb") as f:
            first = f.readline()
        interpreter = first[2:].decode().strip() if first.startswith(b"#!") else ""
        if os.path.basename(interpreter).startswith("python"):
            # A venv's python is a symlink to the interpreter it was made of.
            return os.path.realpath(interpreter)
    except OSError:
        pass
    try:
        out = subprocess.run(["ldd", aserve_bin], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    m = re.search(r"(\S*/lib)/libpython(\d+\.\d+)\S*\.so\S*", out)
    if m:
        candidate = os.path.join(os.path.dirname(m.group(1)), "bin", f"python{m.group(2)}")
        if os.access(candidate, os.X_OK):
            return candidate
    return os.path.realpath(sys.executable)


def _requirement_lines(path):
    core, optional = [], []
    with open(path) as f:
        for raw in f:
            line, _, comment = raw.partition("#")
            line = line.strip()
            if not line:
                continue
            (optional if comment.strip().startswith("optional") else core).append(line)
    return core, optional


def venv(repo, requirements, python, force=False):
    """Create or reuse target/bench-venv. Returns (venv_dir, {package: why it
    failed}). Reused while requirements.txt and the interpreter are unchanged;
    a failed optional package is remembered until then, not retried."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(repo, "target"))
    vdir = os.path.join(target, "bench-venv")
    with open(requirements, "rb") as f:
        digest = hashlib.sha256(f.read() + python.encode()).hexdigest()
    stamp = os.path.join(vdir, STAMP)
    if not force and os.path.exists(stamp):
        with open(stamp) as f:
            saved = json.load(f)
        if saved.get("hash") == digest:
            log(f"== reusing {vdir} (requirements unchanged)")
            return vdir, saved.get("failed", {})
    log(f"== creating {vdir} with {python}")
    shutil.rmtree(vdir, ignore_errors=True)
    subprocess.run([python, "-m", "venv", vdir], check=True)
    pip = [os.path.join(vdir, "bin", "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check"]
    core, optional = _requirement_lines(requirements)
    subprocess.run(pip + core, check=True)
    failed = {}
    if any(r.lower().startswith("bjoern") for r in optional):
        apt_install("libev-dev", "/usr/include/ev.h")
    for req in optional:
        log(f"== pip install {req} (optional)")
        out = subprocess.run(pip + [req], capture_output=True, text=True)
        if out.returncode != 0:
            lines = [l for l in (out.stderr + out.stdout).splitlines() if l.strip()]
            why = next((l.strip() for l in lines if "error" in l.lower() and len(l) < 300),
                       lines[-1] if lines else "pip failed")
            failed[req.split("==")[0]] = why
            log(f"   failed: {why}")
    with open(stamp, "w") as f:
        json.dump({"hash": digest, "failed": failed}, f)
    return vdir, failed


def apt_install(package, marker):
    """Install a Debian package when `marker` (a file it provides) is
    missing and we are root with apt-get; otherwise leave it to the user."""
    if os.path.exists(marker) or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    command = ["apt-get", "install", "-y", package]
    log(f"== {marker} missing: running `{' '.join(command)}` (as root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(command, env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env)
        subprocess.run(command, env=env)


def ensure_wrk():
    """wrk on PATH, installing it from apt when running as root; else exit
    with the command to run."""
    if shutil.which("wrk"):
        return
    command = "apt-get install -y wrk"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"== wrk missing: running `{command}` (as root)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(command.split(), env=env).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env)
            subprocess.run(command.split(), env=env)
        if shutil.which("wrk"):
            return
    sys.exit(f"wrk is required: install it with `sudo {command}` (Debian/Ubuntu), then rerun")


def raise_fd_limit(wanted=65536):
    """Raise RLIMIT_NOFILE for us and the servers we start (they inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (max(wanted, hard), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
            return target
        except (ValueError, OSError):
            continue
    return soft


def cores():
    """(server_core, load_core), or (None, None) when the machine cannot
    give them one core each."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) >= 2 and shutil.which("taskset"):
        return allowed[0], allowed[1]
    return None, None


def machine(python):
    def run(*argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True)
            return (out.stdout + out.stderr).strip()
        except OSError:
            return ""

    model = ""
    for line in run("lscpu").splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    wrk_version = run("wrk", "-v").splitlines()[:1] or [""]
    return {
        "nproc": run("nproc"),
        "cpu": model,
        "kernel": platform.release(),
        "python": run(python, "--version"),
        "wrk": wrk_version[0].split(" [")[0],
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    }
