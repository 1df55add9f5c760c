"""aserve: a production WSGI server for Python web apps, written in Rust.

Run it as ``aserve [OPTIONS] APP`` or ``python -m aserve [OPTIONS] APP``;
``aserve --help`` lists the options. The server itself is the Rust
extension module ``aserve._native``: this package only hands it the
command line.
"""

import os
import sys

from aserve import _native

__all__ = ["cli"]


def cli() -> None:
    """The ``aserve`` console script: runs aserve with ``sys.argv``."""
    run(sys.argv)


def run(argv) -> None:
    """Runs aserve with ``argv`` (program name first) and exits with its
    status."""
    code = _native.main(argv)
    threading = sys.modules.get("threading")
    if code != 0 and threading is not None and threading.active_count() > 1:
        # aserve refused to start because a thread was already running in
        # this process (a sitecustomize.py, say). Leaving through
        # sys.exit would wait for that thread forever; the refusal is
        # logged, so leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
