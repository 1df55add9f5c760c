#!/usr/bin/env python3
"""Context switches per request: aserve binaries run natively, the workers
pinned to one core, per thread role (reactor, Python thread, other).

    python3 benches/load/switches.py before=PATH after=PATH
    python3 benches/load/switches.py before=PATH after=PATH \\
        --app flask_app:app --path /json --runs 3

Each binary runs `aserve -w N --chdir benches/load/apps APP` with every
thread on core 0 (`taskset`), wrk (one thread) on core 1. After a warm-up,
the workers' threads' `voluntary_ctxt_switches` and
`nonvoluntary_ctxt_switches` (`/proc/PID/task/TID/status`) are read before
and after wrk runs for --seconds; the differences are divided by the
requests wrk completed. A reactor is a worker's main thread, Python
threads are named `aserve-py-*`. A nonvoluntary switch is a preemption;
a voluntary one a block (a wait for work, a lock, `epoll_wait`). Write
calls (`syscw` in `/proc/PID/task/TID/io`: `write`, `writev`, `sendto`...)
tell the wake-ups apart: a Python thread writes only to wake the reactor
(the runtime's eventfd) or its access log.

`--batch-reactor` puts each worker's reactor under `SCHED_BATCH` by hand
(`chrt -b -p 0 PID`) before the warm-up: the issue 15 probe. Give the
same binary twice under two names to compare in interleaved runs.
req/s is printed too, but on a shared machine it is only a hint.

Needs wrk, taskset and the venv the load harness made (target/bench-venv).
Not part of the test suite.
"""

import argparse
import ctypes
import os
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
    measure.add_load_args(p, seconds=5, warmup=2, binaries_help="aserve binaries")
    p.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    p.add_argument("--batch-reactor", default="", metavar="NAME,NAME",
                   help="binaries whose reactors to put under SCHED_BATCH by hand (chrt)")
    p.add_argument("--slice", action="append", default=[], metavar="NAME:ROLE:MICROS",
                   help="after the warm-up, ask for an EEVDF slice of MICROS for the threads "
                        "of ROLE (reactor, python) of binary NAME (sched_setattr, Linux 6.12+; "
                        "the thread keeps its policy); repeatable")
    p.add_argument("--extra", default="", help="extra aserve arguments, space-separated")
    return p.parse_args()


def worker_pids(root, count, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = [p for p in measure.tree_pids(root) if p != root]
        if len(kids) >= count:
            return kids
        time.sleep(0.2)
    raise RuntimeError(f"{count} worker processes did not appear")


def snapshot(pids):
    """{tid: (role, voluntary, nonvoluntary, write calls)} of every thread of `pids`."""
    out = {}
    for pid, tid in [(p, t) for p in pids for t in os.listdir(f"/proc/{p}/task")]:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        except OSError:
            continue
        try:
            with open(f"/proc/{pid}/task/{tid}/io") as f:
                io = dict(line.split(": ", 1) for line in f if ": " in line)
        except OSError:
            io = {}
        name = fields.get("Name", "")
        role = ("reactor" if tid == str(pid) else
                "python" if name.startswith("aserve-py-") else "other")
        out[tid] = (role, int(fields["voluntary_ctxt_switches"]),
                    int(fields["nonvoluntary_ctxt_switches"]), int(io.get("syscw", 0)))
    return out


class SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32),
                ("flags", ctypes.c_uint64), ("nice", ctypes.c_int32),
                ("priority", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
                ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64),
                ("util_min", ctypes.c_uint32), ("util_max", ctypes.c_uint32)]


SYS_SCHED_SETATTR = 314  # x86_64


def set_slice(tid, micros):
    """Ask the kernel for a custom slice for `tid`, keeping its policy and nice."""
    policy = os.sched_getscheduler(tid)
    nice = os.getpriority(os.PRIO_PROCESS, tid)
    attr = SchedAttr(size=ctypes.sizeof(SchedAttr), policy=policy, nice=nice,
                     runtime=micros * 1000)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_SCHED_SETATTR, tid, ctypes.byref(attr), 0) != 0:
        raise OSError(ctypes.get_errno(), f"sched_setattr({tid}, slice {micros} us)")


