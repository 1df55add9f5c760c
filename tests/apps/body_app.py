"""Response bodies of every shape, for framing tests; PATH_INFO picks one.

/single   one-chunk list            /empty      empty list
/stream   generator, three chunks   /status?N   status N with a body
/cl_short declares 5, yields 10     /cl_long    declares 100, yields 10
/cl_long_stream  declares 100, streams 10
/echo     the request path, for keep-alive and pipelining order checks
/list3    three-item list           /tuple      two-item tuple
/str_item a list whose second item is a str (not bytes)
/close    a list body with the app's own Connection: close
/declared declares Content-Length: 42; 42 bytes for GET, an empty list
          for HEAD (as frameworks answer HEAD)
"""

TEXT = ("Content-Type", "text/plain")
REASONS = {"200": "OK", "204": "No Content", "304": "Not Modified"}


def stream():
    yield b"chunk-one;"
    yield b"chunk-two;"
    yield b"chunk-three"


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/single":
        start_response("200 OK", [TEXT])
        return [b"hello world"]
    if path == "/empty":
        start_response("200 OK", [TEXT])
        return []
    if path == "/stream":
        start_response("200 OK", [TEXT])
        return stream()
    if path == "/status":
        code = environ["QUERY_STRING"]
        start_response(f"{code} {REASONS.get(code, 'Whatever')}", [])
        return [b"a body the server must not send"]
    if path == "/cl_short":
        start_response("200 OK", [TEXT, ("Content-Length", "5")])
        return [b"0123456789"]
    if path == "/cl_long":
        start_response("200 OK", [TEXT, ("Content-Length", "100")])
        return [b"0123456789"]
    if path == "/cl_long_stream":
        start_response("200 OK", [TEXT, ("Content-Length", "100")])
        return iter([b"01234", b"56789"])
    if path == "/list3":
        start_response("200 OK", [TEXT])
        return [b"one;", b"", b"three"]
    if path == "/tuple":
        start_response("200 OK", [TEXT])
        return (b"x", b"y")
    if path == "/str_item":
        start_response("200 OK", [TEXT])
        return [b"bytes", "a str"]
    if path == "/close":
        start_response("200 OK", [TEXT, ("Connection", "close")])
        return [b"bye"]
    if path == "/declared":
        start_response("200 OK", [TEXT, ("Content-Length", "42")])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"x" * 42]
    if path.startswith("/echo"):
        start_response("200 OK", [TEXT])
        return [f"{environ['REQUEST_METHOD']} {path}".encode("latin-1")]
    start_response("404 Not Found", [TEXT])
    return [b"not found"]
