"""The run directory shared by the study binaries: one output directory per configuration.

A run writes everything under one directory:

- ``config.json``: the configuration (flags) it was started with. A directory is only reused
  with the same configuration, so results from different settings never mix.
- ``stages/<stage>.npz``: a checkpoint per finished stage (e.g. "init", "trained"). A run
  killed at any moment and restarted with the same command skips finished stages and ends
  with the same results.
- ``summary.json``: configuration, library versions and every measured number.
- ``results.npz``, ``figures/*.png``: arrays and figures.
- ``tensorboard/<run>/``: TensorBoard event files, one per step (`OutputDir.step_events`),
  so TensorBoard shows a run live and a resumed run never duplicates a point.
- ``.lock``: held by the run using the directory (`check_output_dir`, `OutputDir`): a second
  run on the same directory is refused, naming the first one's process id.

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

import fcntl
import json
import os
import platform
import shutil
import socket
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tfstiffness.errors import (
    ConfigMismatchError,
    CorruptFileError,
    OutputDirBusyError,
    OutputDirError,
)
from tfstiffness.outputs import stage_record
from tfstiffness.outputs.atomic import (  # JSON and .npz files: one implementation, there
    NPZ_READ_ERRORS,
    TMP_SUFFIX,
    atomic_write,
    jsonable,
    read_json,
    read_npz,
    write_json,
    write_npz,
)
from tfstiffness.outputs.plots import save_figure

__all__ = ["ConfigMismatchError", "CorruptFileError", "OutputDir", "OutputDirBusyError",
           "OutputDirError", "atomic_write", "check_config", "check_output_dir", "format_seconds",
           "jsonable", "read_json", "save_figure", "versions", "write_json", "write_npz"]



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


def format_seconds(seconds: float) -> str:
    """``12.3s``, ``4m05s`` or ``1h02m``.

    Example:
        >>> format_seconds(245)
        '4m05s'
    """
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


# --------------------------------------------------------------------------------------------
# Output directory checks and the lock
# --------------------------------------------------------------------------------------------


def _unreadable(what: str, path: Path, err: Exception, advice: str) -> CorruptFileError:
    # Files are renamed into place only when complete, so a damaged one was changed by
    # something else (a disk fault, a copy cut short, an editor): never guess its content.
    return CorruptFileError(f"{what} {path} cannot be read ({type(err).__name__}: {err}); it "
                            f"was damaged after it was written. {advice}")


LOCK_NAME = ".lock"
# Locks this process holds: resolved path -> [open lock file, number of holders].
_HELD: dict[str, list] = {}


def check_output_dir(path: str | os.PathLike) -> Path:
    """Refuses an output directory that cannot be used, before anything is written to it.

    The path must be a directory (or not exist yet), writable (its nearest existing
    ancestor when it does not exist yet), and not locked by another live run. Nothing is
    created: a probe file in the nearest existing directory is removed at once.

    Args:
        path: The output directory.

    Returns:
        The path.

    Raises:
        OutputDirError: naming the path and what is wrong (`OutputDirBusyError` when another
            run holds it, naming that run's process id).

    Example:
        >>> import tempfile
        >>> f = tempfile.mkstemp()[1]
        >>> check_output_dir(f)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tfstiffness.errors.OutputDirError: output directory ... is a file, not a directory...
    """
    path = Path(path)
    existing = path
    while not existing.exists():
        if existing.is_symlink():  # exists() is False for a dangling link or a loop
            raise OutputDirError(f"output directory {path}: {existing} is a symbolic link to "
                                 f"{os.readlink(existing)}, which does not exist or loops. "
                                 "Point the link at a directory, or give another path.")
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "the output directory" if existing == path else f"its parent {existing}"
        raise OutputDirError(f"output directory {path}: {what} is a file, not a directory. "
                             "Give a directory path.")
    if not _writable(existing):
        what = "" if existing == path else f" (its nearest existing parent {existing})"
        raise OutputDirError(f"output directory {path}{what} is not writable. Give a "
                             "directory you can write to.")
    if path.is_dir():
        holder = _live_holder(path / LOCK_NAME)
        if holder is not None:
            raise OutputDirBusyError(_busy_message(path, holder))
    _check_no_live_run_around(path)
    return path


def _check_no_live_run_around(path: Path) -> None:
    """Refuses a directory inside, or holding, another live run's output directory: its
    files would mix with this run's (and one run's clean-up could meet the other's files)."""
    for parent in path.absolute().parents:
        holder = _live_holder(parent / LOCK_NAME)
        if holder is not None:
            raise OutputDirBusyError(
                f"output directory {path} is inside {parent}, the output directory of another "
                f"live run ({holder}). Use a directory outside it, or wait for it to finish.")
    if not path.is_dir():
        return
    for root, dirs, files in os.walk(path):
        if Path(root) != path and LOCK_NAME in files:
            holder = _live_holder(Path(root) / LOCK_NAME)
            if holder is not None:
                raise OutputDirBusyError(
                    f"output directory {path} holds {root}, the output directory of another "
                    f"live run ({holder}). Use another directory, or wait for it to finish.")


def check_config(path: str | os.PathLike, config: Mapping[str, Any]) -> None:
    """Refuses a directory whose ``config.json`` differs from `config`; writes nothing.

    A directory without ``config.json`` passes. `OutputDir` does the same check when it
    opens a directory; this is for a run that must refuse before it creates anything.

    Raises:
        ConfigMismatchError: naming each differing key with its saved and new value.

    Example:
        >>> import tempfile
        >>> check_config(tempfile.mkdtemp(), {"epochs": 3})  # No config.json yet: fine.
    """
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.exists():
        return
    config = json.loads(json.dumps(jsonable(dict(config))))
    try:
        saved = read_json(config_path)
        if not isinstance(saved, dict):
            raise TypeError(f"expected a JSON object, got {type(saved).__name__}")
    except (ValueError, TypeError) as err:  # UnicodeDecodeError is a ValueError.
        raise _unreadable("config", config_path, err,
                          f"Delete the output directory {path} to start over (the results "
                          f"in it cannot be matched to a configuration).") from None
    if saved == config:
        return
    differences = []
    for key in sorted(set(saved) | set(config)):
        old, new = saved.get(key, "<absent>"), config.get(key, "<absent>")
        if old != new:
            differences.append(f"{key}: saved {old}, now {new}")
    raise ConfigMismatchError(
        f"output directory {path} holds results of a different configuration "
        f"({'; '.join(differences)}). Use another output directory, or delete this one "
        "to start over."
    )


def _writable(directory: Path) -> bool:
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    try:  # os.access says yes to root on a read-only file system: try for real.
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=TMP_SUFFIX, dir=directory)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def _read_holder(lock_path: Path) -> str:
    try:
        return lock_path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _live_holder(lock_path: Path) -> str | None:
    """The holder's description when a live process holds the lock, else None."""
    if str(lock_path.resolve()) in _HELD or not lock_path.exists():
        return None
    try:
        with open(lock_path, encoding="utf-8") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return f.read().strip() or "another process"
            fcntl.flock(f, fcntl.LOCK_UN)
    except OSError:
        return None
    return None


