"""Atomic file writing and checked reading, shared by every module that saves results."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

TMP_SUFFIX = ".tmp"
#: errno values of a full disk or an exhausted quota.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
#: What `read_npz` raises for a damaged, truncated or foreign file.
NPZ_READ_ERRORS = (zipfile.BadZipFile, EOFError, ValueError, OSError)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Opens a temporary file next to `path`; on success renames it onto `path`.

    The temporary file is in the same directory, so `os.replace` is an atomic rename: `path`
    holds either its old content or the complete new one, never part of it. On an exception
    the temporary file is removed and `path` is untouched. Parent directories are created.

    Args:
        path: Destination file.
        mode: "wb" (bytes) or "w" (text, UTF-8).

    Yields:
        The open temporary file.

    Example:
        >>> import tempfile
        >>> p = tempfile.mkdtemp() + "/a.txt"
        >>> with atomic_write(p, "w") as f:
        ...     _ = f.write("hello")
        >>> open(p).read()
        'hello'
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # The rename must not overtake the data on a crash.
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; results are meant to be shared.
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.errno in DISK_FULL_ERRNOS and err.filename is None:  # name the file
            raise OSError(err.errno, os.strerror(err.errno), str(path)) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read without pickle (an object array is refused).

    Raises:
        One of `NPZ_READ_ERRORS` when the file is damaged, truncated or not an ``.npz``.

    Example:
        >>> p = tempfile.mkdtemp() + "/a.npz"
        >>> np.savez(p, w=np.eye(2))
        >>> read_npz(p)["w"].tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def jsonable(obj: Any) -> Any:
    """`obj` with numpy scalars/arrays, tuples and paths turned into JSON types.

    Non-finite floats become None: JSON has no NaN, and a missing measurement (e.g. no
    neighbour within a radius) should read as null, not as a made-up number.

    Example:
        >>> jsonable({"a": np.float32(0.5), "b": (1, np.int64(2)), "c": float("nan")})
        {'a': 0.5, 'b': [1, 2], 'c': None}
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot write {type(obj).__name__} to JSON: {obj!r}")


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes `jsonable(obj)` as indented JSON, atomically.

    Example:
        >>> import tempfile
        >>> p = write_json(tempfile.mkdtemp() + "/s.json", {"auc": np.float64(0.9)})
        >>> read_json(p)
        {'auc': 0.9}
    """
    with atomic_write(path, "w") as f:
        json.dump(jsonable(obj), f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    """Reads a JSON file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """Saves arrays to an uncompressed .npz file, atomically.

    Object arrays are refused (they would need pickle to load back).

    Example:
        >>> import tempfile
        >>> p = write_npz(tempfile.mkdtemp() + "/r.npz", x=np.zeros(2), names=np.array(["a"]))
        >>> sorted(np.load(p))
        ['names', 'x']
    """
    converted = {name: np.asarray(value) for name, value in arrays.items()}
    for name, value in converted.items():
        if value.dtype == object:
            raise TypeError(f"array {name!r} has dtype object; store numbers or strings")
    with atomic_write(path, "wb") as f:
        np.savez(f, **converted)
    return Path(path)
