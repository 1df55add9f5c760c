"""An app for the concurrency, backpressure, limits and timeout tests.

Every request except ``/count`` and ``/events`` is counted,
so a test can tell whether a request reached the app at all. Markers the
tests wait for are printed to stderr (the server's error log).

/hello            ``hello``
/sleep?S          ``time.sleep(S)`` (prints ``sleep start TAG`` first, where
                  TAG is the ``X-Tag`` header), then ``slept``
/busy?S           a busy Python loop for up to S seconds (so an asynchronous
                  exception lands at once); reports ``finished`` if it ran out
/stream?N         N chunks of 64 KiB from a generator; its close() prints
                  ``stream closed after K chunks``
/upload?DELAY     reads wsgi.input in 64 KiB pieces, sleeping DELAY seconds
                  between reads, and reports the byte count
/read             wsgi.input.read() in one call, reports the byte count
/contend?S        starts a thread that, for S seconds, holds a lock for 15 ms
                  of busy Python at a time, letting go for 1 ms in between
/behind           takes and drops that lock: waits behind the holder
/count            how many counted requests the app has seen
/events           one line per exception the app saw (``path<TAB>Type``)

An exception raised by wsgi.input or by the request timeout is recorded in
/events, printed as ``EVENT path Type``, and re-raised.
"""

import ctypes
import sys
import threading
import time

LOCK = threading.Lock()
HELD = threading.Lock()
HOLDER = None
PR_SET_NAME = 15
COUNT = 0
EVENTS = []
CHUNK = b"x" * 65536


def log(message):
    # One write per line: print() writes the newline separately, so lines
    # from concurrent threads could interleave.
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def event(path, exc):
    name = type(exc).__name__
    with LOCK:
        EVENTS.append(f"{path}\t{name}")
    log(f"EVENT {path} {name} {exc}")


def stream(n):
    sent = 0
    try:
        for _ in range(n):
            yield CHUNK
            sent += 1
    finally:
        log(f"stream closed after {sent} chunks")


def busy(seconds):
    end = time.monotonic() + seconds
    spins = 0
    while time.monotonic() < end:
        spins += 1
    return spins


def hold(seconds):
    # A new thread inherits its creator's name (aserve-py-N); this one is
    # not a pool thread, and must not look like one.
    ctypes.CDLL(None).prctl(PR_SET_NAME, b"lock-holder", 0, 0, 0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with HELD:
            busy(0.015)
        time.sleep(0.001)


def read_all(inp, delay):
    total = 0
    while True:
        piece = inp.read(65536)
        if not piece:
            return total
        total += len(piece)
        if delay:
            time.sleep(delay)


def app(environ, start_response):
    global COUNT, HOLDER
    path, query = environ["PATH_INFO"], environ["QUERY_STRING"]
    if path not in ("/count", "/events"):
        with LOCK:
            COUNT += 1
    headers = [("Content-Type", "text/plain")]
    if path == "/hello":
        body = b"hello"
    elif path == "/sleep":
        tag = environ.get("HTTP_X_TAG", "")
        log(f"sleep start {tag}")
        time.sleep(float(query or 1))
        body = b"slept"
    elif path == "/busy":
        try:
            busy(float(query or 10))
        except TimeoutError as e:
            event(path, e)
            raise
        body = b"finished"
    elif path == "/stream":
        start_response("200 OK", headers)
        return stream(int(query))
    elif path in ("/upload", "/read"):
        inp = environ["wsgi.input"]
        try:
            if path == "/read":
                total = len(inp.read())
            else:
                total = read_all(inp, float(query or 0))
        except Exception as e:
            event(path, e)
            raise
        body = str(total).encode()
    elif path == "/contend":
        with LOCK:
            if HOLDER is None or not HOLDER.is_alive():
                HOLDER = threading.Thread(target=hold, args=(float(query),), daemon=True)
                HOLDER.start()
        body = b"holding"
    elif path == "/behind":
        with HELD:
            body = b"through"
    elif path == "/count":
        with LOCK:
            body = str(COUNT).encode()
    elif path == "/events":
        with LOCK:
            body = "".join(line + "\n" for line in EVENTS).encode()
    else:
        start_response("404 Not Found", headers)
        return [b"unknown"]
    start_response("200 OK", headers)
    return [body]
