"""Reads wsgi.input in the way PATH_INFO names and reports each piece it
got as one hex-encoded line, so the test can compare exact bytes.

/read            read()                    /read_n?N     read(N) until b''
/readline        readline() until b''      /readline_n?N readline(N) until b''
/readlines       readlines()               /readlines_hint?N  readlines(N),
                 then a ``--`` line and the hex of read() for the rest
/iter            for line in wsgi.input    /ignore       never touches the body
"""

SEP = object()


def pieces(inp, mode, arg):
    if mode == "read":
        return [inp.read()]
    if mode == "read_n":
        return list(iter(lambda: inp.read(arg), b""))
    if mode == "readline":
        return list(iter(inp.readline, b""))
    if mode == "readline_n":
        return list(iter(lambda: inp.readline(arg), b""))
    if mode == "readlines":
        return inp.readlines()
    if mode == "readlines_hint":
        first = inp.readlines(arg)
        return first + [SEP, inp.read()]
    if mode == "iter":
        return [line for line in inp]
    raise LookupError(mode)


def app(environ, start_response):
    mode = environ["PATH_INFO"].strip("/")
    if mode == "ignore":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ignored"]
    arg = int(environ["QUERY_STRING"] or 0)
    got = pieces(environ["wsgi.input"], mode, arg)
    bad = [type(p).__name__ for p in got if p is not SEP and not isinstance(p, bytes)]
    lines = ["--" if p is SEP else p.hex() for p in got]
    start_response("200 OK", [("Content-Type", "text/plain")])
    if bad:
        return [f"non-bytes pieces: {bad}\n".encode()]
    return [("\n".join(lines) + "\n").encode("ascii")]
