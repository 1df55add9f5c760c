"""What a request looks like to the app behind a proxy (tests/forwarded.rs).

Every path answers ``key<TAB>value`` lines with the environ keys a proxy
can change, the forwarding headers as the app received them, and ``url``:
the request's URL rebuilt the way werkzeug's ``get_current_url`` (and so
Flask's ``url_for(..., _external=True)``) builds it.
"""

KEYS = (
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "wsgi.url_scheme",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SCRIPT_NAME",
    "PATH_INFO",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_FORWARDED",
)


def url(environ):
    scheme = environ["wsgi.url_scheme"]
    host = environ.get("HTTP_HOST")
    if not host:
        host = environ["SERVER_NAME"]
        if (scheme, environ["SERVER_PORT"]) not in (("http", "80"), ("https", "443")):
            host += ":" + environ["SERVER_PORT"]
    return f"{scheme}://{host}{environ['SCRIPT_NAME']}{environ['PATH_INFO']}"


def app(environ, start_response):
    lines = [f"{key}\t{environ.get(key, '-')}" for key in KEYS]
    lines.append(f"url\t{url(environ)}")
    body = ("\n".join(lines) + "\n").encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
