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
