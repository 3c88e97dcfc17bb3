"""Stiffness against input distance and the dynamical critical length xi (pure numpy).

Definitions follow STIFFNESS.md (Fort et al. 2019): example pairs binned by their input
distance (`tfstiffness.measures.input_space`), the mean stiffness per bin for same-class,
different-class or all pairs (`stiffness_vs_distance`, a `StiffnessCurve`), and the critical
length read off such a curve by a zero crossing or a linear fit (`critical_length`, a
`CriticalLength`). Non-finite values are refused as in `tfstiffness.measures.stiffness`.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np

from tfstiffness import checks
from tfstiffness.measures._matrix import ratio_or_nan
from tfstiffness.measures.input_space import input_distances

PAIR_KINDS = ("within", "between", "all")
CRITICAL_LENGTH_METHODS = ("crossing", "linear_fit")
#: Every `CriticalLength.status`: those of the crossing estimator, of the linear fit, and the
#: one of a curve with no non-empty bin.
CRITICAL_LENGTH_STATUSES = ("crossed", "never_crossed", "nonpositive_from_start", "fitted",
                            "no_decay", "nonpositive_at_zero", "too_few_bins", "no_pairs")


# --------------------------------------------------------------------------------------------
# Stiffness against distance
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class StiffnessCurve:
    """Mean stiffness of example pairs binned by distance.

    Attributes:
        edges: [B + 1] bin edges; bins are [e_k, e_k+1), the last one closed.
        centres: [B] bin centres.
        means: [B] mean stiffness per bin; NaN for an empty bin.
        counts: [B] number of pairs per bin.
        pairs: which pairs were binned: "within", "between" or "all".
    """

    edges: np.ndarray
    centres: np.ndarray
    means: np.ndarray
    counts: np.ndarray
    pairs: str


def stiffness_vs_distance(
    S: np.ndarray,
    x: Any | None = None,
    labels: np.ndarray | None = None,
    pairs: str = "within",
    bins: int | np.ndarray = 20,
    x2: Any | None = None,
    labels2: np.ndarray | None = None,
    distances: np.ndarray | None = None,
) -> StiffnessCurve:
    """Bin example pairs by distance and average their stiffness per bin.

    One set (S square, no ``x2`` and no ``labels2``): each unordered pair counts once, taken
    as i < j from the upper triangle (S is symmetric for one set, so the ordered pairs would
    only double every count); self-pairs are excluded. Two sets (``x2`` or ``labels2`` given,
    or S not square): every pair (i, j) counts.

    Args:
        S: [N, M] stiffness matrix.
        x: [N, ...] inputs (or representations) of the row examples, for ``input_distances``.
        labels: [N] integer classes of the row examples; needed for "within" and "between".
        pairs: "within" (same class), "between" (different classes) or "all".
        bins: number of equal-width bins spanning the smallest to the largest selected
            distance, or an increasing array of bin edges (pairs outside are dropped).
        x2: [M, ...] inputs of the column examples, for two sets.
        labels2: [M] integer classes of the column examples, for two sets.
        distances: [N, M] precomputed distances, used instead of ``x`` / ``x2``.

    Returns:
        A ``StiffnessCurve``.

    Raises:
        ValueError: unknown ``pairs``; a NaN or inf in S, the inputs or the distances;
            labels missing or malformed; neither ``x`` nor ``distances``; shapes not
            matching S; bad ``bins``; no pair selected.

    Example:
        >>> S = np.array([[1.0, 0.8, -0.5], [0.8, 1.0, 0.2], [-0.5, 0.2, 1.0]])
        >>> d = np.array([[0.0, 0.1, 0.9], [0.1, 0.0, 0.5], [0.9, 0.5, 0.0]])
        >>> curve = stiffness_vs_distance(S, pairs="all", bins=2, distances=d)
        >>> print(curve.edges, curve.counts, curve.means)
        [0.1 0.5 0.9] [1 2] [ 0.8  -0.15]
    """
    if pairs not in PAIR_KINDS:
        raise ValueError(f"pairs must be one of {PAIR_KINDS}, got {pairs!r}")
    S = checks.float_matrix(S, "S")
    checks.finite_array(S, "S")
    one_set = x2 is None and labels2 is None and S.shape[0] == S.shape[1]
    pair_distances = _pair_distances(S, x, x2, distances, one_set)
    selected = selected_pairs(S.shape, labels, labels2, pairs, one_set)
    d_selected = pair_distances[selected]
    s_selected = S[selected]
    if d_selected.size == 0:
        raise ValueError(f"pairs={pairs!r} selected no pair of examples to bin")
    edges = _bin_edges(bins, d_selected)
    counts, means = _binned_means(d_selected, s_selected, edges)
    centres = 0.5 * (edges[:-1] + edges[1:])
    return StiffnessCurve(edges=edges, centres=centres, means=means, counts=counts, pairs=pairs)


def _pair_distances(S: np.ndarray, x: Any, x2: Any, distances: Any, one_set: bool) -> np.ndarray:
    if distances is not None:
        pair_distances = np.asarray(distances, dtype=np.float64)
        if pair_distances.shape != S.shape:
            raise ValueError(
                f"distances has shape {pair_distances.shape} but S has shape {S.shape}"
            )
        checks.finite_array(pair_distances, "distances")
        return pair_distances
    if x is None:
        raise ValueError("pass x (inputs or representations) or precomputed distances")
    if x2 is None and not one_set:
        raise ValueError("S compares two sets: pass x2 for its column examples")
    pair_distances = input_distances(x, x2)
    if pair_distances.shape != S.shape:
        raise ValueError(
            f"x (and x2) give {pair_distances.shape[0]} x {pair_distances.shape[1]} pairs "
            f"but S has shape {S.shape}"
        )
    return pair_distances


def selected_pairs(
    shape: tuple[int, int], labels: Any, labels2: Any, pairs: str, one_set: bool
) -> np.ndarray:
    """Boolean [N, M] mask of the pairs `stiffness_vs_distance` bins.

    Args:
        shape: (N, M), the shape of the stiffness matrix.
        labels: [N] integer classes of the rows (needed unless ``pairs`` is "all").
        labels2: [M] integer classes of the columns, for two sets.
        pairs: "within", "between" or "all".
        one_set: whether rows and columns are the same examples (then only i < j counts).

    Returns:
        [N, M] bool mask.

    Raises:
        ValueError: labels missing or malformed for "within" and "between".
    """
    selected = np.triu(np.ones(shape, dtype=bool), k=1) if one_set else np.ones(shape, bool)
    if pairs == "all":
        return selected
    if labels is None:
        raise ValueError(f"pairs={pairs!r} needs labels (the class of each example)")
    row_labels = checks.class_indices(labels, "labels", shape[0], "rows")
    if one_set:
        col_labels = row_labels
    elif labels2 is None:
        raise ValueError(f"pairs={pairs!r} between two sets needs labels2 as well")
    else:
        col_labels = checks.class_indices(labels2, "labels2", shape[1], "columns")
    same_class = row_labels[:, None] == col_labels[None, :]
    return selected & (same_class if pairs == "within" else ~same_class)


def _bin_edges(bins: Any, d_selected: np.ndarray) -> np.ndarray:
    if np.ndim(bins) == 0:
        if not checks.is_positive_int(bins):
            raise ValueError(f"bins must be a positive int or an array of edges, got {bins!r}")
        # Same edges as np.histogram: a zero-width range is widened to +-0.5.
        return np.histogram_bin_edges(d_selected, bins=int(bins))
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bins as edges must be a 1-D strictly increasing array of >= 2 values")
    return edges


def _binned_means(
    d_selected: np.ndarray, s_selected: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    num_bins = edges.size - 1
    index = bin_index(d_selected, edges)
    inside = (index >= 0) & (index < num_bins)
    counts = np.bincount(index[inside], minlength=num_bins)
    sums = np.bincount(index[inside], weights=s_selected[inside], minlength=num_bins)
    return counts, ratio_or_nan(sums, counts)


def bin_index(distances: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each distance; -1 or len(edges) - 1 when outside the edges.

    Args:
        distances: distances, any shape.
        edges: [B + 1] increasing bin edges.

    Returns:
        int array like ``distances``: the index of its bin in [0, B), or -1 / B outside.
    """
    # Half-open bins [e_k, e_k+1) like np.histogram, the last bin closed on the right.
    index = np.searchsorted(edges, distances, side="right") - 1
    index[distances == edges[-1]] = edges.size - 2
    return index


