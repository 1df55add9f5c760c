"""Imports ``aserve_pythonpath_helper``, a module that exists only in a
directory the test passes with ``--pythonpath``, and serves its MARKER."""

import aserve_pythonpath_helper


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [aserve_pythonpath_helper.MARKER.encode("ascii")]
