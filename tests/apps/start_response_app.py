"""Exercises PEP 3333's start_response rules; PATH_INFO picks the case.

Bad statuses and headers are passed straight to start_response and not
caught, so the server must refuse them (500 + log). The exc_info and
"called twice" cases report what happened in the body or on stderr.
"""

import sys

TEXT = ("Content-Type", "text/plain")

# Each bad case: (status, headers). The bad header's name starts with
# "X-Evil-<case>" so the test can look for it in the error log.
BAD = {
    "/bytes_status": (b"200 OK", [TEXT]),
    "/crlf_value": ("200 OK", [TEXT, ("X-Evil-crlf-value", "a\r\nX-Injected: yes")]),
    "/lf_value": ("200 OK", [TEXT, ("X-Evil-lf-value", "a\nX-Injected: yes")]),
    "/nul_value": ("200 OK", [TEXT, ("X-Evil-nul-value", "a\x00b")]),
    "/crlf_name": ("200 OK", [TEXT, ("X-Evil-crlf-name\r\nX-Injected", "yes")]),
    "/space_name": ("200 OK", [TEXT, ("X-Evil-space-name Name", "yes")]),
    "/colon_name": ("200 OK", [TEXT, ("X-Evil-colon-name:Name", "yes")]),
    "/int_value": ("200 OK", [TEXT, ("X-Evil-int-value", 5)]),
    "/bytes_value": ("200 OK", [TEXT, ("X-Evil-bytes-value", b"yes")]),
    "/non_latin1_value": ("200 OK", [TEXT, ("X-Evil-non-latin1", "price \u20ac")]),
}


def exc_info_before(environ, start_response):
    start_response("200 OK", [TEXT, ("X-First", "1")])
    try:
        raise ValueError("handled before anything was sent")
    except ValueError:
        start_response("503 Service Unavailable", [TEXT, ("X-Second", "1")], sys.exc_info())
    return [b"replaced"]


def exc_info_after(environ, start_response):
    start_response("200 OK", [TEXT])
    yield b"first-chunk;"
    try:
        raise RuntimeError("late-failure-marker")
    except RuntimeError:
        try:
            start_response("500 Internal Server Error", [TEXT], sys.exc_info())
        except BaseException as exc:
            print(f"exc_info re-raised: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            raise
    yield b"start_response did not re-raise"


def twice(environ, start_response):
    start_response("200 OK", [TEXT])
    try:
        start_response("201 Created", [TEXT])
    except Exception as exc:
        return [f"raised {type(exc).__name__}".encode()]
    return [b"not raised"]


def write_only(environ, start_response):
    write = start_response("200 OK", [TEXT])
    write(b"hello ")
    write(b"")
    write(b"world")
    return []


def write_mixed(environ, start_response):
    write = start_response("200 OK", [TEXT])
    write(b"a-")
    write(b"b-")
    return [b"c-", b"d"]


def latin1(environ, start_response):
    # PEP 3333: header values are str whose chars stand for bytes (latin-1).
    start_response("200 OK", [TEXT, ("X-Latin", "caf\xe9")])
    return [b"latin-1 header sent"]


def lazy(environ, start_response):
    # A generator app: nothing runs until the server iterates.
    yield b""
    start_response("201 Created", [TEXT, ("X-Lazy", "yes")])
    yield b""
    yield b"lazy-body"


ROUTES = {
    "/exc_info_before": exc_info_before,
    "/exc_info_after": exc_info_after,
    "/twice": twice,
    "/write_only": write_only,
    "/write_mixed": write_mixed,
    "/lazy": lazy,
    "/latin1": latin1,
}


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path in BAD:
        status, headers = BAD[path]
        start_response(status, headers)
        return [b"this body must never be sent"]
    if path in ROUTES:
        return ROUTES[path](environ, start_response)
    start_response("404 Not Found", [TEXT])
    return [b"no such case"]