# --------------------------------------------------------------------------------------------
# The dynamical critical length
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CriticalLength:
    """The dynamical critical length xi read off a ``StiffnessCurve``, by one estimator.

    ``xi`` is a number only when the estimator defines one; otherwise ``status`` says why and,
    where it can, ``bound`` says where xi lies. ``str()`` gives a one-line reading that names
    the estimator's caveats.

    Attributes:
        xi: the critical length, or None when the estimator gives no number.
        status: crossing estimator: "crossed" (xi is set); "never_crossed" (every non-empty
            bin is > 0: xi lies beyond ``bound``, the largest distance binned);
            "nonpositive_from_start" (the first non-empty bin is already <= 0: xi, if there
            is one, lies below ``bound``, that bin's lower edge).
            Linear fit: "fitted" (xi is set; see ``extrapolated``); "no_decay" (the slope is
            >= 0: stiffness does not fall with distance, no xi); "nonpositive_at_zero" (the
            slope is < 0 but the line is already <= 0 at distance 0: no positive xi);
            "too_few_bins" (fewer than 2 non-empty bins: no line to fit).
            Both: "no_pairs" (every bin is empty).
        bound: the bound described above, else None.
        method: "crossing" or "linear_fit".
        slope: linear fit: slope of the fitted line (stiffness per unit distance).
        intercept: linear fit: the line's value at distance 0.
        r_squared: linear fit: the count-weighted coefficient of determination (NaN when all
            bin means are equal).
        extrapolated: linear fit with xi set: whether xi lies outside ``distance_range``,
            i.e. where no pair was measured.
        distance_range: linear fit: (lower edge of the first non-empty bin, upper edge of the
            last non-empty bin), the distances the fit saw.
    """

    xi: float | None
    status: str
    bound: float | None = None
    method: str = "crossing"
    slope: float | None = None
    intercept: float | None = None
    r_squared: float | None = None
    extrapolated: bool | None = None
    distance_range: tuple[float, float] | None = None

    def __str__(self) -> str:
        if self.status == "no_pairs":
            return "no xi (the curve has no non-empty bin)"
        if self.method == "crossing":
            if self.status == "crossed":
                return f"xi = {self.xi:.3g}"
            if self.status == "never_crossed":
                return f"xi > {self.bound:.3g} (stiffness never crosses zero)"
            return f"xi < {self.bound:.3g} (stiffness is already <= 0 in the first bin)"
        if self.status == "too_few_bins":
            return "no xi (linear fit needs at least 2 non-empty bins)"
        fit = f"slope {self.slope:.3g}, R^2 {self.r_squared:.2f}"
        if self.status == "no_decay":
            return f"no xi (linear fit: stiffness does not decay with distance; {fit})"
        if self.status == "nonpositive_at_zero":
            return f"no xi (linear fit: the line is already <= 0 at distance 0; {fit})"
        low, high = self.distance_range
        if not self.extrapolated:
            return f"xi = {self.xi:.3g} (linear fit; {fit})"
        side = f"beyond {high:.3g}" if self.xi > high else f"below {low:.3g}"
        return f"xi = {self.xi:.3g} (linear fit, extrapolated {side}; {fit})"


