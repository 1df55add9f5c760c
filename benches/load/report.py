"""Turns the raw results into tables (plain text for the terminal, markdown
for the results file) and checks the issue's targets against them."""

import statistics

MIB = 1024.0


def _median(rounds, key):
    values = [r[key] for r in rounds if key in r]
    return statistics.median(values) if values else None


def longpoll_pct(r, connections, seconds, sleep_s=1.0):
    """Long-poll efficiency of one round, in % of the ideal c / sleep.

    The smaller of two estimates: Little's law (with c connections in a
    closed loop, throughput = c / mean latency; scaled by the share of
    requests that did not fail), which has no window-edge quantisation but
    ignores requests still queued when the round ends; and the plain count,
    completed / (c x (d - sleep) / sleep), which sees those queued requests
    but allows for the edge (no request can finish in the first second)."""
    if not r.get("mean_us") or not r["requests"]:
        return 0.0
    share = r["requests"] / (r["requests"] + r["errors"])
    little = 100.0 * sleep_s * 1e6 / r["mean_us"] * share
    counted = 100.0 * r["requests"] / (connections * (seconds - sleep_s) / sleep_s)
    return min(little, counted)


def summarize(rounds, longpoll=None):
    """One row from a server's rounds in one scenario; `longpoll` is
    (connections, seconds) for the long-poll scenario."""
    ok = [r for r in rounds if "error" not in r]
    if not ok:
        return {"error": rounds[0].get("error", "no rounds") if rounds else "not run"}
    return {
        "ideal_pct": statistics.median(longpoll_pct(r, *longpoll) for r in ok) if longpoll else None,
        "rps": _median(ok, "rps"),
        "p50_ms": _median(ok, "p50_us") / 1000,
        "p99_ms": _median(ok, "p99_us") / 1000,
        "errors": sum(r["errors"] for r in ok),
        "requests": sum(r["requests"] for r in ok),
        "rss_mib": max(r.get("rss_peak_kib", 0) for r in ok) / MIB,
        "rounds": len(ok),
        "failed_rounds": len(rounds) - len(ok),
        "all_rps": [round(r["rps"]) for r in ok],
    }


def _fmt(value, spec):
    return "—" if value is None else format(value, spec)


def scenario_rows(scenario, by_server, order):
    """Header and rows (lists of strings) for one load scenario."""
    longpoll = (scenario.connections, scenario.seconds) if scenario.ideal_rps else None
    rows = {name: summarize(by_server[name], longpoll) for name in order if name in by_server}
    base = rows.get("aserve", {}).get("rps")
    header = ["server", "req/s (median)", "req/s ÷ aserve", "p50 ms", "p99 ms", "errors",
              "peak RSS MiB", "req/s per round"]
    if scenario.ideal_rps:
        header.insert(3, "% of ideal")
    out = []
    for name, row in rows.items():
        if "error" in row:
            cells = [name, "failed: " + row["error"][:60]] + [""] * (len(header) - 2)
            out.append(cells)
            continue
        ratio = row["rps"] / base if base else None
        errors = f"{row['errors']}" + (f" ({100 * row['errors'] / max(1, row['requests'] + row['errors']):.1f}%)"
                                      if row["errors"] else "")
        cells = [name, _fmt(row["rps"], ",.0f"), _fmt(ratio, ".2f") + "x" if ratio else "—",
                 _fmt(row["p50_ms"], ".2f"), _fmt(row["p99_ms"], ".2f"), errors,
                 _fmt(row["rss_mib"], ".1f"), " / ".join(str(v) for v in row["all_rps"])]
        if scenario.ideal_rps:
            cells.insert(3, _fmt(row["ideal_pct"], ".1f"))
        out.append(cells)
    return header, out


def idle_rows(by_server, order):
    header = ["server", "connections opened", "answered", "still open", "RSS before MiB",
              "RSS after MiB", "KiB per connection"]
    out = []
    for name in order:
        r = by_server.get(name)
        if r is None:
            continue
        if "error" in r and "still_open" not in r:
            out.append([name, "failed: " + r["error"][:60]] + [""] * 5)
            continue
        per = r.get("kib_per_conn")
        out.append([name, str(r.get("opened", "—")), str(r.get("answered", "—")),
                    str(r.get("still_open", "—")), _fmt(r["rss_before_kib"] / MIB, ".1f"),
                    _fmt(r.get("rss_after_kib", 0) / MIB, ".1f"),
                    _fmt(per, ".1f") if per is not None else "n/a (server closed them)"])
    return header, out


def special_summary(scenario, r):
    """One line for the log about a slow-heads or rss-cycles result."""
    if "error" in r:
        return "error " + r["error"][:120]
    if scenario.special == "slow-heads":
        return (f"{r['requests']} requests, {r['failures']} failed, p50 {r['p50_ms']} ms, "
                f"p99 {r['p99_ms']} ms, attackers reopened {r['attack'].get('reopened')}")
    return (f"RSS before {r['before_kib'] / MIB:.1f} MiB, after each cycle "
            + " / ".join(f"{v / MIB:.1f}" for v in r["after_kib"]) + " MiB")


