"""The ``.npz`` format of a saved ``SamplingResult``: fields to a file and back, without pickle.

This module knows fields (names and values), not the result class, which builds on it
(:meth:`nutslite.result.SamplingResult.save`, :func:`nutslite.result.load`). Every array of the
result is stored under a readable key: dictionaries by key prefixes
(``posterior/mu_a``, ``sample_stats/diverging``, ``warmup/inv_mass_matrix``), lists of strings as
unicode arrays (``coords``). Everything else (numbers, strings, ``None``, the settings) and the
layout itself go into one JSON document stored as a unicode array under ``__nutslite__``, so
``numpy.load(path, allow_pickle=False)`` reads the file with numpy alone::

    res.save("run.npz")
    res = nl.load("run.npz")

The file records the nutslite version that wrote it (``res.nutslite_version`` after loading).
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "nutslite-result"
FORMAT_VERSION = 1
META_KEY = "__nutslite__"
ZIP_MAGIC = b"PK\x03\x04"  # how every .npz (a zip archive) begins
NPY_MAGIC = b"\x93NUMPY"  # how a single .npy array begins

PathLike = str | os.PathLike
PLAIN_TYPES = (type(None), bool, int, float, str)  # stored as JSON (exact types: not np.float64)


def _encode(value: Any, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Describe ``value`` in JSON; put its arrays into ``arrays`` under keys starting ``key``."""
    if isinstance(value, np.ndarray | np.generic):
        if value.dtype.hasobject:
            raise TypeError(f"cannot save {key!r}: object arrays need pickle")
        _put(arrays, key, np.asarray(value))
        return {"array": key, "scalar": isinstance(value, np.generic)}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"cannot save {key!r}: dictionary keys must be strings")
        if value and all(type(v) in PLAIN_TYPES for v in value.values()):
            return {"value": value}  # plain JSON, readable in the metadata (the settings)
        return {"dict": {k: _encode(v, f"{key}/{k}", arrays) for k, v in value.items()}}
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        _put(arrays, key, np.array(value, dtype=str))
        return {"strings": key, "tuple": isinstance(value, tuple)}
    if isinstance(value, list | tuple):
        items = [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]
        return {"list": items, "tuple": isinstance(value, tuple)}
    if type(value) in PLAIN_TYPES:
        return {"value": value}
    raise TypeError(f"cannot save {key!r}: unsupported type {type(value).__name__}")


def _put(arrays: dict[str, np.ndarray], key: str, value: np.ndarray) -> None:
    if key in arrays:
        raise ValueError(f"cannot save: two entries map to the key {key!r}")
    arrays[key] = value


def _decode(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of ``_encode``."""
    if "array" in spec:
        array = arrays[spec["array"]]
        return array[()] if spec["scalar"] else array
    if "dict" in spec:
        return {k: _decode(v, arrays) for k, v in spec["dict"].items()}
    if "strings" in spec:
        strings = [str(s) for s in arrays[spec["strings"]]]
        return tuple(strings) if spec["tuple"] else strings
    if "list" in spec:
        items = [_decode(v, arrays) for v in spec["list"]]
        return tuple(items) if spec["tuple"] else items
    return spec["value"]


class _StoppableFile:
    """A binary file whose every write first checks ``stop``: once the event is set, the next
    write raises ``KeyboardInterrupt``, as a Ctrl-C in the writing thread would (NumPy writes an
    array into the archive in pieces of at most 16 MiB). Everything else is the file's own."""

    def __init__(self, file: Any, stop: threading.Event) -> None:
        self._file = file
        self._stop = stop

    def write(self, data: Any) -> int:
        if self._stop.is_set():
            raise KeyboardInterrupt("saving stopped")
        return self._file.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def save_fields(
    fields: dict[str, Any], path: PathLike, version: str, stop: threading.Event | None = None
) -> Path:
    """Write a result's ``fields`` (name to value), written by nutslite ``version``, to ``path``
    as an ``.npz`` file; return the path.

    The file is written exactly at ``path`` (no ``.npz`` is appended) and atomically: a failure
    or Ctrl-C while writing leaves any earlier file at ``path`` untouched. ``stop``: for a save
    in a background thread, which no Ctrl-C reaches; setting the event stops the writing as a
    Ctrl-C would (``KeyboardInterrupt``, nothing written).

    Raises
    ------
    TypeError
        When ``path`` is not a string or path, or a field holds a value that cannot be stored
        without pickle.
    ValueError
        When ``path`` is a directory or its directory does not exist.
    """
    path = check_output_path(path)
    arrays: dict[str, np.ndarray] = {}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nutslite_version": version,
        "fields": {name: _encode(value, name, arrays) for name, value in fields.items()},
    }
    _put(arrays, META_KEY, np.array(json.dumps(meta)))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f if stop is None else _StoppableFile(f, stop), **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_fields(path: PathLike) -> dict[str, Any]:
    """The fields of a result written by :func:`save_fields`, ``nutslite_version`` included.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When ``path`` is not an ``.npz`` file written by nutslite, or is damaged.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a string or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory, not a saved nutslite result")
    with open(path, "rb") as f:
        start = f.read(len(ZIP_MAGIC))
    if start != ZIP_MAGIC:  # before numpy, whose error on a text file suggests allow_pickle
        if not start:
            what = "it is empty"
        elif start == NPY_MAGIC[: len(start)]:
            what = "it is a single .npy array, not an .npz archive"
        else:
            what = "it is not an .npz (zip) archive"
        raise ValueError(
            f"{str(path)!r} is not a readable nutslite result (.npz written by res.save or "
            f"nutslite sample --out): {what}"
        )
    try:
        # the file opened here, not by np.load, which leaves it open when zipfile rejects it
        with open(path, "rb") as fh:
            npz = np.load(fh, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("it is a single .npy array, not an .npz archive")
            with npz:
                if META_KEY not in npz.files:
                    raise ValueError("it holds no nutslite metadata")
                meta = json.loads(str(npz[META_KEY]))
                if meta.get("format") != FORMAT:
                    raise ValueError(f"its format is {meta.get('format')!r}")
                if meta.get("format_version", 0) > FORMAT_VERSION:
                    raise ValueError(
                        f"it has format version {meta['format_version']}, newer than this "
                        f"nutslite reads ({FORMAT_VERSION}); upgrade nutslite"
                    )
                arrays = {key: npz[key] for key in npz.files if key != META_KEY}
                fields = {name: _decode(spec, arrays) for name, spec in meta["fields"].items()}
    except (
        ValueError, KeyError, TypeError, AttributeError, OSError, EOFError, zipfile.BadZipFile
    ) as err:  # whatever a damaged or foreign file makes numpy, zipfile or json raise
        raise ValueError(
            f"{str(path)!r} is not a readable nutslite result (.npz written by res.save): {err}"
        ) from err
    fields["nutslite_version"] = meta.get("nutslite_version", "unknown")
    return fields


def check_output_path(path: PathLike) -> Path:
    """``path`` as a ``Path`` if a file can be written there, else a clear error.

    Used before sampling too, so that a long run never ends in an unwritable path.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a string or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if str(path) in ("", "."):
        raise ValueError("the output path is empty")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory; give a file name such as run.npz")
    where = f"cannot write {str(path)!r}: the directory {str(path.parent)!r}"
    if not path.parent.is_dir():
        raise ValueError(f"{where} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise ValueError(f"{where} is not writable")
    return path