def _busy_message(path: Path, holder: str) -> str:
    return (f"output directory {path} is in use by another run ({holder}). Wait for it to "
            "finish, stop it, or use another output directory.")


def _acquire_lock(path: Path) -> str | None:
    """Locks `path` for this process (re-entrant); returns a stale holder taken over, if any.

    The lock is an exclusive `flock` on ``path/.lock``, which the operating system releases
    when the holder exits in any way, SIGKILL included; the file names the holder (process
    id, host, start time). A lock file that still names a process but is not locked was left
    by a run that died: it is taken over.
    """
    key = str((path / LOCK_NAME).resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        return None
    f = open(path / LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115 - held open.
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise OutputDirBusyError(_busy_message(path, holder)) from None
    f.seek(0)
    stale = f.read().strip() or None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}, started "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    f.flush()
    _HELD[key] = [f, 1]
    return stale


def _release_lock(path: Path) -> None:
    key = str((path / LOCK_NAME).resolve())
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] > 0:
        return
    f = held[0]
    del _HELD[key]
    try:
        f.seek(0)
        f.truncate()  # An empty lock file: released cleanly, not stale.
        f.flush()
    except OSError:
        pass
    finally:
        f.close()  # Closing the file releases the flock.


# --------------------------------------------------------------------------------------------
# The output directory
# --------------------------------------------------------------------------------------------


