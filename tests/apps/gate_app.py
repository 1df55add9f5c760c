"""Two requests that depend on each other, for the concurrency test.

/wait?TAG prints ``gate waiting TAG`` to stderr, then blocks until
/open?TAG is requested (or 10 s pass) and reports which happened, so a
server that runs requests one at a time shows up as ``timed out``.
"""

import sys
import threading

LOCK = threading.Lock()
GATES = {}


def gate(tag):
    with LOCK:
        return GATES.setdefault(tag, threading.Event())


def app(environ, start_response):
    path, tag = environ["PATH_INFO"], environ["QUERY_STRING"]
    if path == "/wait":
        print(f"gate waiting {tag}", file=sys.stderr, flush=True)
        body = b"opened" if gate(tag).wait(10) else b"timed out"
    elif path == "/open":
        gate(tag).set()
        body = b"done"
    else:
        body = b"unknown"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
