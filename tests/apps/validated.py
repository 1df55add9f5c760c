"""A small app wrapped in the stdlib's ``wsgiref.validate.validator``, for
the validator test. WSGIWarning is turned into an error, so any complaint
from the validator shows up as a failed request and a traceback in the log.

/          hello              /query      echoes QUERY_STRING
/post      reads the body with read(n) and readline(), reports its size
/stream    a generator        /write      uses the write() callable
/file      this file, through wsgi.file_wrapper
anything else: 404
"""

import warnings
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)

TEXT = ("Content-Type", "text/plain")


def read_body(environ):
    inp = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        return inp.read(int(length))
    data = b""
    while True:
        line = inp.readline()
        if not line:
            return data
        data += line


def stream():
    for i in range(5):
        yield b"stream chunk %d\n" % i


def inner(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/":
        start_response("200 OK", [TEXT])
        return [b"hello\n"]
    if path == "/query":
        start_response("200 OK", [TEXT])
        return [environ["QUERY_STRING"].encode("latin-1")]
    if path == "/post":
        body = read_body(environ)
        start_response("200 OK", [TEXT])
        return [b"received %d bytes\n" % len(body)]
    if path == "/stream":
        start_response("200 OK", [TEXT])
        return stream()
    if path == "/write":
        write = start_response("200 OK", [TEXT])
        write(b"written;")
        return [b"returned\n"]
    if path == "/file":
        start_response("200 OK", [("Content-Type", "text/x-python")])
        return environ["wsgi.file_wrapper"](open(__file__, "rb"), 1024)
    start_response("404 Not Found", [TEXT])
    return [b"not found\n"]


app = validator(inner)
