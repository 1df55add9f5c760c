#!/usr/bin/env python3
"""Load harness: aserve against its peers, same app, same cores, one command.

    python3 benches/load/run.py            # full run (~40 min at the defaults)
    python3 benches/load/run.py --quick    # smoke run: 2 s rounds, 1 round, c50

Builds aserve and the bare Rust reference, makes target/bench-venv with the
pinned peers (benches/load/requirements.txt), then per scenario starts each
server on 127.0.0.1, warms it up and drives it with wrk in interleaved
rounds. Prints the tables and writes them as markdown to
benches/load/results/latest.md (raw numbers beside it as latest.json).
See docs/benchmarks.md. Not part of the test suite; never run by CI.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import measure  # noqa: E402
import report  # noqa: E402
import servers as srv  # noqa: E402
import setup_env  # noqa: E402

log = setup_env.log


@dataclass
class Scenario:
    name: str
    what: str
    path: str
    connections: int
    app: str = "bench_app:app"
    script: str = "report.lua"
    reference: bool = False  # the bare Rust hello world takes part
    restart_each_round: bool = False
    seconds: int = 0  # 0: --duration
    ideal_rps: float = 0.0  # long-poll only
    idle: bool = False
    one_worker: bool = False  # the issue measures long-poll in ONE worker
    opt_in: bool = False  # runs only when named in --scenarios
    # A scenario with its own client script: "slow-heads" or "rss-cycles".
    special: str = ""


def scenarios(quick):
    c = 50 if quick else None
    return [
        Scenario("hello-c100", "13-byte hello world", "/hello", c or 100, reference=True),
        Scenario("hello-c1000", "13-byte hello world", "/hello", c or 1000,
                 reference=True),
        Scenario("64k", "64 KiB response body", "/64k", c or 100),
        Scenario("stream", "1 MiB streamed as 16 x 64 KiB chunks", "/stream", c or 100),
        Scenario("upload", "1 MiB POST body read by the app", "/upload", c or 100,
                 script="upload.lua"),
        Scenario("longpoll-c1000", "app sleeps 1 s per request", "/sleep", c or 1000,
                 restart_each_round=True, one_worker=True),
        Scenario("flask", "small Flask JSON endpoint", "/json", c or 100, app="flask_app:app"),
        Scenario("idle", "idle keep-alive connections: RSS per connection", "/hello",
                 500 if quick else 10000, reference=True, idle=True),
        Scenario("never-speaking", "connections that send nothing: RSS per connection", "-",
                 500 if quick else 10000, reference=True, idle=True),
        # Slow heads: twice the (default, per-worker) connection cap of
        # attackers sending a head one byte every 5 s; a normal client's
        # latency beside them (benches/load/slow_heads.py).
        Scenario("slow-heads", "a normal client beside slow-head attackers", "/hello",
                 200 if quick else 2000, reference=True, special="slow-heads",
                 seconds=3 if quick else 10),
        # Memory given back: cycles of connections opened and closed
        # against one worker (benches/load/rss_cycles.py).
        Scenario("rss-cycles", "connections opened and closed: RSS after each cycle",
                 "/hello", 500 if quick else 10000, reference=True, idle=True,
                 one_worker=True, special="rss-cycles"),
        # Opt-in: a small POST body the app leaves unread, which the server
        # must drain to keep the connection (or close it), and the same body
        # read by the app, for reference.
        Scenario("post1k-unread", "1 KiB POST body the app does not read", "/ignore",
                 c or 100, script="post1k.lua", opt_in=True),
        Scenario("post1k-read", "1 KiB POST body read by the app", "/upload", c or 100,
                 script="post1k.lua", opt_in=True),
    ]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", help="comma-separated subset of: "
                   + ",".join(s.name for s in srv.SERVERS))
    p.add_argument("--scenarios", help="comma-separated subset of: "
                   + ",".join(s.name for s in scenarios(False)))
    p.add_argument("--duration", type=int, default=10, help="seconds per measured round (10)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario (3)")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per server (2)")
    p.add_argument("--workers", type=int, default=1, help="worker processes per server (1)")
    p.add_argument("--quick", action="store_true",
                   help="smoke mode: 2 s rounds, 1 round, 1 s warm-up, c50, 500 idle conns")
    p.add_argument("--no-build", action="store_true", help="use the binaries already built")
    p.add_argument("--reinstall", action="store_true", help="rebuild target/bench-venv")
    p.add_argument("--aserve-bin", metavar="PATH",
                   help="measure this aserve binary instead of building the tree's")
    p.add_argument("--aserve-baseline", metavar="PATH",
                   help="also measure this aserve binary, as server aserve-baseline, "
                        "with aserve's flags (an A/B of two builds)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "latest.md"),
                   help="markdown results file (default benches/load/results/latest.md)")
    args = p.parse_args()
    if args.quick:
        args.duration, args.rounds, args.warmup = 2, 1, 1
    return args


def pick(names, available, what):
    if not names:
        return list(available)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in {a.name for a in available}]
    if unknown:
        sys.exit(f"unknown {what}: {', '.join(unknown)}")
    return [a for a in available if a.name in wanted]


class Harness:
    def __init__(self, args):
        self.args = args
        self.running = []  # every server up right now, for cleanup
        self.results = {}  # scenario -> server -> [round] (idle: server -> dict)
        self.notes = []
        self.server_core, self.load_core = setup_env.cores()

    # -- servers -----------------------------------------------------------
    def start(self, server, scenario):
        workers = 1 if scenario.one_worker else self.args.workers
        launch = srv.Launch(port=measure.free_port(), workers=workers,
                            app=scenario.app, idle=scenario.idle)
        running = srv.start(server, self.ctx, launch, self.server_core, scenario_probe(scenario))
        self.running.append(running)
        return running

    def stop(self, running, scenario=None):
        if running not in self.running:
            return
        self.running.remove(running)
        seconds, killed = srv.stop(running)
        if killed:
            self.notes.append(f"{running.server.name} did not exit within 5 s of SIGTERM"
                              f"{' after ' + scenario.name if scenario else ''}; it was killed")
        elif seconds > 2 and running.server.name == "aserve":
            self.notes.append(f"aserve took {seconds:.1f} s to exit after SIGTERM"
                              f"{' after ' + scenario.name if scenario else ''}")

    def stop_all(self):
        for running in list(self.running):
            self.stop(running)

    # -- scenarios ---------------------------------------------------------
    def participants(self, scenario):
        return [s for s in self.servers if scenario.reference or not s.hello_only]

    def warm_up(self, running, scenario):
        seconds = self.args.warmup
        if scenario.restart_each_round or scenario.idle:
            # A short hello warm-up: a 1 s long-poll warm-up would leave
            # queued requests behind in the servers that serve one at a time.
            url, conns, script = self.url(running, "/hello"), 10, "report.lua"
        else:
            url, conns, script = self.url(running, scenario.path), scenario.connections, scenario.script
        measure.wrk(url, conns, seconds, os.path.join(HERE, "lua", script), self.load_core)

    def url(self, running, path):
        return f"http://127.0.0.1:{running.port}{path}"

    def measure_round(self, running, scenario, seconds):
        with measure.RssSampler(running.pid) as rss:
            result = measure.wrk(self.url(running, scenario.path), scenario.connections, seconds,
                                 os.path.join(HERE, "lua", scenario.script), self.load_core)
        result["rss_peak_kib"] = rss.peak
        return result

    def run_load(self, scenario):
        seconds = scenario.seconds or self.args.duration
        names = self.participants(scenario)
        by_server = self.results.setdefault(scenario.name, {})
        up = {}
        try:
            if not scenario.restart_each_round:
                for server in names:
                    try:
                        up[server.name] = self.start(server, scenario)
                        self.warm_up(up[server.name], scenario)
                    except RuntimeError as e:
                        self.fail(scenario, server, e)
            for rnd in range(self.args.rounds):
                shift = rnd % len(names)
                for server in names[shift:] + names[:shift]:
                    if server.name in by_server and "error" in by_server[server.name][-1] \
                            and by_server[server.name][-1].get("startup"):
                        continue
                    running = up.get(server.name)
                    if scenario.restart_each_round:
                        try:
                            running = self.start(server, scenario)
                            self.warm_up(running, scenario)
                        except RuntimeError as e:
                            self.fail(scenario, server, e)
                            continue
                    if running is None:
                        continue
                    result = self.measure_round(running, scenario, seconds)
                    if running.proc.poll() is not None:
                        result["died"] = f"exited with {running.proc.returncode} during the round"
                        self.notes.append(f"{scenario.name}: {server.name} died during round "
                                          f"{rnd + 1}:\n{srv.tail(running.log_path, 5)}")
                    by_server.setdefault(server.name, []).append(result)
                    self.say_round(scenario, server, rnd, result)
                    if scenario.restart_each_round:
                        self.stop(running, scenario)
                    time.sleep(0.5)
        finally:
            for running in up.values():
                self.stop(running, scenario)

    def run_idle(self, scenario):
        by_server = self.results.setdefault(scenario.name, {})
        for server in self.participants(scenario):
            try:
                running = self.start(server, scenario)
            except RuntimeError as e:
                lines = [l.strip() for l in str(e).splitlines() if l.strip()]
                why = lines[0] + (f" ({lines[-1]})" if len(lines) > 1 else "")
                by_server[server.name] = {"error": why}
                self.note_once(f"{server.name} did not start ({scenario.name}): {why}")
                continue
            try:
                self.warm_up(running, scenario)
                time.sleep(0.5)
                r = measure.idle_connections(
                    os.path.join(self.ctx.venv, "bin", "python"),
                    os.path.join(HERE, "idle_conns.py"), running.port, scenario.connections,
                    scenario.path, running.pid, self.load_core)
                by_server[server.name] = r
                per = r.get("kib_per_conn")
                log(f"   {scenario.name:<15} {server.name:<17} answered {r.get('answered')}"
                    f"/{scenario.connections}, still open {r.get('still_open')}, "
                    + (f"{per:.1f} KiB/conn" if per is not None else r.get("error", "n/a")))
            finally:
                self.stop(running, scenario)

    def run_special(self, scenario):
        """A scenario whose client is its own script; one result per server."""
        by_server = self.results.setdefault(scenario.name, {})
        python = os.path.join(self.ctx.venv, "bin", "python")
        for server in self.participants(scenario):
            try:
                running = self.start(server, scenario)
            except RuntimeError as e:
                lines = [l.strip() for l in str(e).splitlines() if l.strip()]
                by_server[server.name] = {"error": lines[0]}
                self.note_once(f"{server.name} did not start ({scenario.name}): {lines[0]}")
                continue
            try:
                self.warm_up(running, scenario)
                time.sleep(0.5)
                if scenario.special == "slow-heads":
                    argv = [python, os.path.join(HERE, "slow_heads.py"), "127.0.0.1",
                            str(running.port), str(scenario.connections),
                            str(scenario.seconds or self.args.duration)]
                    limit = (scenario.seconds or self.args.duration) + 90
                else:
                    cycles = 2 if self.args.quick else 4
                    argv = [python, os.path.join(HERE, "rss_cycles.py"), "127.0.0.1",
                            str(running.port), str(scenario.connections), str(cycles),
                            str(running.pid), scenario.path]
                    limit = 320
                if self.load_core is not None:
                    argv = ["taskset", "-c", str(self.load_core), *argv]
                try:
                    out = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
                    lines = out.stdout.strip().splitlines()
                    r = json.loads(lines[-1]) if lines else {
                        "error": out.stderr.strip()[-300:] or f"exited {out.returncode}"}
                except (subprocess.TimeoutExpired, ValueError) as e:
                    r = {"error": f"{type(e).__name__}: {e}"}
                by_server[server.name] = r
                log(f"   {scenario.name:<15} {server.name:<17} {report.special_summary(scenario, r)}")
            finally:
                self.stop(running, scenario)

    def fail(self, scenario, server, error):
        lines = [l.strip() for l in str(error).splitlines() if l.strip()]
        why = lines[0] + (f" ({lines[-1]})" if len(lines) > 1 else "")
        self.results[scenario.name].setdefault(server.name, []).append(
            {"error": why, "startup": True})
        self.note_once(f"{server.name} did not start ({scenario.name}): {why}")
        log(f"   {scenario.name:<15} {server.name:<17} FAILED TO START: {why}")

    def note_once(self, note):
        """Add a note unless one starting with the same server name is there."""
        key = note.split(" ", 1)[0]
        if not any(n.startswith(key + " did not start") for n in self.notes):
            self.notes.append(note)

    def say_round(self, scenario, server, rnd, r):
        if "error" in r:
            log(f"   {scenario.name:<15} {server.name:<17} round {rnd + 1}: error {r['error']}")
            return
        log(f"   {scenario.name:<15} {server.name:<17} round {rnd + 1}: {r['rps']:>10,.0f} req/s"
            f"  p50 {r['p50_us'] / 1000:7.2f} ms  p99 {r['p99_us'] / 1000:8.2f} ms"
            f"  errors {r['errors']:<6} RSS {r['rss_peak_kib'] / 1024:6.1f} MiB")


def scenario_probe(scenario):
    return "/json" if scenario.app.startswith("flask_app") else "/hello"


def main():
    args = parse_args()
    available = [s for s in srv.SERVERS if args.aserve_baseline or not s.opt_in]
    chosen_servers = pick(args.servers, available, "servers")
    all_scenarios = scenarios(args.quick)
    chosen = pick(args.scenarios, all_scenarios if args.scenarios
                  else [s for s in all_scenarios if not s.opt_in], "scenarios")
    for s in chosen:
        if s.name.startswith("longpoll"):
            s.seconds = max(args.duration, 3 if args.quick else 5)
            s.ideal_rps = s.connections / 1.0  # every connection done once a second

    h = Harness(args)
    if args.quick:
        h.notes.append("--quick: every scenario ran at c50 with one 2 s round; the scenario "
                       "names and the targets assume the full run, so read nothing into them")

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C must reach us even when started from a shell that ignores SIGINT
    # in background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    setup_env.ensure_wrk()
    fds = setup_env.raise_fd_limit()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    if args.aserve_bin:
        aserve_bin = os.path.abspath(args.aserve_bin)
        reference = os.path.join(target, "bench-bin", "reference")
        reference = reference if os.path.exists(reference) else None
        h.notes.append(f"aserve is {aserve_bin} (--aserve-bin), not built from this tree")
    elif args.no_build:
        aserve_bin = setup_env.package_script(target)
        reference = os.path.join(target, "bench-bin", "reference")
        if not os.path.exists(aserve_bin):
            sys.exit(f"--no-build: {aserve_bin} is missing; run once without --no-build")
        reference = reference if os.path.exists(reference) else None
    else:
        aserve_bin, reference, build_notes = setup_env.build(REPO)
        h.notes += build_notes
    python = setup_env.python_for(aserve_bin)
    venv, failed = setup_env.venv(REPO, os.path.join(HERE, "requirements.txt"), python,
                                  force=args.reinstall)
    help_text = subprocess.run([aserve_bin, "--help"], capture_output=True, text=True).stdout
    log_dir = os.path.join(os.path.dirname(venv), "bench-logs")
    os.makedirs(log_dir, exist_ok=True)
    for old in os.listdir(log_dir):
        os.remove(os.path.join(log_dir, old))
    baseline = os.path.abspath(args.aserve_baseline) if args.aserve_baseline else ""
    if baseline and not os.access(baseline, os.X_OK):
        sys.exit(f"--aserve-baseline: {baseline} is not an executable")
    h.ctx = srv.Context(repo=REPO, venv=venv, apps=os.path.join(HERE, "apps"), load_dir=HERE,
                        aserve_bin=aserve_bin, reference_bin=reference or "",
                        baseline_bin=baseline,
                        aserve_has_workers="--workers" in help_text, log_dir=log_dir)

    h.servers = []
    for s in chosen_servers:
        if s.optional_package and s.optional_package in failed:
            h.notes.append(f"{s.name} skipped: `pip install {s.optional_package}` failed: "
                           f"{failed[s.optional_package]}")
        elif s.hello_only and not reference:
            h.notes.append(f"{s.name} skipped: not built")
        else:
            h.servers.append(s)
    if args.workers > 1 and not h.ctx.aserve_has_workers:
        h.notes.append(f"WARNING: aserve has no --workers yet, so it runs ONE worker while the "
                       f"peers run {args.workers}: the comparison is unequal")
    if args.workers > 1:
        h.notes += [f"{s.name} runs one process whatever --workers says ({s.note})"
                    for s in h.servers if not s.multi_worker]
    info = setup_env.machine(python)
    if h.server_core is not None:
        pinning = (f"servers pinned to core {h.server_core}, wrk and the idle client to core "
                   f"{h.load_core} (taskset)")
    else:
        pinning = "no core pinning (fewer than 2 usable cores, or no taskset)"
    revision = aserve_bin if args.aserve_bin else setup_env.revision(REPO)
    if baseline:
        revision += f"; aserve-baseline: {baseline}"
    info.update(pinning=pinning, revision=revision, fd_limit=fds, workers=args.workers,
                command="python3 benches/load/run.py " + " ".join(sys.argv[1:]))
    for n in h.notes:
        log("NOTE: " + n)
    log(f"== {pinning}; {args.rounds} round(s) of {args.duration} s; "
        f"servers: {', '.join(s.name for s in h.servers)}")

    started = time.time()
    try:
        for scenario in chosen:
            log(f"== scenario {scenario.name}: {scenario.what} (c{scenario.connections})")
            if scenario.special:
                h.run_special(scenario)
            elif scenario.idle:
                h.run_idle(scenario)
            else:
                h.run_load(scenario)
    except KeyboardInterrupt:
        log("interrupted: stopping servers, writing what was measured")
        h.notes.append("the run was interrupted; some scenarios are missing")
    finally:
        h.stop_all()
    info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    info["minutes"] = round((time.time() - started) / 60, 1)
    h.notes += log_findings(log_dir)
    write_results(args, h, chosen, info)


def log_findings(log_dir):
    """Lines in the servers' own logs that look like trouble."""
    found = []
    for name in sorted(os.listdir(log_dir)):
        with open(os.path.join(log_dir, name), errors="replace") as f:
            bad = [l.rstrip() for l in f if any(w in l for w in (
                "ERROR", "Error", "error", "panic", "Traceback", "WARN", "internal error"))]
        if bad:
            # Lines that differ only in timestamps, pids or ports count once.
            distinct = list({re.sub(r"\d+", "N", l): l[:300] for l in bad}.values())
            sample = "\n    ".join(distinct[:4])
            found.append(f"{name}: {len(bad)} error/warning line(s) in its log "
                         f"({len(distinct)} distinct), e.g.\n    {sample}")
    return found