def critical_length(curve: StiffnessCurve, method: str = "crossing") -> CriticalLength:
    """The dynamical critical length xi of a stiffness-vs-distance curve.

    Empty bins (count 0) are skipped by both estimators; a non-empty bin with a NaN or inf
    mean is refused (ValueError).

    ``method="crossing"``: the first non-empty bin whose mean is <= 0 after a non-empty bin
    whose mean is > 0; xi interpolates linearly between their centres. Without a crossing the
    result says where xi lies instead of inventing a number.

    ``method="linear_fit"``: the straight line ``s(d) = slope * d + intercept`` fitted by
    least squares to the non-empty bins' means at their centres, each bin weighted by its
    pair count (the same line as an unweighted fit to every pair placed at its bin's
    centre); ``xi = -intercept / slope``, where the line reaches zero. It needs at least 2
    non-empty bins and a negative slope; xi beyond the distances measured is reported with
    ``extrapolated=True``. R^2 is the count-weighted
    ``1 - sum_k n_k (m_k - s(c_k))^2 / sum_k n_k (m_k - mean_n(m))^2``.

    Neither estimator raises on a curve with no non-empty bin: the status is "no_pairs".

    Args:
        curve: a ``StiffnessCurve`` from ``stiffness_vs_distance``.
        method: "crossing" (the default) or "linear_fit".

    Returns:
        A ``CriticalLength``.

    Raises:
        ValueError: unknown ``method``; a non-empty bin whose mean is NaN or inf.

    Example:
        >>> curve = StiffnessCurve(edges=np.array([0.0, 0.2, 0.4, 0.6]),
        ...                        centres=np.array([0.1, 0.3, 0.5]),
        ...                        means=np.array([0.6, 0.2, -0.2]),
        ...                        counts=np.array([5, 5, 5]), pairs="within")
        >>> print(critical_length(curve))
        xi = 0.4
        >>> print(critical_length(curve, method="linear_fit"))
        xi = 0.4 (linear fit; slope -2, R^2 1.00)
        >>> positive = dataclasses.replace(curve, means=np.array([0.6, 0.4, 0.35]))
        >>> print(critical_length(positive))
        xi > 0.6 (stiffness never crosses zero)
        >>> print(critical_length(positive, method="linear_fit"))
        xi = 1.02 (linear fit, extrapolated beyond 0.6; slope -0.625, R^2 0.89)
    """
    if method not in CRITICAL_LENGTH_METHODS:
        raise ValueError(f"method must be one of {CRITICAL_LENGTH_METHODS}, got {method!r}")
    means = np.asarray(curve.means, dtype=np.float64)
    counts = np.asarray(curve.counts)
    filled = np.flatnonzero(counts > 0)
    bad = filled[~np.isfinite(means[filled])]
    if bad.size:
        raise ValueError(
            f"curve.means is NaN or inf in {bad.size} non-empty bin(s), the first is bin "
            f"{bad[0]}: a bin with pairs has a finite mean unless the stiffness was not finite"
        )
    if filled.size == 0:
        return CriticalLength(None, "no_pairs", method=method)
    if method == "linear_fit":
        return _linear_fit_length(curve, filled)
    first = filled[0]
    if means[first] <= 0:
        return CriticalLength(None, "nonpositive_from_start", float(curve.edges[first]))
    for before, after in itertools.pairwise(filled):
        if means[after] <= 0:
            xi = _zero_crossing(
                curve.centres[before], means[before], curve.centres[after], means[after]
            )
            return CriticalLength(xi, "crossed", None)
    return CriticalLength(None, "never_crossed", float(curve.edges[filled[-1] + 1]))


