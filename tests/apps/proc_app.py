"""An app for the process-manager tests: which process served a request,
slow requests to catch in flight, and a record of where it was imported.

/pid        the serving process's pid
/sleep?S    prints ``sleep start TAG`` to stderr (TAG: the ``X-Tag``
            header), sleeps S seconds (default 1), then answers ``slept TAG``
/grow?MIB   keeps MIB more MiB of written memory alive in the process, and
            answers its pid

On import, if ``PROC_APP_IMPORT_LOG`` names a file, the importing process
appends its pid to it, one line per import, so a test can tell whether the
app was imported once in the master (``--preload``) or in each worker; and
if ``PROC_APP_IMPORT_DELAY`` is set, the import takes that many seconds (a
slow-booting app).
"""

import os
import sys
import time

HELD = []

_LOG = os.environ.get("PROC_APP_IMPORT_LOG")
if _LOG:
    # One write of one short line with O_APPEND: atomic between processes.
    fd = os.open(_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)

_DELAY = os.environ.get("PROC_APP_IMPORT_DELAY")
if _DELAY:
    time.sleep(float(_DELAY))


def log(message):
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def app(environ, start_response):
    path, query = environ["PATH_INFO"], environ["QUERY_STRING"]
    if path == "/pid":
        body = str(os.getpid())
    elif path == "/sleep":
        tag = environ.get("HTTP_X_TAG", "")
        log(f"sleep start {tag}")
        time.sleep(float(query or 1))
        body = f"slept {tag}"
    elif path == "/grow":
        # Written bytes, so the pages are resident (counted in VmRSS).
        HELD.append(b"x" * (int(query) << 20))
        body = str(os.getpid())
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"unknown"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
