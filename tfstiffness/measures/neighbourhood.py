"""Neighbourhood stiffness (Walker 2023): each point's mean stiffness to its input neighbours.

Low values mark where the model has learned a class boundary: neighbours across it pull in
opposite directions. Pure numpy; rows are processed in blocks so that no N x N distance matrix
is ever held. A NaN or inf in S or in the inputs is refused with a ValueError naming the argument
and the first bad index, as everywhere in `tfstiffness.measures`.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from tfstiffness import checks

WEIGHTINGS = ("uniform", "gaussian")
# Low-dimensional inputs (Walker's 2-D toy data) get exact differences, one feature at a time;
# wider ones a matrix product, which is far faster there.
DIRECT_DISTANCE_MAX_FEATURES = 16
# The share of points a suggested radius gives a neighbour (`suggested_radius`).
NEIGHBOUR_SHARE = 0.9


@dataclasses.dataclass(frozen=True, eq=False)
class NeighbourhoodStiffness:
    """Per-point neighbourhood stiffness.

    Attributes:
        values: [N] (weighted) mean stiffness to the neighbours; NaN for a point without any.
        counts: [N] number of neighbours of each point.
        no_neighbour: int array of the indices of the points without a neighbour.
    """

    values: np.ndarray
    counts: np.ndarray
    no_neighbour: np.ndarray


def neighbourhood_stiffness(
    S: np.ndarray,
    x: Any,
    radius: float | None = None,
    k: int | None = None,
    weighting: str = "uniform",
    bandwidth: float | None = None,
    block_size: int = 1024,
) -> NeighbourhoodStiffness:
    """Mean stiffness of each point to its neighbours in input space, itself excluded.

    Neighbours of i are the points j != i with Euclidean distance ||x_i - x_j|| <= radius
    (radius mode), or the k nearest points j != i, ties broken by the smaller index (k mode).
    Distances are taken between the flattened inputs, as they are (Walker's 2-D grid on
    [-1, 1]^2 uses radii 0.05 to 0.15). Up to ``DIRECT_DISTANCE_MAX_FEATURES`` features they
    come from the explicit differences, as ``np.linalg.norm(x[i] - x[j])`` would give them;
    above that from |a|^2 + |b|^2 - 2 a.b on centred inputs (a matrix product), so there a
    distance within round-off of ``radius`` (or a tie) may fall either way.

    weighting "uniform" takes the plain mean of S_ij over the neighbours; "gaussian" weights
    each neighbour by exp(-d^2 / (2 h^2)), with h = ``bandwidth``, or by default radius / 2
    (radius mode) or half the point's distance to its k-th neighbour (k mode).

    Args:
        S: [N, N] stiffness matrix of one set (e.g. ``measures.stiffness_matrix(gram)``).
        x: [N, ...] inputs; flattened per example.
        radius: neighbourhood radius, in input units.
        k: number of nearest neighbours.
        weighting: "uniform" or "gaussian".
        bandwidth: Gaussian width h; must be > 0.
        block_size: rows processed at a time; memory is O(block_size * N).

    Returns:
        A ``NeighbourhoodStiffness``. When some point has no neighbour (radius mode), a
        UserWarning gives their count and their values are NaN.

    Raises:
        ValueError: not exactly one of ``radius`` and ``k``; a bad ``radius``, ``k``,
            ``weighting``, ``bandwidth`` or ``block_size``; shapes of S and x not matching;
            a NaN or inf in S or x.

    Example:
        >>> x = np.array([[0.0], [0.1], [0.2], [5.0]])
        >>> S = np.array([[1.0, 0.8, 0.4, 0.0],
        ...               [0.8, 1.0, 0.6, 0.0],
        ...               [0.4, 0.6, 1.0, 0.0],
        ...               [0.0, 0.0, 0.0, 1.0]])
        >>> print(neighbourhood_stiffness(S, x, k=2).values)
        [0.6 0.7 0.5 0. ]
    """
    S, points = _checked_inputs(S, x)
    _check_options(radius, k, weighting, bandwidth, block_size, len(points))
    if points.shape[1] > DIRECT_DISTANCE_MAX_FEATURES:
        points = points - points.mean(axis=0)  # Centring shrinks the expansion's round-off.
    point_sq_norms = np.einsum("nd,nd->n", points, points)
    num_points = len(points)
    values = np.full(num_points, np.nan)
    counts = np.zeros(num_points, dtype=np.int64)
    nearest = np.full(num_points, np.inf)  # Each point's distance to its nearest other point.
    for start in range(0, num_points, block_size):
        rows = np.arange(start, min(start + block_size, num_points))
        sq_distances = _block_sq_distances(points, point_sq_norms, rows)
        if radius is not None:
            block_values, block_counts = _radius_block(
                S[rows], sq_distances, radius, weighting, bandwidth
            )
        else:
            block_values, block_counts = _nearest_block(
                S[rows], sq_distances, k, weighting, bandwidth
            )
        values[rows] = block_values
        counts[rows] = block_counts
        nearest[rows] = np.sqrt(sq_distances.min(axis=1))
    no_neighbour = np.flatnonzero(counts == 0)
    if no_neighbour.size:
        warnings.warn(no_neighbour_message(no_neighbour.size, nearest, radius), UserWarning,
                      stacklevel=2)
    return NeighbourhoodStiffness(values=values, counts=counts, no_neighbour=no_neighbour)


def check_radius(radius: Any) -> None:
    """Refuses a radius that is not a finite number >= 0.

    An infinite radius would make each point its own neighbour in streaming (its distance to
    itself is set to +inf), and a NaN or negative one would find no neighbour anywhere.

    Raises:
        ValueError: naming the radius.
    """
    try:
        good = bool(np.isscalar(radius) and not isinstance(radius, (bool, str))
                    and np.isfinite(radius) and radius >= 0)
    except TypeError:
        good = False
    if not good:
        raise ValueError(f"radius must be a finite number >= 0, got {radius!r}")


def suggested_radius(nearest: Any, share: float = NEIGHBOUR_SHARE) -> float | None:
    """A radius that gives at least ``share`` of the points a neighbour, as small as can be.

    The ``share`` quantile of the nearest-neighbour distances, rounded up to three
    significant digits (so that the printed value still gives that share a neighbour).

    Args:
        nearest: [N] each point's distance to its nearest other point.
        share: the share of points that should have a neighbour, in (0, 1].

    Returns:
        The radius, or None when some distance is unknown (NaN) or there is no other
        point (inf).

    Example:
        >>> suggested_radius([0.5, 0.1, 0.3, 0.21234], share=0.75)
        0.3
        >>> suggested_radius([3.05123, 3.1], share=0.5)
        3.06
    """
    nearest = np.sort(np.asarray(nearest, dtype=np.float64))
    if nearest.size == 0 or not np.isfinite(nearest).all():
        return None
    value = float(nearest[int(np.ceil(share * nearest.size)) - 1])
    if value <= 0:
        return 0.0
    rounded = float(f"{value:.3g}")
    if rounded < value:  # Rounded down: up by one in the third significant digit.
        rounded = float(f"{rounded + 10.0 ** (np.floor(np.log10(value)) - 2):.3g}")
    return rounded


def no_neighbour_message(count: int, nearest: Any, radius: float) -> str:
    """What to tell a user whose radius left ``count`` points without a neighbour.

    Args:
        count: the points without a neighbour.
        nearest: [N] each point's distance to its nearest other point.
        radius: the radius used.

    Returns:
        One sentence: the count, and a radius from the quantiles of ``nearest`` that gives
        ``NEIGHBOUR_SHARE`` of the points a neighbour (when ``nearest`` is known).
    """
    nearest = np.asarray(nearest, dtype=np.float64)
    message = (f"{count} of {nearest.size} points have no neighbour within radius {radius:g}; "
               "their neighbourhood stiffness is NaN")
    suggestion = suggested_radius(nearest)
    if suggestion is None:
        return message
    return (f"{message}. Distances to the nearest other point: median "
            f"{np.median(nearest):.3g}; radius {suggestion:g} gives {NEIGHBOUR_SHARE:.0%} of the points a neighbour")


def _checked_inputs(S: Any, x: Any) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(S, "total"):
        raise ValueError("S must be a stiffness matrix: call measures.stiffness_matrix(gram)")
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be a square [N, N] stiffness matrix, got shape {S.shape}")
    points = np.asarray(x, dtype=np.float64)
    if points.ndim == 0 or points.shape[0] != S.shape[0]:
        raise ValueError(
            f"x must hold one input per row of S ({S.shape[0]}), got shape {points.shape}"
        )
    points = points.reshape(points.shape[0], -1)
    checks.finite_array(S, "S")
    checks.finite_array(points, "x (flattened per example)")
    return S, points


def _check_options(
    radius: Any, k: Any, weighting: str, bandwidth: Any, block_size: Any, num_points: int
) -> None:
    if (radius is None) == (k is None):
        raise ValueError("give exactly one of radius and k")
    if radius is not None:
        check_radius(radius)
    if k is not None and not checks.is_positive_int(k):
        raise ValueError(f"k must be a positive int, got {k!r}")
    if k is not None and k > num_points - 1:
        raise ValueError(
            f"k = {k} but each of the {num_points} points has only {num_points - 1} other points"
        )
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if bandwidth is not None and not (np.isscalar(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be a number > 0, got {bandwidth!r}")
    if not checks.is_positive_int(block_size):
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")


def _block_sq_distances(
    points: np.ndarray, point_sq_norms: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """[B, N] squared distances of the block's points to all points; +inf to themselves."""
    if points.shape[1] <= DIRECT_DISTANCE_MAX_FEATURES:
        sq_distances = np.zeros((rows.size, len(points)))
        for feature in points.T:  # Memory stays O(B * N), never O(B * N * D).
            sq_distances += (feature[rows, None] - feature[None, :]) ** 2
    else:
        cross_products = points[rows] @ points.T
        sq_distances = point_sq_norms[rows, None] + point_sq_norms[None, :] - 2.0 * cross_products
        np.maximum(sq_distances, 0.0, out=sq_distances)
    sq_distances[np.arange(rows.size), rows] = np.inf  # A point is not its own neighbour.
    return sq_distances


