"""What a measurement is: its values by name, the pair sets they come from, and the numbers
derived from a stiffness matrix and the critical length (see the package docstring for the
names)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from tfstiffness import measures

__all__ = ["INTERVAL_STATISTICS", "XI_ESTIMATORS", "XI_STATUSES", "Measurement", "PairSet",
           "mean_pairs", "pair_stiffness", "scalar_values", "xi_values"]

#: `measures.CriticalLength.status` values, in the order of the ``xi_*_status`` codes.
XI_STATUSES = measures.CRITICAL_LENGTH_STATUSES
#: The critical-length estimators (`measures.critical_length` methods), as in the value names.
XI_ESTIMATORS = ("crossing", "linear_fit")
#: Statistics given a bootstrap interval, per pair set and kind (``superclass_contrast`` only
#: with super-classes, the xi only where the pair set has a curve).
INTERVAL_STATISTICS = ("within", "between", "superclass_contrast", "xi_crossing",
                       "xi_linear_fit")
# Numbers that are not TensorBoard scalars (status codes; a bound shown in the curve image).
_NOT_SCALARS = ("/xi_crossing_status", "/xi_crossing_bound", "/xi_linear_fit_status")


@dataclasses.dataclass
class Measurement:
    """One measurement of a model on the probe sets.

    Attributes:
        values: tag -> number or array (see the package docstring); the record that histories,
            checkpoints and results keep.
        gram_method: the `gradient_gram` method that computed the Gram matrix.
        stiffness: (pairs, kind) -> the pair set's stiffness matrix (for histograms; not kept).
        curves: (pairs, kind) -> (`measures.StiffnessCurve`, (crossing, linear fit)
            `measures.CriticalLength`s), for the images; absent for a pair set without two
            examples of one class.
    """

    values: dict[str, Any]
    gram_method: str
    stiffness: dict[tuple[str, str], np.ndarray]
    curves: dict[tuple[str, str], tuple[Any, Any]]


def scalar_values(values: Mapping[str, Any]) -> dict[str, float]:
    """The TensorBoard scalars among a measurement's values: finite-or-NaN numbers.

    Example:
        >>> scalar_values({"a/within": 0.5, "a/class_matrix": np.eye(2),
        ...                "a/xi_crossing_status": 1})
        {'a/within': 0.5}
    """
    return {key: float(value) for key, value in values.items()
            if np.ndim(value) == 0 and not key.endswith(_NOT_SCALARS)
            and np.asarray(value).dtype.kind in "fiub"}


@dataclasses.dataclass(frozen=True)
class PairSet:
    """One pair set: its block of the [probe; val] Gram matrix, labels and input distances."""

    rows: slice
    cols: slice
    one_set: bool  # rows and columns are the same examples (self pairs excluded)
    labels: np.ndarray
    labels2: np.ndarray | None  # column labels, for two sets
    distances: np.ndarray | None  # input distances; None when measured in a representation


def pair_stiffness(G: np.ndarray, sq_norms: np.ndarray, spec: PairSet, kind: str) -> np.ndarray:
    """The stiffness matrix of `kind` of one pair set's block of the Gram matrix `G`."""
    rows, cols = spec.rows, spec.cols
    block = G[rows, cols]
    with warnings.catch_warnings():
        # Zero-gradient examples are counted in `zero_gradients/...` instead of warned about
        # at every measurement.
        warnings.filterwarnings("ignore", message=".*exactly zero gradient")
        if spec.one_set:
            return measures.stiffness_matrix(block, kind, sq_norms=sq_norms[rows])
        return measures.stiffness_matrix(block, kind, sq_norms=sq_norms[rows],
                                         sq_norms2=sq_norms[cols])


def xi_values(name: str, crossing: measures.CriticalLength | None,
               fit: measures.CriticalLength | None) -> dict[str, float | int]:
    """The critical length by both estimators as numbers (None, None: an undefined
    measurement, every number NaN and the statuses "no_pairs")."""
    nan, no_pairs = math.nan, XI_STATUSES.index("no_pairs")
    if crossing is None:
        out: dict[str, float | int] = {f"{name}/xi_crossed": nan, f"{name}/xi_crossing": nan,
                                       f"{name}/xi_crossing_status": no_pairs,
                                       f"{name}/xi_crossing_bound": nan}
    else:
        crossed = crossing.status == "crossed"
        out = {f"{name}/xi_crossed": float(crossed),
               f"{name}/xi_crossing": crossing.xi if crossed else nan,
               f"{name}/xi_crossing_status": XI_STATUSES.index(crossing.status),
               f"{name}/xi_crossing_bound": nan if crossed or crossing.bound is None
               else crossing.bound}
    fitted = fit is not None and fit.xi is not None

    def number(value: float | None) -> float:
        return nan if value is None else float(value)

    out.update({
        f"{name}/xi_linear_fit": fit.xi if fitted else nan,
        f"{name}/xi_linear_fit_status": no_pairs if fit is None else XI_STATUSES.index(
            fit.status),
        f"{name}/xi_linear_fit_slope": nan if fit is None else number(fit.slope),
        f"{name}/xi_linear_fit_intercept": nan if fit is None else number(fit.intercept),
        f"{name}/xi_linear_fit_r2": nan if fit is None else number(fit.r_squared),
        f"{name}/xi_linear_fit_extrapolated": float(fit.extrapolated) if fitted else nan})
    return out


def mean_pairs(S: np.ndarray, spec: PairSet) -> float:
    """Mean stiffness over all pairs; self pairs excluded within one set."""
    if spec.one_set:
        off_diagonal = ~np.eye(S.shape[0], dtype=bool)
        return float(S[off_diagonal].mean()) if off_diagonal.any() else math.nan
    return float(S.mean())

