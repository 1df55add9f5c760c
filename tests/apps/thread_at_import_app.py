"""Starts a thread when imported: with --preload that thread lives in the
master, which must then refuse to fork (a worker could deadlock on a lock the
thread held)."""

import threading
import time

threading.Thread(target=time.sleep, args=(3600,), daemon=True, name="import-time").start()


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"started a thread at import\n"]