def _radius_block(
    S_rows: np.ndarray,
    sq_distances: np.ndarray,
    radius: float,
    weighting: str,
    bandwidth: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    is_neighbour = np.sqrt(sq_distances) <= radius  # As ||x_i - x_j|| <= radius reads.
    width = radius / 2 if bandwidth is None else bandwidth
    weights = _weights(sq_distances, is_neighbour, weighting, np.full(len(S_rows), width))
    return _weighted_means(S_rows, weights), is_neighbour.sum(axis=1)


def _nearest_block(
    S_rows: np.ndarray,
    sq_distances: np.ndarray,
    k: int,
    weighting: str,
    bandwidth: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    # A stable sort breaks ties by index; self sits last at +inf.
    nearest = np.argsort(sq_distances, axis=1, kind="stable")[:, :k]
    nearest_sq = np.take_along_axis(sq_distances, nearest, axis=1)
    nearest_S = np.take_along_axis(S_rows, nearest, axis=1)
    if bandwidth is None:
        widths = np.sqrt(nearest_sq[:, -1]) / 2
    else:
        widths = np.full(len(S_rows), bandwidth)
    weights = _weights(nearest_sq, np.ones_like(nearest_sq, bool), weighting, widths)
    return _weighted_means(nearest_S, weights), np.full(len(S_rows), k)


def _weights(
    sq_distances: np.ndarray, is_neighbour: np.ndarray, weighting: str, widths: np.ndarray
) -> np.ndarray:
    """[B, J] weight of each candidate neighbour; 0 for non-neighbours."""
    if weighting == "uniform":
        return is_neighbour.astype(np.float64)
    # Measure from the nearest neighbour: the row's normalisation cancels this shift and
    # the nearest weight is 1, so a small bandwidth cannot underflow every weight to 0.
    masked = np.where(is_neighbour, sq_distances, np.inf)
    nearest = masked.min(axis=1, keepdims=True)
    shift = np.where(np.isfinite(nearest), nearest, 0.0)
    two_h_sq = 2.0 * widths[:, None] ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        exponent = np.where(two_h_sq > 0, (masked - shift) / two_h_sq, 0.0)
    # h = 0 only when every neighbour is at distance 0: the h -> 0 limit weighs them equally.
    return np.where(is_neighbour, np.exp(-np.where(is_neighbour, exponent, 0.0)), 0.0)


def _weighted_means(S_values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    total_weight = weights.sum(axis=1)
    weighted_sum = (np.where(weights > 0, S_values, 0.0) * weights).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total_weight > 0, weighted_sum / total_weight, np.nan)


# --------------------------------------------------------------------------------------------
# Boundary AUC: how well low neighbourhood stiffness finds the true class boundary
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BoundaryAUC:
    """ROC AUC of ``1 - neighbourhood stiffness`` as a detector of boundary points.

    Attributes:
        auc: Probability that a random boundary point scores higher than a random other point,
            ties counted half; NaN when either group is empty.
        positives: Points within the distance of the boundary (with a finite value).
        negatives: The other points with a finite value.
        ignored: Points left out because their value is NaN (no neighbour).
    """

    auc: float
    positives: int
    negatives: int
    ignored: int


def _midranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks of `scores`, tied values sharing the mean of their ranks."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # Start index of each run of equal values, and the run each sorted position belongs to.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    mean_rank = (starts + 1 + ends) / 2.0  # Mean of the ranks starts+1 .. ends.
    ranks = np.empty(scores.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(scores: Any, positives: Any) -> float:
    """ROC AUC: the probability that a random positive scores above a random negative.

    Ties count half (the Mann-Whitney U statistic from mid-ranks, over all positive-negative
    pairs). NaN when either group is empty. The one AUC of the package: `boundary_auc` and
    `label_noise` (flipped labels found by self-influence) both use it.

    Args:
        scores: [N] finite scores; higher means "more likely positive".
        positives: [N] bool, which examples are positives.

    Returns:
        The AUC in [0, 1], or NaN.

    Raises:
        ValueError: shapes other than two [N] arrays, or a NaN or inf score.

    Example:
        >>> roc_auc([0.9, 0.2, 0.8, 0.1], [True, False, True, False])
        1.0
        >>> roc_auc([0.5, 0.5], [True, False])  # A tie counts half.
        0.5
    """
    scores = np.asarray(scores, np.float64)
    positives = np.asarray(positives, bool)
    if scores.shape != positives.shape or scores.ndim != 1:
        raise ValueError(f"scores, positives: expected two [N] arrays, got shapes "
                         f"{scores.shape} and {positives.shape}.")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores: contains NaN or inf.")
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = _midranks(scores)[positives].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def boundary_auc_details(
    neighbourhood_values: Any, boundary_distance: Any, within: float = 0.1
) -> BoundaryAUC:
    """`boundary_auc` with the counts behind it; see there.

    Example:
        >>> d = boundary_auc_details([0.1, np.nan, 0.9], [0.0, 0.0, 1.0])
        >>> d.auc, d.positives, d.negatives, d.ignored
        (1.0, 1, 1, 1)
    """
    values = np.asarray(neighbourhood_values, dtype=np.float64).reshape(-1)
    distance = np.asarray(boundary_distance, dtype=np.float64).reshape(-1)
    if values.shape != distance.shape:
        raise ValueError(f"{values.size} neighbourhood values for {distance.size} distances")
    if not within >= 0:
        raise ValueError(f"within must be >= 0, got {within!r}")
    if np.isnan(distance).any():
        raise ValueError("boundary_distance has NaN entries")
    if np.isinf(values).any():
        raise ValueError("neighbourhood_values has inf entries")
    finite = ~np.isnan(values)
    scores = 1.0 - values[finite]
    positive = distance[finite] <= within
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return BoundaryAUC(auc=roc_auc(scores, positive), positives=n_pos, negatives=n_neg,
                       ignored=int((~finite).sum()))


def boundary_auc(
    neighbourhood_values: Any, boundary_distance: Any, within: float = 0.1
) -> float:
    """ROC AUC with which low neighbourhood stiffness singles out points near the boundary.

    Positives are the points at distance <= `within` from the true class boundary, negatives
    the rest; the score is ``1 - neighbourhood stiffness``. The AUC is the Mann-Whitney
    statistic: the fraction of (positive, negative) pairs in which the positive scores higher,
    ties counting half. 1 means the least stiff points are exactly the boundary points, 0.5 no
    better than chance. Points whose value is NaN (no neighbour) are ignored; with no
    positive or no negative left, the AUC is NaN. `boundary_auc_details` also returns how
    many points of each kind there were.

    Args:
        neighbourhood_values: [N] neighbourhood stiffness (NaN allowed).
        boundary_distance: [N] distance of each point to the true boundary.
        within: Distance that makes a point a boundary point (inclusive).

    Returns:
        The AUC in [0, 1], or NaN.

    Example:
        >>> boundary_auc([0.2, 0.5, 0.5, 0.9], [0.0, 0.05, 0.5, 0.6])  # A tie: 3.5 of 4.
        0.875
    """
    return boundary_auc_details(neighbourhood_values, boundary_distance, within).auc