def write_results(args, h, chosen, info):
    order = [s.name for s in h.servers]
    md = [f"# Load benchmark results\n",
          f"- command: `{info['command'].strip()}`",
          f"- machine: {info['nproc']} cores, {info['cpu']}, kernel {info['kernel']}, "
          f"{info['python']}, {info['wrk']}",
          f"- {info['pinning']}; {args.workers} worker(s) per server; "
          f"{args.rounds} round(s) of {args.duration} s after {args.warmup} s warm-up",
          f"- load average at start {' '.join(info['loadavg_start'])}, at end "
          f"{' '.join(info['loadavg_end'])}; took {info['minutes']} min",
          f"- aserve revision: {info['revision']}",
          f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}", ""]
    text = []
    for scenario in chosen:
        by_server = h.results.get(scenario.name)
        if not by_server:
            continue
        if scenario.special:
            header, rows = report.special_rows(scenario, by_server, order)
            title = f"{scenario.name}: {scenario.connections} {scenario.what}"
        elif scenario.idle:
            header, rows = report.idle_rows(by_server, order)
            title = f"{scenario.name}: {scenario.connections} {scenario.what}"
        else:
            header, rows = report.scenario_rows(scenario, by_server, order)
            title = f"{scenario.name}: {scenario.what}, c{scenario.connections}"
            if scenario.ideal_rps:
                title += f", {scenario.seconds} s rounds, ideal {scenario.ideal_rps:,.0f} req/s"
        text += ["", title, report.text_table(header, rows)]
        md += [f"## {title}", "", report.md_table(header, rows), ""]
    checks = report.targets(h.results, chosen)
    text += ["", "targets (aserve vs peer)",
             report.text_table(["target", "measured", "verdict"], checks)]
    md += ["## Targets", "", report.md_table(["target", "measured", "verdict"], checks), ""]
    counts = {}
    for n in h.notes:
        counts[n] = counts.get(n, 0) + 1
    h.notes = [n + (f" (x{c})" if c > 1 else "") for n, c in counts.items()]
    if h.notes:
        text += ["", "notes:"] + ["- " + n for n in h.notes]
        md += ["## Notes", ""] + ["- " + n.replace("\n", "\n  ") for n in h.notes] + [""]
    print("\n".join(text))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(md))
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"info": info, "results": h.results, "notes": h.notes}, f, indent=1)
    log(f"== wrote {args.out}")


if __name__ == "__main__":
    main()
