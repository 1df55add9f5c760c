"""aserve: a production WSGI server for Python web apps, written in Rust.

Run it as ``aserve [OPTIONS] APP`` or ``python -m aserve [OPTIONS] APP``;
``aserve --help`` lists the options. The server itself is the Rust
extension module ``aserve._native``: this package only hands it the
command line.
"""

import sys

from aserve import _native

__all__ = ["cli"]


def cli() -> None:
    """The ``aserve`` console script: runs aserve with ``sys.argv``."""
    sys.exit(_native.main(sys.argv))
