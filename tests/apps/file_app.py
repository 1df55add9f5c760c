"""Serves files through wsgi.file_wrapper, for the file_wrapper tests.

/file?PATH          the whole file at PATH
/file_offset?N:PATH the file at PATH after seek(N)
/bytesio            a BytesIO (not a real file) wrapped with a block size
"""

import io

BYTESIO_BODY = b"".join(b"line %05d of an in-memory body\n" % i for i in range(2000))


def app(environ, start_response):
    path, query = environ["PATH_INFO"], environ["QUERY_STRING"]
    wrapper = environ["wsgi.file_wrapper"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    if path == "/file":
        return wrapper(open(query, "rb"))
    if path == "/file_offset":
        offset, name = query.split(":", 1)
        f = open(name, "rb")
        f.seek(int(offset))
        return wrapper(f)
    if path == "/bytesio":
        return wrapper(io.BytesIO(BYTESIO_BODY), 4096)
    return [b"unknown case"]
