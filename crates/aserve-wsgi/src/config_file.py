"""aserve: runs a Python config file (a gunicorn.conf.py) as gunicorn does.

The file is executed once per load, in a fresh module named __config__
(also put in sys.modules, as gunicorn does), with the GIL held and before
any fork. Its module-level names are the settings; functions among them are
server hooks, kept here and called at the matching moments.
"""

import sys
import types


class ConfigFileError(Exception):
    """The file could not be run; the message names the line."""


def run(path):
    """Executes the file at path and returns its namespace."""
    module = types.ModuleType("__config__")
    module.__file__ = path
    try:
        with open(path, "rb") as f:
            source = f.read()
        code = compile(source, path, "exec")
        sys.modules["__config__"] = module
        exec(code, module.__dict__)
    except (KeyboardInterrupt, MemoryError):
        raise
    except BaseException as e:  # SystemExit too: the file must not stop us.
        raise ConfigFileError(_describe(e, path)) from None
    return module.__dict__


def _describe(e, path):
    line = e.lineno if isinstance(e, SyntaxError) else None
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    at = f" (line {line})" if line else ""
    return f"{type(e).__name__}: {e}{at}"


class _Log:
    """server.log / worker.log: gunicorn's logger methods, into aserve's log."""

    def __init__(self, emit):
        self._emit = emit

    def _log(self, level, msg, args):
        self._emit(level, str(msg) % args if args else str(msg))

    def debug(self, msg, *args, **kwargs):
        self._log("debug", msg, args)

    def info(self, msg, *args, **kwargs):
        self._log("info", msg, args)

    def warning(self, msg, *args, **kwargs):
        self._log("warning", msg, args)

    warn = warning

    def error(self, msg, *args, **kwargs):
        self._log("error", msg, args)

    critical = error

    def exception(self, msg, *args, **kwargs):
        import traceback

        self._log("error", f"{msg}\n{traceback.format_exc()}".rstrip(), args)


class _Stand:
    """A stand-in for gunicorn's Arbiter or Worker: the attributes hooks use."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)

    def __repr__(self):
        return f"<aserve {self.kind} pid={self.pid}>"


def call(namespace, name, server, worker, emit):
    """Calls the hook `name` of the config file, if it defines one.

    Returns the traceback of an exception it raised, or None.
    """
    hook = namespace.get(name)
    if hook is None or not callable(hook):
        return None
    log = _Log(emit)
    cfg = types.SimpleNamespace(
        **{k: v for k, v in namespace.items() if not k.startswith("_")}
    )
    s = _Stand(kind="master", log=log, cfg=cfg, **server)
    w = _Stand(kind="worker", log=log, cfg=cfg, **worker) if worker else None
    args = {"post_fork": (s, w), "worker_exit": (s, w), "post_worker_init": (w,)}
    try:
        hook(*args.get(name, (s,)))
    except Exception:
        import traceback

        return traceback.format_exc()
    return None