def measure_one(name, binary, args, ctx, run_no):
    extra = args.extra.split()

    def argv(c, l):
        a, cwd = srv._aserve(c, l)
        return a[:-1] + extra + [a[-1]], cwd

    server = srv.Server(f"switches-{name}", argv=argv)
    launch = srv.Launch(port=measure.free_port(), workers=args.workers, app=args.app)
    server_core, load_core = setup_env.cores()
    running = srv.start(server, ctx, launch, server_core, args.path, timeout=60)
    try:
        url = f"http://127.0.0.1:{running.port}{args.path}"
        script = os.path.join(HERE, "lua", args.script)
        workers = worker_pids(running.pid, args.workers)
        if name in args.batch_reactor.split(","):
            for worker in workers:
                subprocess.run(["chrt", "-b", "-p", "0", str(worker)], check=True)
        measure.wrk(url, args.connections, args.warmup, script, load_core)
        for spec in args.slice:
            who, role, micros = spec.split(":")
            if who == name:
                for tid, (r, *_) in snapshot(workers).items():
                    if r == role:
                        set_slice(int(tid), int(micros))
        before = snapshot(workers)
        result = measure.wrk(url, args.connections, args.seconds, script, load_core)
        after = snapshot(workers)
    finally:
        srv.stop(running, grace=10)
    if "error" in result:
        raise RuntimeError(f"wrk: {result['error']}")
    by_role = {}
    for tid, (role, vol, invol, writes) in after.items():
        _, vol0, invol0, writes0 = before.get(tid, (role, 0, 0, 0))
        v, n, w, t = by_role.get(role, (0, 0, 0, 0))
        by_role[role] = (v + vol - vol0, n + invol - invol0, w + writes - writes0, t + 1)
    requests = result["requests"]
    return {"name": name, "run": run_no, "requests": requests, "rps": result["rps"],
            "errors": result["errors"], "p99_ms": result.get("p99_us", 0) / 1000,
            "roles": by_role}


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
    log_dir = os.path.join(target, "bench-logs")
    os.makedirs(log_dir, exist_ok=True)
    setup_env.raise_fd_limit()
    rows = []
    for run_no in range(1, args.runs + 1):
        for name, binary in binaries:
            ctx = srv.Context(repo=REPO, venv=venv, apps=os.path.join(HERE, "apps"),
                              load_dir=HERE, aserve_bin=binary, reference_bin="",
                              aserve_has_workers=True, log_dir=log_dir)
            r = measure_one(name, binary, args, ctx, run_no)
            rows.append(r)
            log(f"   {name:<10} run {run_no}: {r['requests']:>7} requests "
                f"({r['rps']:,.0f} req/s, {r['errors']} errors) "
                + "  ".join(f"{role} vol {v} invol {n} writes {w}"
                            for role, (v, n, w, _) in sorted(r["roles"].items())))
    print(f"\n{args.app} {args.path} c{args.connections}, {args.seconds} s per run, "
          f"{args.workers} worker(s) on one core"
          f"{'; reactor SCHED_BATCH by hand: ' + args.batch_reactor if args.batch_reactor else ''} "
          f"(per 1000 requests: voluntary / nonvoluntary context switches / write calls)")
    print("| binary | run | requests | req/s | p99 ms | reactor | Python thread(s) | other |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        k = r["requests"] / 1000 or 1

        def cell(role):
            v, n, w, t = r["roles"].get(role, (0, 0, 0, 0))
            return (f"{v / k:.1f} / {n / k:.1f} / {w / k:.1f}"
                    + (f" ({t} threads)" if t > 1 else ""))

        print(f"| {r['name']} | {r['run']} | {r['requests']:,} | {r['rps']:,.0f} | "
              f"{r['p99_ms']:.2f} | {cell('reactor')} | {cell('python')} | {cell('other')} |")


if __name__ == "__main__":
    main()
