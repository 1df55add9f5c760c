"""Apps for the criterion microbenchmarks of the WSGI bridge (benches/bridge.rs).

Each isolates one piece of per-request work: the environ the server builds,
start_response with many headers, and handing many body chunks over.
"""

HELLO = [b"Hello, world!"]


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return HELLO


HEADERS = [("X-Header-%d" % i, "value-%d" % i) for i in range(20)]


def many_headers(environ, start_response):
    start_response("200 OK", HEADERS)
    return HELLO


CHUNK = b"x" * 1024


def chunks(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    n = int(environ["QUERY_STRING"] or 1)
    return (CHUNK for _ in range(n))
