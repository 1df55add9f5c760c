"""The WSGI app every server in the load harness runs: one path per scenario.

    /hello   13-byte "Hello, world!"
    /64k     64 KiB body in one piece, with Content-Length
    /stream  1 MiB as an iterator of 16 chunks of 64 KiB, no Content-Length
    /upload  reads the whole request body (wsgi.input) and answers its size
    /ignore  answers like /hello without touching the request body (a POST
             whose body the server must drain, or close the connection)
    /sleep   sleeps 1 s (a long-poll), then answers like /hello

Nothing here allocates per request beyond what the scenario is about: the
bodies are built once at import.
"""

import time

HELLO = b"Hello, world!"
BODY_64K = b"x" * (64 * 1024)
CHUNK = b"y" * (64 * 1024)
STREAM_CHUNKS = 16  # 16 x 64 KiB = 1 MiB
READ_SIZE = 64 * 1024

TEXT = [("Content-Type", "text/plain")]


def _plain(start_response, body):
    start_response("200 OK", TEXT + [("Content-Length", str(len(body)))])
    return [body]


def _stream():
    for _ in range(STREAM_CHUNKS):
        yield CHUNK


def _read_all(environ):
    """Read the request body in 64 KiB pieces; return how many bytes came."""
    stream = environ["wsgi.input"]
    try:
        left = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        left = 0
    total = 0
    while left > 0:
        piece = stream.read(min(READ_SIZE, left))
        if not piece:
            break
        total += len(piece)
        left -= len(piece)
    return total


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/hello":
        return _plain(start_response, HELLO)
    if path == "/64k":
        return _plain(start_response, BODY_64K)
    if path == "/stream":
        start_response("200 OK", TEXT)
        return _stream()
    if path == "/upload":
        return _plain(start_response, str(_read_all(environ)).encode())
    if path == "/ignore":
        return _plain(start_response, HELLO)
    if path == "/sleep":
        time.sleep(1.0)
        return _plain(start_response, HELLO)
    start_response("404 Not Found", TEXT + [("Content-Length", "9")])
    return [b"not found"]


application = app
