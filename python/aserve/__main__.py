"""``python -m aserve [OPTIONS] APP``: the same as the ``aserve`` command."""

import sys

from aserve import run

if __name__ == "__main__":
    run(["python -m aserve", *sys.argv[1:]])