def _zero_crossing(x0: float, y0: float, x1: float, y1: float) -> float:
    """Zero of the line through (x0, y0 > 0) and (x1, y1 <= 0)."""
    return float(x0 + (x1 - x0) * y0 / (y0 - y1))


def _linear_fit_length(curve: StiffnessCurve, filled: np.ndarray) -> CriticalLength:
    if filled.size < 2:
        return CriticalLength(None, "too_few_bins", method="linear_fit")
    x = np.asarray(curve.centres, dtype=np.float64)[filled]
    y = np.asarray(curve.means, dtype=np.float64)[filled]
    w = np.asarray(curve.counts, dtype=np.float64)[filled]
    x_mean = np.sum(w * x) / np.sum(w)
    y_mean = np.sum(w * y) / np.sum(w)
    slope = float(np.sum(w * (x - x_mean) * (y - y_mean)) / np.sum(w * (x - x_mean) ** 2))
    intercept = float(y_mean - slope * x_mean)
    residual = np.sum(w * (y - (slope * x + intercept)) ** 2)
    spread = np.sum(w * (y - y_mean) ** 2)
    r_squared = float(1.0 - residual / spread) if spread > 0 else float("nan")
    distance_range = (float(curve.edges[filled[0]]), float(curve.edges[filled[-1] + 1]))
    fit = {"method": "linear_fit", "slope": slope, "intercept": intercept,
           "r_squared": r_squared, "distance_range": distance_range}
    if slope >= 0:
        return CriticalLength(None, "no_decay", **fit)
    if intercept <= 0:
        return CriticalLength(None, "nonpositive_at_zero", **fit)
    xi = -intercept / slope
    extrapolated = not distance_range[0] <= xi <= distance_range[1]
    return CriticalLength(xi, "fitted", extrapolated=extrapolated, **fit)
