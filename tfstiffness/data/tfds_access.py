"""TensorFlow Datasets access: one split of a tfds set, downloaded only when its hosts answer,
with one clear `DatasetUnavailableError` for whatever tfds raised."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tfstiffness.errors import DatasetUnavailableError

__all__ = ["REACH_TIMEOUT", "DatasetUnavailableError", "tfds_split", "to_numpy",
           "unreachable_hosts"]


def _unavailable(
    name: str, split: str, root: str, download: bool, reason: str
) -> DatasetUnavailableError:
    why = "cannot be downloaded" if download else "download=False"
    return DatasetUnavailableError(
        f"Data set {name!r} (split {split!r}) is not in data_dir {root!r} and {why} "
        f"({reason}). To use it without network access, prepare it on a connected machine "
        f"(`tfds build {name}`), then copy the folder ~/tensorflow_datasets/{name} to "
        f"{root}/{name} and pass data_dir={root!r} (or set TFDS_DATA_DIR).",
        name=name, split=split, data_dir=root, reason=reason)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:300] if text else ''}"


#: Seconds to wait for a download host to answer before calling it unreachable.
REACH_TIMEOUT = 5.0


def unreachable_hosts(hosts: list[str], timeout: float = REACH_TIMEOUT) -> list[str]:
    """The hosts (of `hosts`) that do not accept a TCP connection on port 443 in `timeout`.

    Tried in parallel, on daemon threads, so a hanging name lookup cannot hold the caller
    (or the interpreter's exit) longer than `timeout` plus a second.

    Example:
        >>> unreachable_hosts([])
        []
    """
    import socket
    import threading

    reached: set[str] = set()

    def attempt(host: str) -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            reached.add(host)
        except OSError:
            pass

    threads = [threading.Thread(target=attempt, args=(h,), daemon=True) for h in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 1.0)
    return [h for h in hosts if h not in reached]


def _download_hosts(builder: Any) -> list[str]:
    """The hosts a tfds builder downloads its source files from (its registered URLs)."""
    try:
        urls = list(builder.url_infos or {})
    except Exception:  # noqa: BLE001 - no registered checksums: no list to check.
        urls = []
    hosts = sorted({url.split("/")[2] for url in urls if "://" in url})
    return hosts or ["storage.googleapis.com"]


def _downloads(builder: Any) -> bool:
    """Whether the builder's download is tfds's own (not `tfds.testing.mock_data`'s stand-in,
    which needs no network)."""
    method = getattr(type(builder), "download_and_prepare", None)
    return getattr(method, "__module__", "").startswith("tensorflow_datasets.core")


def tfds_split(name: str, split: str, data_dir, download: bool) -> tf.data.Dataset:
    """One split of a tfds set from `data_dir`, downloaded first when missing and allowed.

    A set that is not prepared in `data_dir` is only downloaded when every host of its
    source files answers; otherwise it fails at once (tfds itself would retry for minutes).
    """
    root = str(data_dir) if data_dir else tfds.core.constants.get_default_data_dir()
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    try:
        # tfds warns that an empty data_dir has no dataset_info.json: said better below.
        absl_logger.setLevel(logging.ERROR)
        builder = tfds.builder(name, data_dir=data_dir)
        root = str(getattr(builder, "data_dir_root", root))
        prepared = builder.is_prepared()
    except Exception as err:  # Whatever tfds raised, the user gets one clear error.
        raise _unavailable(name, split, root, download, _first_line(err)) from err
    finally:
        absl_logger.setLevel(level)
    if not prepared:
        missing = FileNotFoundError(f"no prepared copy of {name!r} in {builder.data_dir}")
        if not download:
            raise _unavailable(name, split, root, download, "no prepared copy there") from missing
        unreachable = unreachable_hosts(_download_hosts(builder)) if _downloads(builder) else []
        if unreachable:
            raise _unavailable(
                name, split, root, download,
                f"no prepared copy there, and no connection to {', '.join(unreachable)}",
            ) from ConnectionError(f"no connection to {', '.join(unreachable)} (port 443) "
                                   f"within {REACH_TIMEOUT:g} s")
        try:
            builder.download_and_prepare()
        except Exception as err:
            raise _unavailable(name, split, root, download, _first_line(err)) from err
    try:
        return builder.as_dataset(split=split, shuffle_files=False)
    except AssertionError as err:  # tfds' "could not find data in ..." (download=False).
        raise _unavailable(name, split, root, download, _first_line(err)) from err



def to_numpy(ds: tf.data.Dataset, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of an unbatched `(x, y)` dataset as numpy arrays, converted `chunk` at a time."""
    xs, ys = [], []
    for xb, yb in ds.batch(chunk).as_numpy_iterator():
        xs.append(xb)
        ys.append(yb)
    if not xs:  # Empty split or max_examples=0: keep the element shape and dtype.
        x_spec = ds.element_spec[0]
        return (np.zeros((0, *x_spec.shape), x_spec.dtype.as_numpy_dtype),
                np.zeros((0,), np.int64))
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)
