"""Progress of a study: the estimate of the time left, numbers as the progress lines print
them, and the closing lines naming what a run wrote.

Example:
    >>> format_number(0.12345)
    '0.123'
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EtaModel", "format_number", "written_lines"]


class EtaModel:
    """Time left in a study, from the costs of unmeasured and measured epochs seen so far.

    An epoch costs its training, a measured epoch also its measurement (a Gram matrix, the
    measures and the images: several unmeasured epochs' worth). The first epoch and the first
    measurement of each run also pay for tracing TensorFlow functions. So the estimate is
    ``epochs left x mean training time + measurements left x mean measurement time``, each
    mean over this process's observations after a run's first, plus the first-time overhead
    (first minus mean) once for each run not started yet, plus the final figures, each
    costed like a figure drawn for TensorBoard during a measurement.

    Args:
        schedule: run label -> (epochs, measured epochs) of every run of the study.
        final_figures: Figures drawn at the end.

    Example:
        >>> eta = EtaModel({"": (4, [0, 2, 4])})
        >>> eta.remaining() is None  # Nothing seen yet.
        True
        >>> for e, train, measure in [(0, 0, 5.0), (1, 2.0, 0), (2, 1.0, 2.0)]:
        ...     eta.record("", e, train, measure)
        >>> eta.remaining()  # 2 epochs of 1 s, 1 measurement of 2 s.
        4.0
    """

    def __init__(self, schedule: Mapping[str, tuple[int, Sequence[int]]],
                 final_figures: int = 0):
        self._final_figures = final_figures
        self._image_seconds: list[float] = []
        self._todo = {label: (set(range(1, epochs + 1)), {int(e) for e in measured})
                      for label, (epochs, measured) in schedule.items()}
        self._train: dict[str, list[float]] = {}
        self._measure: dict[str, list[float]] = {}

    def record(self, label: str, epoch: int, train_seconds: float, measure_seconds: float,
               images: int = 0, image_seconds: float = 0.0) -> None:
        """Marks `epoch` of run `label` done (and any earlier one, finished before a resume).

        Args:
            label: The run.
            epoch: The epoch done (0: the initial measurement).
            train_seconds: Its training time.
            measure_seconds: Its measurement time, writing its summaries included.
            images: Figures drawn for the summaries, in `image_seconds`: their mean cost
                estimates the final figures' (`final_figures`).
            image_seconds: Time spent writing the summaries (a part of `measure_seconds`).
        """
        if images:
            self._image_seconds.append(image_seconds / images)
        epochs, measured = self._todo[label]
        epochs -= {e for e in epochs if e <= epoch}
        measured -= {e for e in measured if e < epoch}
        if epoch > 0:  # (After a resume, the first epoch pays for tracing again.)
            self._train.setdefault(label, []).append(train_seconds)
        if epoch in measured:
            measured.discard(epoch)
            self._measure.setdefault(label, []).append(measure_seconds)

    def remaining(self) -> float | None:
        """Estimated seconds left; None until a training epoch and a measurement were seen."""
        train_mean, train_extra = _mean_and_overhead(self._train)
        measure_mean, measure_extra = _mean_and_overhead(self._measure)
        epochs_left = sum(len(epochs) for epochs, _ in self._todo.values())
        measures_left = sum(len(measured) for _, measured in self._todo.values())
        if (epochs_left and train_mean is None) or (measures_left and measure_mean is None):
            return None
        total = 0.0
        if self._final_figures and self._image_seconds:
            total += self._final_figures * float(np.median(self._image_seconds))
        for label, (epochs, measured) in self._todo.items():
            if epochs:
                total += len(epochs) * train_mean
                if label not in self._train:
                    total += train_extra
            if measured:
                total += len(measured) * measure_mean
                if label not in self._measure:
                    total += measure_extra
        return total


def _mean_and_overhead(seconds: Mapping[str, list[float]]) -> tuple[float | None, float]:
    """(mean cost after each run's first unit, mean extra cost of a first unit)."""
    later = [s for runs in seconds.values() for s in runs[1:]]
    firsts = [runs[0] for runs in seconds.values() if runs]
    if not firsts:
        return None, 0.0
    if not later:
        return float(np.mean(firsts)), 0.0
    mean = float(np.mean(later))
    return mean, max(float(np.mean(firsts)) - mean, 0.0)


def format_number(value: Any, digits: int = 3) -> str:
    """``0.123``, or ``n/a`` for NaN/None.

    Example:
        >>> format_number(0.12345), format_number(float("nan"))
        ('0.123', 'n/a')
    """
    if value is None:
        return "n/a"
    value = float(value)
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def written_lines(path: Path, figures: Sequence[str],
                  tensorboard_dir: Path | None = None) -> list[str]:
    """The closing lines of a run: what was written where, and how to look at it
    (TensorBoard in `tensorboard_dir`, default ``path/tensorboard``).

    Example:
        >>> for line in written_lines(Path("runs/x"), ["curves.png"]):
        ...     print(line)
        wrote runs/x: summary.json (every number), results.npz (arrays), figures/curves.png
        view the measurements live or afterwards: tensorboard --logdir runs/x/tensorboard
    """
    listed = ", ".join(f"figures/{name}" for name in figures)
    return [f"wrote {path}: summary.json (every number), results.npz (arrays)"
            + (f", {listed}" if listed else ""),
            "view the measurements live or afterwards: tensorboard --logdir "
            + shlex.quote(str(path / "tensorboard" if tensorboard_dir is None
                              else tensorboard_dir))]
