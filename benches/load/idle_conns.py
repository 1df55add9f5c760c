"""Opens N keep-alive connections to a server, makes one request on each,
then holds them idle until told to stop. Used by the harness's `idle`
scenario to measure the server's memory per idle connection, and, with
PATH `-`, by `never-speaking`: the connections are opened and send nothing
at all (`answered` then counts connections the server accepted and has not
closed after a moment, which is what a silent client can tell).

    python idle_conns.py HOST PORT N PATH

Protocol with the harness (one JSON line each on stdout):
1. after opening: {"opened": n, "answered": n, "failed": n, "seconds": s}
2. then it waits for a line on stdin (the harness samples RSS meanwhile);
3. {"still_open": n}: answered connections the server has not closed;
   then everything is closed and the script exits.

Everything is bounded: connecting and the first request get DEADLINE
seconds in all, and the whole script exits after HARD_LIMIT seconds.
"""

import asyncio
import json
import sys
import time

CONNECT_AT_ONCE = 256  # connections in the middle of a handshake at a time
DEADLINE = 20.0  # seconds for all connects + first responses
HARD_LIMIT = 180.0  # seconds for the whole script


class Conn:
    def __init__(self):
        self.reader = None
        self.writer = None
        self.answered = False


async def open_one(host, port, request, gate, conn):
    async with gate:
        conn.reader, conn.writer = await asyncio.open_connection(host, port)
    if request is None:
        # Silent: a server that refuses the connection closes it at once.
        await asyncio.sleep(0.5)
        conn.answered = not conn.reader.at_eof()
        return
    conn.writer.write(request)
    head = await conn.reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await conn.reader.readexactly(length)
    conn.answered = True


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main(host, port, count, path):
    request = None if path == "-" else f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    conns = [Conn() for _ in range(count)]
    started = time.monotonic()
    tasks = [asyncio.ensure_future(open_one(host, port, request, gate, c)) for c in conns]
    done, pending = await asyncio.wait(tasks, timeout=DEADLINE)
    for task in pending:
        task.cancel()
    failed = sum(1 for t in done if t.exception() is not None) + len(pending)
    emit({
        "opened": sum(1 for c in conns if c.writer is not None),
        "answered": sum(1 for c in conns if c.answered),
        "failed": failed,
        "seconds": round(time.monotonic() - started, 2),
    })
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    await asyncio.sleep(0.05)  # let pending EOFs reach the readers
    still_open = sum(
        1 for c in conns
        if c.answered and not c.reader.at_eof() and c.reader.exception() is None
    )
    emit({"still_open": still_open})
    for c in conns:
        if c.writer is not None:
            c.writer.close()


if __name__ == "__main__":
    host, port, count, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    try:
        asyncio.run(asyncio.wait_for(main(host, port, count, path), HARD_LIMIT))
    except asyncio.TimeoutError:
        emit({"error": f"gave up after {HARD_LIMIT:.0f} s"})
        sys.exit(1)
