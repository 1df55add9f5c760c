"""Reports the WSGI environ, for the environ tests.

The body is one line per environ key, ``key<TAB>value``, sorted by key.
Values that are str/int/bool/tuple/None are written with ``ascii()`` so the
type and every code point are unambiguous (``'8000'`` is a str, ``8000`` an
int, ``'caf\\xc3\\xa9'`` is a latin-1 decoded str). Other objects are written
as ``<TypeName callable=... attrs=...>`` listing the file-like methods they
have.
"""

ATTRS = ("read", "readline", "readlines", "__iter__", "write", "writelines", "flush")


def describe(value):
    if value is None or isinstance(value, (str, int, bool, tuple)):
        return ascii(value)
    attrs = ",".join(a for a in ATTRS if hasattr(value, a))
    return f"<{type(value).__name__} callable={callable(value)} attrs={attrs}>"


def app(environ, start_response):
    lines = [f"{key}\t{describe(environ[key])}" for key in sorted(environ)]
    body = ("\n".join(lines) + "\n").encode("ascii")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
