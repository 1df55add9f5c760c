"""The quick-start app: hello world, an environ dump, and an echo.

    .venv/bin/aserve --chdir examples hello:app         # after: pip install .
    cargo run --release -- --chdir examples hello:app   # the embedding binary
"""

import json


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/environ":
        shown = {k: v for k, v in environ.items() if isinstance(v, (str, int, bool))}
        body = json.dumps(shown, indent=2, sort_keys=True).encode() + b"\n"
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", environ.get("CONTENT_TYPE", "application/octet-stream"))])
        return [body]
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"Hello, world!\n"]
