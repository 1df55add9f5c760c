"""An app for the health and metrics tests: answers by path.

/missing -> 404, /boom -> 500, /sleep?s=N -> sleeps N seconds then 200,
/pid -> the worker's pid, anything else -> 200 "ok".
"""

import os
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if environ["REQUEST_METHOD"] == "POST":
        environ["wsgi.input"].read()
    if path == "/missing":
        status, body = "404 Not Found", b"missing\n"
    elif path == "/boom":
        status, body = "500 Internal Server Error", b"boom\n"
    elif path == "/sleep":
        seconds = float(parse_qs(environ.get("QUERY_STRING", "")).get("s", ["1"])[0])
        time.sleep(seconds)
        status, body = "200 OK", b"slept\n"
    elif path == "/pid":
        status, body = "200 OK", str(os.getpid()).encode()
    else:
        status, body = "200 OK", b"ok\n"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
