"""Apps that fail, for the failure tests; PATH_INFO picks the failure.

/raise?TAG       raises before start_response
/raise_iter?TAG  sends one chunk, then raises inside the iterable
/ok              a normal response
"""


def failing_iterable(tag):
    yield b"partial-data;"
    raise RuntimeError(f"iter-failure-marker {tag}")


def app(environ, start_response):
    path, tag = environ["PATH_INFO"], environ["QUERY_STRING"]
    if path == "/raise":
        raise RuntimeError(f"app-failure-marker {tag}")
    if path == "/raise_iter":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return failing_iterable(tag)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
