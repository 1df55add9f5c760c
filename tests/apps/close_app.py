"""Counts close() calls on the returned iterable, for the close() tests.

Every request carries ``?TAG``; the iterable records, per tag, how many
times close() ran and how many chunks it produced, and prints
``close-called tag=TAG chunks=N`` to stderr when closed. ``/stats?TAG``
reports ``closes<TAB>N`` / ``chunks<TAB>N`` / ``next_after_close<TAB>N``.

/normal?TAG    three chunks
/raise?TAG     one chunk, then RuntimeError
/infinite?TAG  1 KiB chunks with a 5 ms pause, until closed (capped)
/list?TAG      a list subclass of two chunks, with a close() of its own
"""

import sys
import threading
import time

LOCK = threading.Lock()
STATS = {}
CAP = 20000


def stats(tag):
    with LOCK:
        return STATS.setdefault(tag, {"closes": 0, "chunks": 0, "next_after_close": 0})


class Tracked:
    def __init__(self, tag, mode):
        self.tag = tag
        self.mode = mode
        self.produced = 0
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self):
        s = stats(self.tag)
        if self.closed:
            with LOCK:
                s["next_after_close"] += 1
        if self.mode == "normal" and self.produced == 3:
            raise StopIteration
        if self.mode == "raise" and self.produced == 1:
            raise RuntimeError(f"close-app-failure tag={self.tag}")
        if self.mode == "infinite":
            if self.produced >= CAP:
                raise StopIteration
            if self.produced:
                time.sleep(0.005)
        self.produced += 1
        with LOCK:
            s["chunks"] += 1
        return b"x" * 1024 if self.mode == "infinite" else f"chunk{self.produced};".encode()

    def close(self):
        self.closed = True
        s = stats(self.tag)
        with LOCK:
            s["closes"] += 1
        print(f"close-called tag={self.tag} chunks={self.produced}", file=sys.stderr, flush=True)


class ClosingList(list):
    """A list is served whole, but a subclass's close() still counts."""

    def __init__(self, tag, items):
        super().__init__(items)
        self.tag = tag

    def close(self):
        s = stats(self.tag)
        with LOCK:
            s["closes"] += 1
            s["chunks"] = len(self)
        print(f"close-called tag={self.tag} chunks={len(self)}", file=sys.stderr, flush=True)


def app(environ, start_response):
    path, tag = environ["PATH_INFO"], environ["QUERY_STRING"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    if path == "/stats":
        s = stats(tag)
        with LOCK:
            return ["".join(f"{k}\t{v}\n" for k, v in s.items()).encode()]
    if path == "/list":
        return ClosingList(tag, [b"item1;", b"item2;"])
    return Tracked(tag, path.strip("/"))
