"""Writes the query string to wsgi.errors (write, writelines, flush), for
the error-log test, and reports what the write calls returned."""


def app(environ, start_response):
    marker = environ["QUERY_STRING"]
    errors = environ["wsgi.errors"]
    errors.write(f"errors-write {marker}\n")
    errors.writelines([f"errors-writelines {marker} ", "second part\n"])
    errors.flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"logged"]
