"""An app for the shutdown tests: quiet, short requests under load.

/nap?S   sleeps S seconds (default 0), then answers the serving pid
"""

import os
import time


def app(environ, start_response):
    if environ["PATH_INFO"] != "/nap":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"unknown"]
    time.sleep(float(environ["QUERY_STRING"] or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
