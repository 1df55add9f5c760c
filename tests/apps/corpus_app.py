"""The app behind the raw-request corpus (tests/corpus.rs, tests/corpus/).

Every call is recorded before the app does anything else, so no request
that reaches Python can go unnoticed: one line appended to the file named
by $CORPUS_CALLS,

    <REMOTE_ADDR> <REQUEST_METHOD> <PATH_INFO>[?<QUERY_STRING>]

written with a single os.write on an O_APPEND descriptor (one line, never
interleaved with another thread's). The runner matches lines to cases by
REMOTE_ADDR: each case connects from its own loopback address.

Paths (PATH_INFO):

/echo...   reads wsgi.input to the end, then 200 with the report. A failed
           read is not caught: the server decides the status.
/noread    403 without touching wsgi.input, and keeps the environ (so
           wsgi.input) alive in KEPT, as Flask's abort(403) does through the
           traceback it keeps: the server cannot learn from the body being
           dropped that the app is done with it.
/readhalf  reads 5 bytes of wsgi.input, then 200 with the report.
otherwise  200 with the report, wsgi.input untouched.

The report is ``key<TAB>value`` lines: every environ value that is a str,
int, bool or tuple, plus ``corpus.body_length`` and ``corpus.body_sha256``
of what the app read, and ``corpus.report<TAB>1``. str values are written
with Python's ``unicode_escape`` codec, so a tab, a backslash or a byte the
server latin-1 decoded shows as ``\\t``, ``\\\\``, ``\\xe9`` and every line is
one environ key. The call file uses the same escaping.
"""

import hashlib
import os

KEPT = []

TEXT = ("Content-Type", "text/plain")


def escape(value):
    return value.encode("unicode_escape").decode("ascii")


def record(environ):
    target = environ.get("PATH_INFO", "")
    if environ.get("QUERY_STRING"):
        target += "?" + environ["QUERY_STRING"]
    client, method = environ.get("REMOTE_ADDR", ""), environ.get("REQUEST_METHOD", "")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    fd = os.open(os.environ["CORPUS_CALLS"], flags, 0o644)
    try:
        os.write(fd, (escape(f"{client} {method} {target}") + "\n").encode("ascii"))
    finally:
        os.close(fd)


def report(environ, body):
    lines = ["corpus.report\t1"]
    for key in sorted(environ):
        value = environ[key]
        if isinstance(value, str):
            lines.append(f"{key}\t{escape(value)}")
        elif isinstance(value, (int, bool, tuple)):
            lines.append(f"{key}\t{value}")
    if body is not None:
        lines.append(f"corpus.body_length\t{len(body)}")
        lines.append(f"corpus.body_sha256\t{hashlib.sha256(body).hexdigest()}")
    return ("\n".join(lines) + "\n").encode("ascii")


def app(environ, start_response):
    record(environ)
    path = environ["PATH_INFO"]
    if path == "/noread":
        KEPT.append(environ)
        start_response("403 Forbidden", [TEXT])
        return [b"forbidden\n"]
    body = None
    if path.startswith("/echo"):
        body = environ["wsgi.input"].read()
    elif path == "/readhalf":
        body = environ["wsgi.input"].read(5)
    start_response("200 OK", [TEXT])
    return [report(environ, body)]