def special_rows(scenario, by_server, order):
    """Header and rows for the slow-heads or rss-cycles scenario."""
    if scenario.special == "slow-heads":
        header = ["server", "normal requests", "failed", "p50 ms", "p99 ms", "max ms",
                  "attack connections reopened", "first failure"]
    else:
        header = ["server", "RSS before MiB", "peak MiB per cycle", "RSS after MiB per cycle",
                  "threads after"]
    out = []
    for name in order:
        r = by_server.get(name)
        if r is None:
            continue
        if "error" in r:
            out.append([name, "failed: " + r["error"][:60]] + [""] * (len(header) - 2))
        elif scenario.special == "slow-heads":
            out.append([name, str(r["requests"]), str(r["failures"]), _fmt(r["p50_ms"], ".2f"),
                        _fmt(r["p99_ms"], ".2f"), _fmt(r["max_ms"], ".2f"),
                        str(r["attack"].get("reopened", "—")), (r["first_failure"] or "")[:60]])
        else:
            mib = lambda values: " / ".join(f"{v / MIB:.1f}" for v in values)
            out.append([name, f"{r['before_kib'] / MIB:.1f}", mib(r["peak_kib"]),
                        mib(r["after_kib"]), " / ".join(str(t) for t in r["threads"])])
    return header, out


def text_table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def md_table(header, rows):
    esc = lambda c: str(c).replace("|", "\\|")
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _row(results, scenario, server, longpoll=None):
    rounds = results.get(scenario, {}).get(server)
    if not rounds:
        return None
    row = summarize(rounds, longpoll)
    return None if "error" in row else row


def targets(results, scenarios):
    """[(target, measured, verdict)] for the issue's targets."""
    out = []

    def ratio_check(label, scen, peer, key, want, higher_is_better=True):
        a, p = _row(results, scen, "aserve"), _row(results, scen, peer)
        if not a or not p or not p[key]:
            out.append((label, "not measured", "n/a"))
            return
        value = a[key] / p[key]
        ok = value >= want if higher_is_better else value <= want
        out.append((label, f"{value:.2f}x ({a[key]:,.2f} vs {p[key]:,.2f})", "PASS" if ok else "MISS"))

    for scen in ("hello-c100", "hello-c1000"):
        ratio_check(f"{scen}: req/s ≥ 1.3x granian", scen, "granian", "rps", 1.3)
        ratio_check(f"{scen}: req/s ≥ 5x gunicorn-gevent", scen, "gunicorn-gevent", "rps", 5.0)
        ratio_check(f"{scen}: req/s ≥ 0.5x reference", scen, "reference", "rps", 0.5)
    ratio_check("hello-c1000: p99 ≤ 0.5x granian's", "hello-c1000", "granian", "p99_ms", 0.5,
                higher_is_better=False)
    longpoll = next((s for s in scenarios if s.name.startswith("longpoll")), None)
    row = _row(results, longpoll.name, "aserve",
               (longpoll.connections, longpoll.seconds)) if longpoll else None
    if row:
        pct = row["ideal_pct"]
        out.append((f"{longpoll.name}: ≥ 95% of ideal (one worker)", f"{pct:.1f}%",
                    "PASS" if pct >= 95 else "MISS"))
    else:
        out.append(("long-poll: ≥ 95% of ideal", "not measured", "n/a"))
    idle = results.get("idle", {}).get("aserve", {})
    per = idle.get("kib_per_conn") if isinstance(idle, dict) else None
    if per is not None:
        out.append((f"idle: ≤ 8 KiB RSS per connection ({idle.get('still_open')} held)",
                    f"{per:.1f} KiB", "PASS" if per <= 8 else "MISS"))
    else:
        out.append(("idle: ≤ 8 KiB RSS per connection", "not measured", "n/a"))
    silent = results.get("never-speaking", {}).get("aserve", {})
    per = silent.get("kib_per_conn") if isinstance(silent, dict) else None
    out.append(("never-speaking: ≤ 4 KiB RSS per connection",
                f"{per:.1f} KiB" if per is not None else "not measured",
                ("PASS" if per <= 4 else "MISS") if per is not None else "n/a"))
    slow = results.get("slow-heads", {}).get("aserve", {})
    if slow and "error" not in slow and slow.get("p99_ms") is not None:
        ok = slow["failures"] == 0 and slow["p99_ms"] < 100
        out.append(("slow-heads: normal client p99 < 100 ms, no failures",
                    f"p99 {slow['p99_ms']:.1f} ms, {slow['failures']} failed of "
                    f"{slow['requests']}", "PASS" if ok else "MISS"))
    else:
        out.append(("slow-heads: normal client p99 < 100 ms, no failures", "not measured", "n/a"))
    cycles = results.get("rss-cycles", {}).get("aserve", {})
    if cycles and "error" not in cycles:
        last = cycles["after_kib"][-1] - cycles["before_kib"]
        out.append(("rss-cycles: RSS after the connections closed ≤ before + 8 MiB",
                    f"+{last / MIB:.1f} MiB (peak +"
                    f"{(max(cycles['peak_kib']) - cycles['before_kib']) / MIB:.1f})",
                    "PASS" if last <= 8 * MIB else "MISS"))
    else:
        out.append(("rss-cycles: RSS after the connections closed ≤ before + 8 MiB",
                    "not measured", "n/a"))
    return out
