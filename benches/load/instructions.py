#!/usr/bin/env python3
"""Instructions per request: aserve binaries under callgrind, counted only
while the load runs, per thread role (reactor, Python thread).

    python3 benches/load/instructions.py before=PATH after=PATH
    python3 benches/load/instructions.py before=PATH after=PATH \\
        --path /ignore --script post1k.lua --runs 2

Each binary runs the bench app (benches/load/apps/bench_app.py, or --app) as
`aserve -w 1 -t 0` (one worker; no heartbeat timeout, since a worker under
valgrind is some 50x slower) under

    valgrind --tool=callgrind --trace-children=yes --separate-threads=yes \
        --instr-atstart=no

pinned to core 0. After a warm-up, instrumentation is switched on in the
worker (`callgrind_control -i on`, which reaches a process blocked in a
syscall too), wrk (one thread, core 1) runs for --seconds, then
instrumentation is switched off and the counts are dumped. Per thread,
instructions (Ir) / requests wrk completed; a thread is "python" when its
profile has the CPython eval loop in it, "reactor" when it has hyper, else
"other". Binaries are run in turn, --runs times (A B A B ...).

Needs valgrind (callgrind_control, vgdb), wrk, taskset, and the venv the
load harness made (target/bench-venv; run run.py once). Not part of the
test suite. Results (callgrind files) stay in target/callgrind/.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import measure  # noqa: E402
import servers as srv  # noqa: E402
import setup_env  # noqa: E402

log = setup_env.log


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    measure.add_load_args(p, seconds=10, warmup=3, binaries_help="aserve binaries to count")
    p.add_argument("--extra", default="", help="extra aserve arguments, space-separated")
    p.add_argument("--out-dir", default=None, help="callgrind files (target/callgrind)")
    return p.parse_args()


def worker_pid(root, timeout=30.0):
    """The one worker process under the master `root`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = [p for p in measure.tree_pids(root) if p != root]
        if kids:
            return kids[0]
        time.sleep(0.2)
    raise RuntimeError("no worker process appeared")


def control(pid, *args):
    out = subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True,
                         text=True, timeout=60)
    if out.returncode != 0 or "Error" in out.stdout + out.stderr:
        raise RuntimeError(f"callgrind_control {' '.join(args)} {pid}: "
                           f"{(out.stderr or out.stdout).strip()}")
    return out.stdout


def read_profile(path):
    """(total Ir, role) of one callgrind thread file."""
    total, names = 0, set()
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("totals:"):
                total = int(line.split()[1])
            elif line.startswith(("fn=", "cfn=")):
                m = re.match(r"c?fn=\(\d+\) (.*)", line)
                if m:
                    names.add(m.group(1))
    blob = "\n".join(names)
    if "_PyEval_EvalFrameDefault" in blob:
        role = "python"
    elif "hyper::" in blob:
        role = "reactor"
    else:
        role = "other"
    return total, role


def count_one(name, binary, args, ctx, out_dir, run_no):
    tag = f"{args.path.strip('/') or 'root'}-{name}-{run_no}"
    for old in glob.glob(os.path.join(out_dir, f"callgrind.{tag}.*")):
        os.remove(old)
    out_file = os.path.join(out_dir, f"callgrind.{tag}.%p")

    def argv(c, l):
        a, cwd = srv._aserve(c, l)
        a = a[:-1] + ["-t", "0", *args.extra.split(), a[-1]]
        # --trace-children=yes keeps vgdb (and so callgrind_control)
        # working in the forked worker; without it valgrind turns vgdb off
        # in a child of fork.
        return ["valgrind", "--tool=callgrind", "--trace-children=yes",
                "--separate-threads=yes", "--instr-atstart=no",
                f"--callgrind-out-file={out_file}", binary] + a[1:], cwd

    server = srv.Server(f"callgrind-{tag}", argv=argv)
    launch = srv.Launch(port=measure.free_port(), workers=1, app=args.app)
    server_core, load_core = setup_env.cores()
    running = srv.start(server, ctx, launch, server_core, args.path, timeout=180)
    try:
        url = f"http://127.0.0.1:{running.port}{args.path}"
        script = os.path.join(HERE, "lua", args.script)
        measure.wrk(url, args.connections, args.warmup, script, load_core)
        worker = worker_pid(running.pid)
        time.sleep(1)
        control(worker, "-i", "on")
        result = measure.wrk(url, args.connections, args.seconds, script, load_core)
        control(worker, "-i", "off")
        control(worker, "-d")
        time.sleep(1)
    finally:
        srv.stop(running, grace=20)
    if "error" in result:
        raise RuntimeError(f"wrk: {result['error']}")
    # One file per thread of the worker's first dump: callgrind.TAG.PID.1-TT
    files = sorted(glob.glob(os.path.join(out_dir, f"callgrind.{tag}.{worker}.1-*")))
    if not files:
        raise RuntimeError(f"no callgrind dump for worker {worker} in {out_dir}")
    by_role = {}
    threads = {}
    for path in files:
        total, role = read_profile(path)
        if total:
            by_role[role] = by_role.get(role, 0) + total
            threads[role] = threads.get(role, 0) + 1
    requests = result["requests"]
    errors = result["errors"]
    return {"name": name, "run": run_no, "requests": requests, "errors": errors,
            "rps": result["rps"], "per_request": {r: v / requests for r, v in by_role.items()},
            "threads": threads, "total": sum(by_role.values()) / requests}


def main():
    args = parse_args()
    binaries = []
    for item in args.binaries:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = os.path.basename(item), item
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} is not an executable")
        binaries.append((name, os.path.abspath(path)))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    venv = os.path.join(target, "bench-venv")
    if not os.path.isdir(venv):
        sys.exit(f"{venv} is missing: run benches/load/run.py once first")
    out_dir = os.path.abspath(args.out_dir or os.path.join(target, "callgrind"))
    os.makedirs(out_dir, exist_ok=True)
    log_dir = os.path.join(target, "bench-logs")
    os.makedirs(log_dir, exist_ok=True)
    setup_env.raise_fd_limit()
    rows = []
    for run_no in range(1, args.runs + 1):
        for name, binary in binaries:
            ctx = srv.Context(repo=REPO, venv=venv, apps=os.path.join(HERE, "apps"),
                              load_dir=HERE, aserve_bin=binary, reference_bin="",
                              aserve_has_workers=True, log_dir=log_dir)
            r = count_one(name, binary, args, ctx, out_dir, run_no)
            rows.append(r)
            pr = r["per_request"]
            log(f"   {name:<10} run {run_no}: {r['requests']:>7} requests ({r['rps']:,.0f} req/s, "
                f"{r['errors']} errors)  Ir/request: total {r['total']:,.0f}  reactor "
                f"{pr.get('reactor', 0):,.0f}  python {pr.get('python', 0):,.0f}  other "
                f"{pr.get('other', 0):,.0f}  threads {r['threads']}")
    print(f"\n{args.app} {args.path} {args.extra} c{args.connections}, {args.seconds} s "
          f"counted per run, 1 worker (instructions per request)")
    print("| binary | run | requests | total | reactor | Python thread(s) | other | threads |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        pr = r["per_request"]
        threads = ", ".join(f"{k} {v}" for k, v in sorted(r["threads"].items()))
        print(f"| {r['name']} | {r['run']} | {r['requests']:,} | {r['total']:,.0f} | "
              f"{pr.get('reactor', 0):,.0f} | {pr.get('python', 0):,.0f} | "
              f"{pr.get('other', 0):,.0f} | {threads} |")


if __name__ == "__main__":
    main()
