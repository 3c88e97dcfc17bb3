"""Atomic file writing and checked reading, shared by every module that saves results."""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

TMP_SUFFIX = ".tmp"
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
