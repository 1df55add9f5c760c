"""What the harness needs before it measures anything: the two Rust
binaries, the peers' virtualenv, wrk, and a description of the machine."""

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


def build(repo):
    """Build aserve and the reference example in release mode, then copy
    both to target/bench-bin so a rebuild by someone else in the middle of a
    run cannot swap the binary under test. A failed build falls back to the
    binary already there, with a note. Returns (aserve_bin, reference_bin or
    None, notes)."""
    notes = []
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(repo, "target"))
    built = {
        "aserve": (["cargo", "build", "--release", "--bin", "aserve"],
                   os.path.join(target, "release", "aserve")),
        "reference": (["cargo", "build", "--release", "-p", "aserve-http", "--example", "hello"],
                      os.path.join(target, "release", "examples", "hello")),
    }
    snapshot = os.path.join(target, "bench-bin")
    os.makedirs(snapshot, exist_ok=True)
    out = {}
    for name, (argv, path) in built.items():
        log(f"== {' '.join(argv)}")
        ok = subprocess.run(argv, cwd=repo).returncode == 0
        if not ok and os.path.exists(path):
            stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(path)))
            notes.append(f"`{' '.join(argv)}` failed (the tree was mid-edit); measured the "
                         f"{name} binary already built at {stamp}")
        elif not ok:
            notes.append(f"`{' '.join(argv)}` failed and no earlier build exists: no {name}")
            out[name] = None
            continue
        copy = os.path.join(snapshot, name)
        shutil.copy2(path, copy)
        out[name] = copy
    if out["aserve"] is None:
        sys.exit("aserve did not build; see the cargo output above")
    return out["aserve"], out["reference"], notes


def revision(repo):
    """The commit measured, and whether the work tree had local changes."""
    def git(*argv):
        return subprocess.run(["git", *argv], cwd=repo, capture_output=True,
                               text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src", "crates")
    return commit + (" + uncommitted changes in src/ or crates/" if dirty else "")


def python_for(aserve_bin):
    """The interpreter aserve embeds (from the libpython it links), so the
    venv's packages match its ABI; else the one running this script."""
    try:
        out = subprocess.run(["ldd", aserve_bin], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    m = re.search(r"(\S*/lib)/libpython(\d+\.\d+)\S*\.so\S*", out)
    if m:
        candidate = os.path.join(os.path.dirname(m.group(1)), "bin", f"python{m.group(2)}")
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


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
