"""Small matrix helpers the measures share (private to `tfstiffness.measures`)."""

from __future__ import annotations

from typing import Any

import numpy as np


def total_of(gram: Any) -> Any:
    """The Gram matrix of a ``GradientGram`` (its ``total``), or the array itself."""
    return gram.total if hasattr(gram, "total") else gram


def one_hot(indices: np.ndarray, depth: int) -> np.ndarray:
    """[n, depth] float64 one-hot rows of integer indices."""
    one_hot = np.zeros((indices.size, depth), dtype=np.float64)
    one_hot[np.arange(indices.size), indices] = 1.0
    return one_hot


def inverse_sqrt_or_zero(sq_norms: np.ndarray) -> np.ndarray:
    """1 / sqrt(n) where n > 0, else 0: a zero gradient has no direction."""
    safe = np.where(sq_norms > 0, sq_norms, 1.0)
    return np.where(sq_norms > 0, 1.0 / np.sqrt(safe), 0.0)


def ratio_or_nan(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """sums / counts, NaN where the count is 0 (no pair to average)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), np.nan)


def nanmean(values: np.ndarray) -> float:
    """Mean of the non-NaN entries; NaN, without numpy's warning, when there are none."""
    values = np.asarray(values, dtype=np.float64)
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")
