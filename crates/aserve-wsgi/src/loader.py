"""aserve's app loader: prepares sys.path and resolves the APP argument.

Runs inside the embedded interpreter before the first request. Errors the
user can fix without a traceback (a missing attribute, a bad factory call)
raise AppLoadError with a one-line message; anything raised while importing
the user's module propagates as it is, so its traceback is shown whole.
"""

import ast
import glob
import importlib
import os
import site
import sys
import sysconfig


class AppLoadError(Exception):
    """A problem with the APP argument itself, explained in one line."""


class RequestTimeout(TimeoutError):
    """Raised in an app's thread when its request outlives --request-timeout."""


AppLoadError.__module__ = RequestTimeout.__module__ = "aserve"


def prepare_path(cwd, pythonpath, virtualenv):
    """Puts the app's directory, --pythonpath and the virtualenv first."""
    front = [cwd] + list(pythonpath)
    if virtualenv:
        front += _virtualenv_site_packages(virtualenv)
    for entry in reversed(front):
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
    if not sys.argv:
        sys.argv[:] = ["aserve"]


def _virtualenv_site_packages(venv):
    """The sys.path entries of venv's site-packages (its .pth files included).

    When aserve runs from the package, the interpreter is usually that
    virtualenv's own: its site-packages are on sys.path already.
    """
    if not os.path.isdir(venv):
        raise AppLoadError(f"virtualenv {venv!r} is not a directory")
    if os.path.realpath(venv) == os.path.realpath(sys.prefix):
        return []
    version = "python%d.%d" % sys.version_info[:2]
    candidates = glob.glob(os.path.join(venv, "lib", version, "site-packages"))
    if not candidates:
        found = ", ".join(sorted(os.listdir(os.path.join(venv, "lib")))) if os.path.isdir(os.path.join(venv, "lib")) else "nothing"
        raise AppLoadError(
            f"virtualenv {venv!r} has no lib/{version}/site-packages "
            f"(aserve runs on Python {sys.version_info[0]}.{sys.version_info[1]}; found {found})"
        )
    before = list(sys.path)
    # addsitedir also processes .pth files (editable installs, namespace packages).
    site.addsitedir(candidates[0])
    added = [p for p in sys.path if p not in before]
    sys.path[:] = before
    os.environ.setdefault("VIRTUAL_ENV", venv)
    return added


# Files named by the last failed import of the app: the module that did not
# compile may never reach sys.modules, and --reload must watch it.
_failed_import_files = []


def load(module_name, expr):
    """Imports module_name and evaluates expr: a name or a factory call."""
    name, args, kwargs = _parse(expr)
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:
        _failed_import_files[:] = _traceback_files(exc)
        raise
    try:
        obj = getattr(module, name)
    except AttributeError:
        raise AppLoadError(f"Failed to find attribute {name!r} in {module_name!r}.") from None
    if args is not None:
        if not callable(obj):
            raise AppLoadError(f"{module_name}:{name} is not callable, so it cannot be a factory.")
        try:
            obj = obj(*args, **kwargs)
        except Exception as exc:
            raise AppLoadError(f"The app factory {module_name}:{expr} raised {type(exc).__name__}: {exc}") from exc
    if obj is None:
        raise AppLoadError(f"{module_name}:{expr} is None, not a WSGI application.")
    if not callable(obj):
        raise AppLoadError(f"{module_name}:{expr} is a {type(obj).__name__}, not a callable WSGI application.")
    return obj


def _parse(expr):
    try:
        node = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        raise AppLoadError(f"Failed to parse {expr!r} as an attribute name or function call.") from None
    if isinstance(node, ast.Name):
        return node.id, None, None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        try:
            args = [ast.literal_eval(arg) for arg in node.args]
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        except ValueError:
            raise AppLoadError(f"Factory arguments in {expr!r} must be literals (strings, numbers, ...).") from None
        if any(kw.arg is None for kw in node.keywords):
            raise AppLoadError(f"**kwargs are not supported in {expr!r}.")
        return node.func.id, args, kwargs
    raise AppLoadError(f"Failed to parse {expr!r} as an attribute name or function call.")


def _traceback_files(exc):
    """The source files an exception's traceback (and a SyntaxError) names."""
    files = []
    if isinstance(exc, SyntaxError) and exc.filename:
        files.append(exc.filename)
    tb = exc.__traceback__
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return files


def source_files():
    """The app's own Python source files, for --reload: the .py files of the
    imported modules (and those named by a failed import of the app) that
    exist, outside the standard library and any site-packages.
    """
    paths = sysconfig.get_paths()
    outside = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            outside.add(os.path.join(os.path.abspath(paths[key]), ""))
            outside.add(os.path.join(os.path.realpath(paths[key]), ""))
    outside = tuple(outside)
    candidates = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
    found = set()
    for path in candidates + _failed_import_files:
        if not isinstance(path, str) or not path.endswith(".py"):
            continue
        path = os.path.abspath(path)
        parts = path.split(os.sep)
        if "site-packages" in parts or "dist-packages" in parts or path.startswith(outside):
            continue
        # "<frozen ...>", and this loader's own "aserve/loader.py".
        if os.path.isfile(path):
            found.add(path)
    return sorted(found)


def format_exception(exc, tb):
    """The full traceback of exc, as one string."""
    import traceback

    if tb is not None:
        exc = exc.with_traceback(tb)
    return "".join(traceback.format_exception(exc)).rstrip()
