"""Runs a WSGI app under bjoern with N worker processes (bjoern has no CLI).

    python bjoern_serve.py HOST PORT WORKERS module:attr   (cwd = the app dir)

With WORKERS > 1 the listening socket is made once and shared by forked
children, as bjoern's README shows; the parent waits and takes the children
down with it (the harness kills the whole process group anyway).
"""

import importlib
import os
import signal
import sys


def main():
    host, port, workers, spec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    import bjoern

    sys.path.insert(0, os.getcwd())
    module, _, attr = spec.partition(":")
    app = getattr(importlib.import_module(module), attr or "application")
    bjoern.listen(app, host, port, listen_backlog=2048)
    if workers <= 1:
        bjoern.run()
        return
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            bjoern.run()
            os._exit(0)
        children.append(pid)

    def stop(signum, _frame):
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in children:
        os.wait()


if __name__ == "__main__":
    main()
