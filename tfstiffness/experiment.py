"""Conventions shared by the experiment binaries: one output directory per configuration.

An experiment writes everything under one directory:

- ``config.json``: the configuration (flags) it was started with. A directory is only reused
  with the same configuration, so results from different settings never mix.
- ``stages/<stage>.npz``: a checkpoint per finished stage (e.g. "init", "trained"). A run
  killed at any moment and restarted with the same command skips finished stages and ends
  with the same results.
- ``summary.json``: configuration, library versions and every measured number.
- ``results.npz``, ``figures/*.png``: arrays and figures.
- ``tensorboard/``: TensorBoard event files.

Every file is written atomically (a temporary file in the same directory, then `os.replace`),
so a reader, or a restarted run, never sees a half-written result.

Example:
    >>> import tempfile, numpy as np
    >>> out = OutputDir(tempfile.mkdtemp() + "/run", {"epochs": 3}, verbose=False)
    >>> out.done("init")
    False
    >>> out.save_stage("init", {"w": np.arange(3)})
    >>> out.done("init"), out.load_stage("init")["w"].tolist()
    (True, [0, 1, 2])
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tfstiffness._io import TMP_SUFFIX, atomic_write
from tfstiffness.plots import save_figure

__all__ = [
    "ConfigMismatchError",
    "OutputDir",
    "atomic_write",
    "jsonable",
    "read_json",
    "save_figure",
    "versions",
    "write_json",
    "write_npz",
]



# --------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------


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


def versions() -> dict[str, str]:
    """Versions of Python and the libraries behind a result.

    Example:
        >>> sorted(versions())
        ['keras', 'numpy', 'python', 'tensorflow', 'tfstiffness']
    """
    import keras
    import tensorflow as tf

    import tfstiffness

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tfstiffness": tfstiffness.__version__,
        "numpy": np.__version__,
    }


def _format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


# --------------------------------------------------------------------------------------------
# The output directory
# --------------------------------------------------------------------------------------------


class ConfigMismatchError(ValueError):
    """An output directory holds results of a different configuration."""


class OutputDir:
    """An experiment's output directory: config guard, stage checkpoints, results, progress.

    Args:
        path: The directory; created with its parents.
        config: The experiment's configuration (flag values): JSON-able after `jsonable`.
            Saved as ``config.json`` on first use; reopening the directory with a different
            configuration raises ValueError naming the differing keys.
        name: Prefix of the progress lines (default: the directory's name).
        verbose: Print progress lines (to stdout, flushed).
        printer: Where progress lines go instead of `print` (e.g. `logging.info`).

    Raises:
        ConfigMismatchError: (a ValueError) The directory holds a ``config.json`` that
            differs from `config`.

    Example:
        >>> import tempfile
        >>> root = tempfile.mkdtemp()
        >>> _ = OutputDir(root + "/run", {"lr": 0.1, "radii": (0.05, 0.1)}, verbose=False)
        >>> _ = OutputDir(root + "/run", {"lr": 0.1, "radii": [0.05, 0.1]})  # Same: reused.
        >>> OutputDir(root + "/run", {"lr": 0.2, "radii": [0.05, 0.1]})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tfstiffness.experiment.ConfigMismatchError: ...(lr: saved 0.1, now 0.2)...
    """

    def __init__(
        self,
        path: str | os.PathLike,
        config: Mapping[str, Any],
        name: str | None = None,
        verbose: bool = True,
        printer: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        # Round-trip through JSON so tuples and lists, numpy and Python numbers compare equal.
        self.config = json.loads(json.dumps(jsonable(dict(config))))
        self.name = name or self.path.name
        self.verbose = verbose
        self._printer = printer or (lambda line: print(line, flush=True))
        self._start = time.monotonic()
        self._eta_origin: tuple[float, float] | None = None
        self._writer = None
        self.path.mkdir(parents=True, exist_ok=True)
        self._check_config()
        self._remove_stale_temporaries()

    # -- configuration ---------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def _check_config(self) -> None:
        if not self.config_path.exists():
            write_json(self.config_path, self.config)
            return
        saved = read_json(self.config_path)
        if saved == self.config:
            return
        differences = []
        for key in sorted(set(saved) | set(self.config)):
            old, new = saved.get(key, "<absent>"), self.config.get(key, "<absent>")
            if old != new:
                differences.append(f"{key}: saved {old}, now {new}")
        raise ConfigMismatchError(
            f"output directory {self.path} holds results of a different configuration "
            f"({'; '.join(differences)}). Use another output directory, or delete this one "
            "to start over."
        )

    def _remove_stale_temporaries(self) -> None:
        # Left by a run killed while writing; never a result (they are renamed when complete).
        for folder in (self.path, self.stages_dir, self.figures_dir):
            if folder.is_dir():
                for tmp in folder.glob(f".*{TMP_SUFFIX}"):
                    tmp.unlink(missing_ok=True)

    # -- stage checkpoints -----------------------------------------------------------------

    @property
    def stages_dir(self) -> Path:
        return self.path / "stages"

    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    def _stage_path(self, stage: str) -> Path:
        if not stage or "/" in stage or stage.startswith("."):
            raise ValueError(f"bad stage name {stage!r}")
        return self.stages_dir / f"{stage}.npz"

    def done(self, stage: str) -> bool:
        """Whether `stage` finished (its checkpoint exists) in this or an earlier run."""
        return self._stage_path(stage).exists()

    def save_stage(self, stage: str, arrays: Mapping[str, Any]) -> None:
        """Checkpoints a finished stage: its arrays (scalars as 0-d arrays), atomically."""
        write_npz(self._stage_path(stage), **arrays)

    def load_stage(self, stage: str) -> dict[str, np.ndarray]:
        """The arrays saved by `save_stage(stage, ...)`."""
        with np.load(self._stage_path(stage), allow_pickle=False) as data:
            return {key: data[key] for key in data.files}

    # -- results ---------------------------------------------------------------------------

    def write_summary(self, results: Mapping[str, Any], **extra: Any) -> Path:
        """Writes ``summary.json``: config, versions, `results` and any `extra` sections."""
        return write_json(
            self.path / "summary.json",
            {"config": self.config, "versions": versions(), "results": results, **extra},
        )

    def write_results(self, **arrays: Any) -> Path:
        """Writes ``results.npz``."""
        return write_npz(self.path / "results.npz", **arrays)

    def save_figure(self, fig: Any, name: str) -> Path:
        """Saves `fig` as ``figures/<name>`` (e.g. "neighbourhoods.png")."""
        return save_figure(fig, self.figures_dir / name)

    @property
    def tensorboard(self):
        """A `tf.summary` writer for ``tensorboard/``, created on first use."""
        if self._writer is None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(str(self.path / "tensorboard"))
        return self._writer

    def close(self) -> None:
        """Flushes and closes the TensorBoard writer, if any."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- progress --------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Seconds since this object was created."""
        return time.monotonic() - self._start

    def progress(self, message: str, done: float | None = None, total: float | None = None) -> str:
        """Prints ``[name elapsed] message`` and, given `done` of `total` units, an ETA.

        The remaining time is extrapolated from the rate seen in this process since the
        first call that gave `done`: units finished by an earlier, interrupted run (and
        skipped now) do not make the estimate optimistic.

        Returns:
            The line (also printed when `verbose`).
        """
        now = time.monotonic()
        line = f"[{self.name} {_format_seconds(now - self._start)}] {message}"
        if done is not None and total is not None:
            line += f" ({done:g}/{total:g}"
            if self._eta_origin is None:
                self._eta_origin = (float(done), now)
            first_done, first_time = self._eta_origin
            if done > first_done and now > first_time:
                rate = (now - first_time) / (done - first_done)
                line += f", ~{_format_seconds(rate * max(total - done, 0))} left"
            line += ")"
        if self.verbose:
            self._printer(line)
        return line

    def __repr__(self) -> str:
        return f"OutputDir({str(self.path)!r})"
