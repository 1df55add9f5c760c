"""Does a server give memory back after many connections close? Cycles of
N keep-alive connections (one request each) opened, held, and closed; the
RSS of a process tree after each. Used by the harness's `rss-cycles`
scenario (one worker).

    python rss_cycles.py HOST PORT N CYCLES PID [PATH]

One JSON line on stdout: {"before_kib": x, "peak_kib": [per cycle],
"after_kib": [per cycle, 2 s after the connections closed], "opened":
[per cycle], "threads": [per cycle, after]}. A server that gives memory back ends each cycle near
`before`; one that keeps it for reuse stays level from cycle to cycle; one
that leaks climbs. Bounded: each cycle gets 60 s, the script 300 s.
"""

import asyncio
import json
import os
import sys
import time

CONNECT_AT_ONCE = 256
SETTLE = 2.0  # seconds after closing before RSS is read
HARD_LIMIT = 300.0


def tree_status(root, field):
    """The sum of a numeric /proc/PID/status field over the tree of root."""
    pids, frontier = {root}, [root]
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in pids:
                pids.add(child)
                frontier.append(child)
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


async def cycle(host, port, count, path):
    request = None if path == "-" else \
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    writers = []

    async def one():
        async with gate:
            reader, writer = await asyncio.open_connection(host, port)
        writers.append(writer)
        if request is not None:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            await reader.readexactly(length)

    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    await asyncio.wait(tasks, timeout=60)
    for t in tasks:
        t.cancel()
    return writers


async def main(host, port, count, cycles, pid, path):
    rss = lambda: tree_status(pid, "VmRSS")
    out = {"before_kib": rss(), "peak_kib": [], "after_kib": [], "opened": [], "threads": []}
    for _ in range(cycles):
        writers = await cycle(host, port, count, path)
        await asyncio.sleep(0.5)
        out["opened"].append(len(writers))
        out["peak_kib"].append(rss())
        for w in writers:
            w.close()
        await asyncio.sleep(SETTLE)
        out["after_kib"].append(rss())
        out["threads"].append(tree_status(pid, "Threads"))
    print(json.dumps(out))


if __name__ == "__main__":
    host, port, count, cycles, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        int(sys.argv[4]), int(sys.argv[5])
    path = sys.argv[6] if len(sys.argv) > 6 else "/hello"
    started = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(main(host, port, count, cycles, pid, path), HARD_LIMIT))
    except asyncio.TimeoutError:
        print(json.dumps({"error": f"gave up after {HARD_LIMIT:.0f} s"}))
        sys.exit(1)
