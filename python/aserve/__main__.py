"""``python -m aserve [OPTIONS] APP``: the same as the ``aserve`` command."""

import sys

from aserve import _native

if __name__ == "__main__":
    sys.exit(_native.main(["python -m aserve", *sys.argv[1:]]))