class OutputDir:
    """A run's output directory: lock, config guard, checkpoints, results, progress.

    Opening one checks the path (`check_output_dir`), creates it, and locks it for this
    process: a second run on the same directory is refused while this one lives (the lock
    dies with the process, so a killed run's lock is taken over by the next). Call `close`
    (or use it as a context manager) to release it earlier.

    Args:
        path: The directory; created with its parents.
        config: The run's configuration (flag values): JSON-able after `jsonable`.
            Saved as ``config.json`` on first use; reopening the directory with a different
            configuration raises ValueError naming the differing keys.
        name: Prefix of the progress lines (default: the directory's name).
        verbose: Print progress lines (to stdout, flushed).
        printer: Where progress lines go instead of `print` (e.g. `logging.info`).
        tensorboard_dir: Where the TensorBoard runs go; default ``path/tensorboard``. A run
            that is part of a larger one (one seed of several) writes into the larger run's
            directory, e.g. ``<outer>/tensorboard/seed=0``, so one ``tensorboard --logdir``
            shows every part.
        started: `time.monotonic()` when the run began, if before this directory was opened
            (the elapsed times of the progress lines count from it).
        inputs: Digests of what the stages depend on beyond `config` (name -> digest, e.g.
            of given checkpoint files): each stage records them with `config`, and a stage
            made by other settings or inputs is refused (`stage_record`).

    Raises:
        OutputDirError: The path is a file or not writable, or another live run holds it.
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
        tfstiffness.errors.ConfigMismatchError: ...(lr: saved 0.1, now 0.2)...
    """

    def __init__(
        self,
        path: str | os.PathLike,
        config: Mapping[str, Any],
        name: str | None = None,
        verbose: bool = True,
        printer: Callable[[str], None] | None = None,
        tensorboard_dir: str | os.PathLike | None = None,
        started: float | None = None,
        inputs: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self._tensorboard_dir = None if tensorboard_dir is None else Path(tensorboard_dir)
        # Round-trip through JSON so tuples and lists, numpy and Python numbers compare equal.
        self.config = json.loads(json.dumps(jsonable(dict(config))))
        self.inputs = dict(inputs or {})
        self.name = name or self.path.name
        self.verbose = verbose
        self._printer = printer or (lambda line: print(line, flush=True))
        self._start = time.monotonic() if started is None else started
        self._eta_origin: tuple[float, float] | None = None
        self._locked = False
        check_output_dir(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputDirError(f"output directory {self.path} cannot be created: "
                                 f"{err.strerror}.") from None
        stale = _acquire_lock(self.path)
        self._locked = True
        self._finalizer = weakref.finalize(self, _release_lock, self.path)
        # A matching config.json vouches for stages that predate their own records.
        self._config_matched = self.config_path.exists()
        try:
            self._check_config()
        except BaseException:
            self.close()
            raise
        if stale:
            self.progress(f"took over the lock left by a run that ended without releasing "
                          f"it ({stale})")
        self._remove_stale_temporaries()

    def close(self) -> None:
        """Releases the directory's lock (also released when the process exits)."""
        if self._locked:
            self._locked = False
            self._finalizer()

    def __enter__(self) -> OutputDir:  # noqa: PYI034 - Self needs Python 3.11.
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- configuration ---------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def _check_config(self) -> None:
        if not self.config_path.exists():
            write_json(self.config_path, self.config)
            return
        check_config(self.path, self.config)

    def _remove_stale_temporaries(self) -> None:
        # Left by a run killed while writing; never a result (they are renamed when complete),
        # and never another live run's: this process holds the directory's lock, and the
        # walk skips every directory below that is a run directory of its own (a .lock or a
        # config.json: a nested run, e.g. one seed of several, cleans up after itself).
        for root, dirs, files in os.walk(self.path):
            here = Path(root)
            dirs[:] = [d for d in dirs if not (here / d / LOCK_NAME).exists()
                       and not (here / d / "config.json").exists()]
            for name in [*dirs, *files]:
                if name.startswith(".") and name.endswith(TMP_SUFFIX):
                    tmp = here / name
                    if tmp.is_dir():
                        shutil.rmtree(tmp, ignore_errors=True)
                        dirs.remove(name)
                    else:
                        tmp.unlink(missing_ok=True)

    # -- stage checkpoints -----------------------------------------------------------------

    @property
    def stages_dir(self) -> Path:
        return self.path / "stages"

    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard" if self._tensorboard_dir is None else (
            self._tensorboard_dir)

    def _stage_path(self, stage: str) -> Path:
        if not stage or "/" in stage or stage.startswith("."):
            raise ValueError(f"bad stage name {stage!r}")
        return self.stages_dir / f"{stage}.npz"

    def done(self, stage: str) -> bool:
        """Whether `stage` finished (its checkpoint exists) in this or an earlier run.

        Raises:
            ConfigMismatchError: The checkpoint was made by other settings or inputs.
            CorruptFileError: The checkpoint cannot be read.
        """
        path = self._stage_path(stage)
        if not path.exists():
            return False
        stage_record.check(path, self._read_stage(path).get(stage_record.KEY), self.config,
                           self.inputs, self._config_matched)
        return True

    def save_stage(self, stage: str, arrays: Mapping[str, Any]) -> None:
        """Checkpoints a finished stage: its arrays (scalars as 0-d arrays) and what made it
        (`stage_record`), atomically."""
        write_npz(self._stage_path(stage), **arrays,
                  **{stage_record.KEY: stage_record.record(self.config, self.inputs)})

    def load_stage(self, stage: str) -> dict[str, np.ndarray]:
        """The arrays saved by `save_stage(stage, ...)`.

        Raises:
            CorruptFileError: The checkpoint cannot be read, naming it and what to do.
        """
        arrays = self._read_stage(self._stage_path(stage))
        arrays.pop(stage_record.KEY, None)
        return arrays

    def _read_stage(self, path: Path) -> dict[str, np.ndarray]:
        try:
            return read_npz(path)
        except NPZ_READ_ERRORS as err:
            raise _unreadable("stage checkpoint", path, err,
                              f"Delete it to redo that stage, or delete the output directory "
                              f"{self.path} to start over.") from None

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

    def step_events(self, run: str, step: int):
        """A `tf.summary` writer for the events of `step` of TensorBoard run `run`.

        A context manager (`tensorboard.step_events`): the events land in
        ``tensorboard/<run>/`` as one file named by the step, atomically, when the block
        ends. Writing the same step again replaces that file, so a resumed run that redoes
        a step leaves TensorBoard one copy of it.
        """
        from tfstiffness.outputs import tensorboard

        return tensorboard.step_events(self.tensorboard_dir / run, step, staging_dir=self.path)

    # -- progress --------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Seconds since this object was created."""
        return time.monotonic() - self._start

    def progress(self, message: str, done: float | None = None, total: float | None = None,
                 remaining: float | None = None) -> str:
        """Prints ``[name elapsed] message`` with an estimate of the time left.

        Either `remaining` (seconds, estimated by the caller) or, given `done` of `total`
        units, an extrapolation from the rate seen in this process since the first call that
        gave `done`: units finished by an earlier, interrupted run (and skipped now) do not
        make the estimate optimistic.

        Returns:
            The line (also printed when `verbose`).
        """
        now = time.monotonic()
        line = f"[{self.name} {format_seconds(now - self._start)}] {message}"
        if remaining is not None:
            line += f" (~{format_seconds(max(remaining, 0.0))} left)"
        elif done is not None and total is not None:
            line += f" ({done:g}/{total:g}"
            if self._eta_origin is None:
                self._eta_origin = (float(done), now)
            first_done, first_time = self._eta_origin
            if done > first_done and now > first_time:
                rate = (now - first_time) / (done - first_done)
                line += f", ~{format_seconds(rate * max(total - done, 0))} left"
            line += ")"
        if self.verbose:
            self._printer(line)
        return line

    def __repr__(self) -> str:
        return f"OutputDir({str(self.path)!r})"
