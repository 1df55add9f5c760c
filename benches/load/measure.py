"""Measurements: a wrk run, the RSS of a process tree, idle connections.

RSS is the sum of VmRSS over the server's pid and all its descendants,
sampled every SAMPLE_EVERY seconds on a thread while the load runs. For
forking servers that sum counts pages shared between parent and children
once per process, so it overstates their real footprint somewhat; it is
what `ps` and the issue ask for, and it is the same rule for everyone.
"""

import json
import os
import socket
import subprocess
import threading
import time

SAMPLE_EVERY = 0.1  # seconds


def add_load_args(p, seconds, warmup, binaries_help):
    """The options every per-binary probe (instructions.py, switches.py)
    takes: the binaries, the app and request, and the load's shape."""
    p.add_argument("binaries", nargs="+", metavar="NAME=PATH", help=binaries_help)
    p.add_argument("--app", default="bench_app:app",
                   help="app in benches/load/apps (bench_app:app; flask_app:app with --path /json)")
    p.add_argument("--path", default="/hello", help="request path (/hello)")
    p.add_argument("--script", default="report.lua", help="wrk script in lua/ (report.lua)")
    p.add_argument("--connections", type=int, default=100, help="wrk connections (100)")
    p.add_argument("--seconds", type=int, default=seconds,
                   help=f"seconds measured per run ({seconds})")
    p.add_argument("--warmup", type=int, default=warmup,
                   help=f"seconds of unmeasured load first ({warmup})")
    p.add_argument("--runs", type=int, default=1, help="runs per binary, interleaved (1)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children_map():
    """ppid -> [pid] for every process on the machine."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Field 4 (ppid) follows the parenthesised command, which may hold spaces.
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree_pids(root):
    kids = _children_map()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(kids.get(pid, []))
    return pids


def vm_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(root):
    return sum(vm_rss_kib(pid) for pid in tree_pids(root))


class RssSampler:
    """Peak RSS (KiB) of a process tree while the `with` block runs."""

    def __init__(self, root):
        self.root = root
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            self.peak = max(self.peak, tree_rss_kib(self.root))
            if self._stop.wait(SAMPLE_EVERY):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_kib(self.root))


def wrk(url, connections, seconds, script, core, timeout_s=10):
    """Run wrk with one thread pinned to `core`; return the parsed summary
    (see lua/report.lua) plus req/s, or {"error": ...}."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s}s",
            "-s", script, url]
    if core is not None:
        argv = ["taskset", "-c", str(core), *argv]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        return {"error": "wrk did not finish"}
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result = json.loads(line[len("WRKJSON "):])
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            result["errors"] = sum(result[k] for k in ("connect", "read", "write", "status",
                                                        "timeout"))
            return result
    return {"error": (out.stderr or out.stdout).strip()[-300:] or f"wrk exited {out.returncode}"}


def idle_connections(python, script, port, count, path, root_pid, core, settle=2.0):
    """Open `count` keep-alive connections (one request each) and hold them;
    return RSS before/after and what the client saw."""
    before = tree_rss_kib(root_pid)
    argv = [python, script, "127.0.0.1", str(port), str(count), path]
    if core is not None:
        argv = ["taskset", "-c", str(core), *argv]
    client = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    result = {"rss_before_kib": before}
    try:
        opened = _read_json(client, 90)
        result.update(opened)
        time.sleep(settle)
        result["rss_after_kib"] = tree_rss_kib(root_pid)
        client.stdin.write("check\n")
        client.stdin.flush()
        result.update(_read_json(client, 30))
    except (TimeoutError, ValueError, OSError) as e:
        result["error"] = f"{type(e).__name__}: {e} {client.stderr.read()[-300:] if client.poll() is not None else ''}"
    finally:
        try:
            client.stdin.close()
        except OSError:
            pass
        try:
            client.wait(timeout=20)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait()
    still = result.get("still_open", 0)
    if still and "rss_after_kib" in result:
        result["kib_per_conn"] = (result["rss_after_kib"] - before) / still
    return result


def _read_json(proc, timeout):
    """One JSON line from proc.stdout within `timeout` seconds."""
    box = {}

    def read():
        box["line"] = proc.stdout.readline()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if "line" not in box:
        raise TimeoutError(f"no answer from the idle client within {timeout} s")
    if not box["line"]:
        raise ValueError(f"idle client exited: {proc.stderr.read()[-300:]}")
    return json.loads(box["line"])
