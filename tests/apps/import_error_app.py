"""A module that fails to import (it needs a package that does not exist),
for the start-up failure tests. Never served successfully."""

import aserve_missing_dependency_xyz  # noqa: F401


def app(environ, start_response):
    start_response("200 OK", [])
    return [b"unreachable"]
