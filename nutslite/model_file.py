"""A PyMC model read from a Python file, for ``nutslite sample my_model.py``.

The file is run (``runpy.run_path``) as ``python my_model.py`` would run it: ``sys.path`` starts
with the file's folder, so that it can import modules kept beside it; ``sys.argv`` is ``[path]``;
``__file__`` is set, so that it can find its data files with ``Path(__file__).parent``; the
working directory is left as it is. One difference: its ``__name__`` is ``"__nutslite_model__"``
rather than ``"__main__"``, so that a block under ``if __name__ == "__main__":`` (a ``pm.sample``
call, say) does not run. ``sys.path`` and ``sys.argv`` are restored afterwards. The model is then
the file's global variable ``model`` (or the one that ``--var`` names), which must be a
``pymc.Model``; ``nl.from_pymc`` compiles it.
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

RUN_NAME = "__nutslite_model__"
DEFAULT_VARIABLE = "model"


class ModelFileError(Exception):
    """The file cannot give a PyMC model; the message names the problem."""


def looks_like_file(name: str) -> bool:
    """True when the command line's ``name`` means a file rather than a built-in model: it ends
    in ``.py``, contains a path separator, or names an existing file."""
    separators = [s for s in ("/", os.sep, os.altsep) if s]
    return name.endswith(".py") or any(s in name for s in separators) or Path(name).is_file()


def load_pymc_model(path: str | Path, variable: str = DEFAULT_VARIABLE) -> Any:
    """Run the Python file ``path`` (as the module docstring says) and return its global
    ``variable``, a ``pymc.Model``.

    Raises
    ------
    ModelFileError
        When ``path`` is not an existing ``.py`` file; when PyMC is not installed; when running it
        raises (the message gives the exception's type and text and the file's line); when it
        defines no ``variable`` (the message lists the PyMC models it does define); or when
        ``variable`` is not a ``pymc.Model``.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"no such file: {str(path)!r}")
    if not path.is_file() or path.suffix != ".py":
        raise ModelFileError(
            f"{str(path)!r} is not a Python file (FILE.py) that defines a PyMC model"
        )
    try:
        import pymc
    except ImportError as err:
        raise ModelFileError(
            f"sampling the PyMC model in {path} needs PyMC, an optional dependency: "
            'pip install "nutslite[pymc]"'
        ) from err
    namespace = _run(path)
    models = [k for k, v in namespace.items()
              if isinstance(v, pymc.Model) and not k.startswith("_")]
    which = "its PyMC models: " + ", ".join(models) if models else (
        "it defines no PyMC model as a global variable (as `with pm.Model() as model:` at its "
        'top level does; code under `if __name__ == "__main__":` is not run)'
    )
    if variable not in namespace:
        hint = "; choose one with --var NAME" if models else ""
        raise ModelFileError(f"{path} has no variable {variable!r}; {which}{hint}")
    found = namespace[variable]
    if not isinstance(found, pymc.Model):
        raise ModelFileError(
            f"{variable!r} in {path} is not a pymc.Model but an object of type "
            f"{type(found).__name__}; {which}"
        )
    return found


def _run(path: Path) -> dict[str, Any]:
    """The globals of ``path`` after running it; an exception it raises (``SystemExit``
    included, but not ``KeyboardInterrupt``) becomes a ``ModelFileError`` that names the
    exception and the line of the file where it happened."""
    saved_path, saved_argv = list(sys.path), sys.argv
    sys.path.insert(0, str(path.resolve().parent))
    sys.argv = [str(path)]
    try:
        return runpy.run_path(str(path), run_name=RUN_NAME)
    except (Exception, SystemExit) as err:
        raise ModelFileError(f"running {path} raised {_describe(err, path)}") from err
    finally:
        sys.path[:] = saved_path
        sys.argv = saved_argv


def _describe(err: BaseException, path: Path) -> str:
    """``Type: message`` and, when the traceback passes through ``path``, the last line of
    ``path`` it passes (a ``SyntaxError`` names its own line)."""
    text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    if isinstance(err, SyntaxError):
        return text
    target = path.resolve()
    lines = [frame.lineno for frame in traceback.extract_tb(err.__traceback__)
             if Path(frame.filename).resolve() == target]
    return f"{text} (line {lines[-1]})" if lines else text
