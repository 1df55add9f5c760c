"""The app behind nginx and HAProxy in the proxy tests (``tests/proxy.rs``).

Every call is printed to stderr (the server's error log) as one line,

    PROXY-APP-CALL <METHOD> <PATH?QUERY> <PROTOCOL> port=<REMOTE_PORT>

before the app does anything else, so a test can list every request the
app was given, including ones nobody should have sent it.

/noread     403 without touching wsgi.input; the environ is kept alive in
            a module-level list, as Flask's ``abort(403)`` keeps it alive
            through the traceback
/echo       reads the whole body and answers ``key<TAB>value`` lines:
            ``request`` (the request line it saw), ``length`` and ``sha256``
            of the body, ``port`` (REMOTE_PORT: the proxy's upstream
            connection)
/internal   a path no client of the proxy ever asks for; answers
            ``INTERNAL-RESPONSE`` so a desynchronised reply is recognisable
anything else: 404
"""

import hashlib
import sys

KEPT = []


def log(message):
    # One write per line: print() writes the newline separately, so lines
    # from concurrent threads could interleave.
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def target(environ):
    path, query = environ["PATH_INFO"], environ["QUERY_STRING"]
    return f"{path}?{query}" if query else path


def app(environ, start_response):
    path = environ["PATH_INFO"]
    line = f"{environ['REQUEST_METHOD']} {target(environ)} {environ['SERVER_PROTOCOL']}"
    log(f"PROXY-APP-CALL {line} port={environ.get('REMOTE_PORT', '')}")
    text = [("Content-Type", "text/plain")]
    if path == "/noread":
        KEPT.append(environ)
        start_response("403 Forbidden", text)
        return [b"forbidden\n"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        out = (
            f"request\t{line}\n"
            f"length\t{len(body)}\n"
            f"sha256\t{hashlib.sha256(body).hexdigest()}\n"
            f"port\t{environ.get('REMOTE_PORT', '')}\n"
        )
        start_response("200 OK", text)
        return [out.encode()]
    if path == "/internal":
        start_response("200 OK", text)
        return [b"INTERNAL-RESPONSE\n"]
    start_response("404 Not Found", text)
    return [b"not found\n"]
