"""Bootstrap confidence intervals for the stiffness measures, from matrices already computed.

The probe examples are resampled with replacement within each class (stratified: every class
keeps its size), ``num_samples`` times; each statistic is recomputed on every resample and the
interval is the percentile interval of those values. No gradient is recomputed: a resample is
a vector of counts ``w_i`` (how often example i was drawn), and every statistic is a weighted
sum over pairs of the matrix already in hand.

Pairs follow the measures' rules. Two copies of one example are one example, not a pair: a
pair of equal ORIGINAL indices is a self-pair and is excluded, as self-pairs are, so a pair
(i, j) of distinct examples counts ``w_i * w_j`` times. Statistics (`STATISTICS`):

- "within", "between": `measures.within_between` of the class stiffness matrix, with
  ``C(a, b) = sum_{i in a, j in b, i != j} w_i w_j S_ij / sum_{i in a, j in b, i != j} w_i w_j``.
- "superclass_contrast": `measures.superclass_contrast` of that matrix (needs
  ``fine_to_coarse``; resampling stays within fine classes).
- "xi_crossing", "xi_linear_fit": `measures.critical_length` of the stiffness-vs-distance
  curve of the resample (the same bin edges as the original curve, pair counts weighted by
  ``w_i w_j``), by each estimator. Needs pair distances (``distances`` or ``x``). An xi that
  is not a number is recorded as +inf when it lies beyond every distance measured ("never
  crossed", or "no decay" for the fit) and as -inf when it lies below them ("non-positive from
  the start" / "at zero"); an interval end at +-inf says that more than (1 - confidence) / 2 of
  the resamples fall there.
- "m_coherence": `alignment.m_coherence` of the resampled set of m examples,
  ``1 + (m - 1) * mean_{pairs} G_ij / mean_i G_ii`` with the pair mean over distinct
  examples (weights ``w_i w_j``) and the diagonal mean weighted by ``w_i``; on the original
  set this is exactly ``1^T G 1 / tr G``. Needs the Gram matrix of one set.

As everywhere in the measures, a NaN or inf in the matrix or the distances is refused.

Example:
    >>> rng = np.random.default_rng(0)
    >>> g = rng.normal(size=(40, 8)) + np.repeat(rng.normal(size=(2, 8)), 20, axis=0)
    >>> S = measures.stiffness_matrix(g @ g.T)
    >>> labels = np.repeat([0, 1], 20)
    >>> interval = bootstrap("within", S, labels, num_samples=200, seed=1)
    >>> interval.low < interval.estimate < interval.high
    True
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tfstiffness import checks, measures
from tfstiffness.measures import _matrix, alignment, distance_curves

#: Names of the statistics `bootstrap` computes.
STATISTICS = ("within", "between", "superclass_contrast", "xi_crossing", "xi_linear_fit",
              "m_coherence")
_XI_METHODS = {"xi_crossing": "crossing", "xi_linear_fit": "linear_fit"}
#: How an xi that is not a number enters the samples (see the module docstring).
_XI_STATUS_VALUES = {"never_crossed": np.inf, "no_decay": np.inf,
                     "nonpositive_from_start": -np.inf, "nonpositive_at_zero": -np.inf,
                     "too_few_bins": np.nan, "no_pairs": np.nan}
# Pair weights held at once when binning (samples x pairs); bounds the memory to ~32 MB.
_PAIR_CHUNK_ELEMENTS = 4_000_000


@dataclasses.dataclass(frozen=True, eq=False)
class BootstrapInterval:
    """A percentile bootstrap interval.

    Attributes:
        statistic: the statistic's name (or the callable's ``__name__``).
        estimate: the statistic on the original examples.
        low: the (1 - confidence) / 2 quantile of the samples.
        high: the (1 + confidence) / 2 quantile of the samples.
        confidence: the nominal coverage, e.g. 0.95.
        samples: [num_samples] the statistic on each resample (NaN where undefined; for xi,
            +-inf as described in `tfstiffness.measures.uncertainty`).
        num_undefined: how many samples are NaN; they are left out of the quantiles.
        method: "percentile".
    """

    statistic: str
    estimate: float
    low: float
    high: float
    confidence: float
    samples: np.ndarray
    num_undefined: int = 0
    method: str = "percentile"

    def __str__(self) -> str:
        undefined = f", {self.num_undefined} undefined" if self.num_undefined else ""
        return (f"{self.statistic} = {self.estimate:.3g}, {self.confidence:.0%} interval "
                f"[{self.low:.3g}, {self.high:.3g}] ({self.method} bootstrap, "
                f"{self.samples.size} resamples{undefined})")


def resample_counts(labels: Any, num_samples: int, seed: Any = 0) -> np.ndarray:
    """How often each example is drawn in each stratified resample: int64 [num_samples, N].

    Each class's n_c examples are drawn n_c times with replacement, independently per
    resample, so every row sums to N and to n_c within class c. The draws depend only on
    ``labels``, ``num_samples`` and ``seed``.

    Args:
        labels: [N] integer classes.
        num_samples: number of resamples.
        seed: an int or a ``np.random.SeedSequence``.

    Returns:
        The counts.

    Example:
        >>> counts = resample_counts(np.array([0, 0, 0, 1, 1]), num_samples=4, seed=0)
        >>> counts.shape, counts[:, :3].sum(axis=1).tolist(), counts[:, 3:].sum(axis=1).tolist()
        ((4, 5), [3, 3, 3, 3], [2, 2, 2, 2])
    """
    labels = np.asarray(labels)
    _check_num_samples(num_samples)
    rng = np.random.default_rng(seed)
    counts = np.zeros((num_samples, labels.size), np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        draws = rng.integers(0, members.size, size=(num_samples, members.size))
        flat = draws + members.size * np.arange(num_samples)[:, None]
        counts[:, members] = np.bincount(flat.ravel(), minlength=num_samples * members.size
                                         ).reshape(num_samples, members.size)
    return counts


def bootstrap(
    statistic: str | Sequence[str] | Callable[..., float],
    matrix: Any,
    labels: Any | None = None,
    *,
    labels2: Any | None = None,
    num_classes: int | None = None,
    fine_to_coarse: Any | None = None,
    distances: Any | None = None,
    x: Any | None = None,
    x2: Any | None = None,
    pairs: str = "within",
    bins: int | np.ndarray = 20,
    kind: str = "cosine",
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapInterval | dict[str, BootstrapInterval]:
    """Percentile bootstrap intervals over probe examples, resampled within classes.

    ``matrix`` is what the statistic reads: a ``GradientGram`` serves every statistic (its
    ``total`` for "m_coherence", ``measures.stiffness_matrix(gram, kind)`` for the others); a
    plain array is read as the stiffness matrix S by the stiffness statistics and as the Gram
    matrix by "m_coherence", so one call cannot ask both of a plain array. Two sets (a cross
    ``GradientGram``, ``labels2``, or a non-square array) resample rows and columns
    independently, each within its classes; every (row, column) pair counts.

    A callable statistic gets the counts of one resample, ``statistic(w)`` for one set or
    ``statistic(w, w2)`` for two (int arrays [N], [M]: how often each example was drawn;
    all ones for the estimate), and returns a float; it is called once per resample.

    Args:
        statistic: a name of `STATISTICS`, a sequence of names (one set of resamples shared
            by all, returned as a dict), or a callable.
        matrix: ``GradientGram``, stiffness matrix S [N, M] or Gram matrix, see above.
        labels: [N] integer classes of the rows; the strata of the resampling (None: one
            stratum; "within", "between" and "superclass_contrast" need them).
        labels2: [M] classes of the columns, for two sets.
        num_classes: K; defaults to the largest label + 1.
        fine_to_coarse: [K] super-class of each class, for "superclass_contrast".
        distances: [N, M] pair distances, for the xi statistics (or give ``x``).
        x: [N, ...] inputs for `measures.input_distances`, instead of ``distances``.
        x2: [M, ...] inputs of the columns, for two sets.
        pairs: the pairs of the xi curve: "within", "between" or "all".
        bins: bins of the xi curve, as in `measures.stiffness_vs_distance`; the edges of the
            original curve are kept for every resample.
        kind: "cosine" or "sign": the stiffness made from a ``GradientGram``.
        num_samples: number of resamples (>= 1).
        confidence: nominal coverage of the interval, in (0, 1).
        seed: seed of the resampling (an int >= 0): the same seed gives the same samples.

    Returns:
        A `BootstrapInterval`, or a dict name -> interval for a sequence of names.

    Raises:
        ValueError: an unknown statistic; a required argument missing (labels,
            fine_to_coarse, distances); "m_coherence" of two sets or with stiffness
            statistics from one plain array; a NaN or inf in the matrix or distances; bad
            ``num_samples``, ``confidence`` or ``seed``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> g = rng.normal(size=(30, 5))
        >>> G, labels = g @ g.T, np.repeat([0, 1, 2], 10)
        >>> result = bootstrap(["within", "between"], measures.stiffness_matrix(G), labels,
        ...                    num_samples=100, confidence=0.9, seed=3)
        >>> print(result["within"])  # doctest: +ELLIPSIS
        within = ..., 90% interval [..., ...] (percentile bootstrap, 100 resamples)
        >>> bootstrap("m_coherence", G, num_samples=100).estimate == alignment.m_coherence(G)
        True
    """
    names = _statistic_names(statistic)
    _check_settings(num_samples, confidence, seed)
    S, G, one_set = _matrices(matrix, names, kind, labels2)
    rows_labels, cols_labels = _row_and_column_strata((S if S is not None else G).shape,
                                                      labels, labels2, one_set)
    row_seed, col_seed = np.random.SeedSequence(int(seed)).spawn(2)
    W = resample_counts(rows_labels, num_samples, row_seed).astype(np.float64)
    W2 = W if one_set else resample_counts(cols_labels, num_samples, col_seed).astype(
        np.float64)

    if callable(statistic):
        return _callable_interval(statistic, W, W2, one_set, confidence)
    context = _Context(S=S, G=G, one_set=one_set, labels=labels, labels2=labels2,
                       rows_labels=rows_labels, cols_labels=cols_labels,
                       num_classes=num_classes, fine_to_coarse=fine_to_coarse)
    results: dict[str, BootstrapInterval] = {}
    class_names = [n for n in names if n in ("within", "between", "superclass_contrast")]
    if class_names:
        results.update(_class_intervals(class_names, context, W, W2, confidence))
    xi_names = [n for n in names if n in _XI_METHODS]
    if xi_names:
        results.update(_xi_intervals(xi_names, context, W, W2, confidence, distances, x, x2,
                                     pairs, bins))
    if "m_coherence" in names:
        results["m_coherence"] = _coherence_interval(G, W, confidence)
    if isinstance(statistic, str):
        return results[statistic]
    return {name: results[name] for name in names}


def _check_settings(num_samples: Any, confidence: Any, seed: Any) -> None:
    _check_num_samples(num_samples)
    if isinstance(confidence, bool) or not (isinstance(confidence, (float, int))
                                            and 0 < confidence < 1):
        raise ValueError(f"confidence must be a number in (0, 1), e.g. 0.95, got {confidence!r}")
    if not checks.is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")


def _row_and_column_strata(shape: tuple, labels: Any, labels2: Any,
                           one_set: bool) -> tuple[np.ndarray, np.ndarray]:
    """The classes rows and columns are resampled within (one stratum without labels)."""
    if not one_set and labels is not None and labels2 is None:
        raise ValueError("labels2: matrix compares two sets, so the columns need their "
                         "classes as well")
    rows_labels = _strata(labels, shape[0], "labels", "rows")
    cols_labels = rows_labels if one_set else _strata(labels2, shape[1], "labels2", "columns")
    return rows_labels, cols_labels


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Context:
    S: np.ndarray | None
    G: np.ndarray | None
    one_set: bool
    labels: Any
    labels2: Any
    rows_labels: np.ndarray
    cols_labels: np.ndarray
    num_classes: int | None
    fine_to_coarse: Any


def _statistic_names(statistic: Any) -> list[str]:
    if callable(statistic):
        return []
    names = [statistic] if isinstance(statistic, str) else list(statistic)
    unknown = [n for n in names if n not in STATISTICS]
    if not names or unknown:
        raise ValueError(f"statistic must be a callable, one of {STATISTICS} or a non-empty "
                         f"sequence of them, got {statistic!r}")
    return names


def _check_num_samples(num_samples: Any) -> None:
    if not checks.is_positive_int(num_samples):
        raise ValueError(f"num_samples must be a positive int, e.g. 1000, got {num_samples!r}")


def _matrices(matrix: Any, names: list[str], kind: str,
              labels2: Any) -> tuple[np.ndarray | None, np.ndarray | None, bool]:
    """(S, G, one_set): the stiffness and Gram matrices the statistics read."""
    wants_gram = "m_coherence" in names
    wants_stiffness = any(n != "m_coherence" for n in names) or not names
    if hasattr(matrix, "total"):
        G = checks.float_matrix(matrix.total, "matrix")
        one_set = not getattr(matrix, "cross", False) and labels2 is None
        S = measures.stiffness_matrix(matrix, kind=kind) if wants_stiffness else None
    else:
        if wants_gram and wants_stiffness and names:
            raise ValueError(
                "matrix: a plain array is either a stiffness matrix or a Gram matrix; to "
                "bootstrap m_coherence together with stiffness statistics pass the GradientGram"
            )
        values = checks.float_matrix(matrix, "matrix")
        checks.finite_array(values, "matrix")
        one_set = labels2 is None and values.shape[0] == values.shape[1]
        S, G = (values, None) if wants_stiffness else (None, values)
    if wants_gram and not one_set:
        raise ValueError("m_coherence is a property of one set of examples; matrix compares "
                         "two sets")
    if G is not None:
        checks.finite_array(G, "matrix")
    return S, G, one_set


def _strata(labels: Any, length: int, name: str, axis_name: str) -> np.ndarray:
    if labels is None:
        return np.zeros(length, np.int64)
    return checks.class_indices(labels, name, length, axis_name)


# --------------------------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------------------------


def _interval(name: str, estimate: float, samples: np.ndarray,
              confidence: float) -> BootstrapInterval:
    samples = np.asarray(samples, np.float64)
    undefined = np.isnan(samples)
    kept = samples[~undefined]
    if undefined.any():
        warnings.warn(f"bootstrap: {name} is undefined on {int(undefined.sum())} of "
                      f"{samples.size} resamples; the interval uses the others", UserWarning,
                      stacklevel=4)
    if kept.size:
        tail = (1.0 - confidence) / 2.0
        # Order statistics (no interpolation), so that +-inf samples stay meaningful.
        low, high = np.quantile(kept, [tail, 1.0 - tail], method="inverted_cdf")
    else:
        low = high = np.nan
    return BootstrapInterval(statistic=name, estimate=float(estimate), low=float(low),
                             high=float(high), confidence=float(confidence), samples=samples,
                             num_undefined=int(undefined.sum()))


def _callable_interval(statistic: Callable[..., float], W: np.ndarray, W2: np.ndarray,
                       one_set: bool, confidence: float) -> BootstrapInterval:
    def call(w: np.ndarray, w2: np.ndarray) -> float:
        return float(statistic(w) if one_set else statistic(w, w2))

    ints, ints2 = W.astype(np.int64), W2.astype(np.int64)
    estimate = call(np.ones(W.shape[1], np.int64), np.ones(W2.shape[1], np.int64))
    samples = np.array([call(ints[b], ints2[b]) for b in range(W.shape[0])])
    return _interval(getattr(statistic, "__name__", "statistic"), estimate, samples,
                     confidence)


def _weighted_class_sums(
    S: np.ndarray, W: np.ndarray, W2: np.ndarray, rows_labels: np.ndarray,
    cols_labels: np.ndarray, num_classes: int, one_set: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """[B, K, K] sums of w_i w'_j S_ij over class blocks, and the pair weights, i != j."""
    rows_one_hot = _matrix.one_hot(rows_labels, num_classes)
    cols_one_hot = _matrix.one_hot(cols_labels, num_classes)
    # Columns sorted by class: each column class is one segment, summed by reduceat.
    col_order = np.argsort(cols_labels, kind="stable")
    col_classes, col_starts = np.unique(cols_labels[col_order], return_index=True)
    S_sorted, W2_sorted = S[:, col_order], W2[:, col_order]
    sums = np.zeros((W.shape[0], num_classes, num_classes))
    for a in np.unique(rows_labels):
        members = np.flatnonzero(rows_labels == a)
        # sum_{i in a} w_i S_ij, then weighted by w'_j and summed per column class.
        weighted = (W[:, members] @ S_sorted[members]) * W2_sorted
        sums[:, a, col_classes] = np.add.reduceat(weighted, col_starts, axis=1)
    counts = (W @ rows_one_hot)[:, :, None] * (W2 @ cols_one_hot)[:, None, :]
    if one_set:  # Pairs of equal original index are self-pairs: take them out.
        diagonal = np.arange(num_classes)
        sums[:, diagonal, diagonal] -= (W**2 * np.diagonal(S)) @ rows_one_hot
        counts[:, diagonal, diagonal] -= (W**2) @ rows_one_hot
    return sums, counts


def _nanmean_where(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the last two axes of the finite entries selected by ``mask``; NaN if none."""
    kept = mask & np.isfinite(values)
    total = np.where(kept, values, 0.0).sum(axis=(-2, -1))
    count = kept.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _class_intervals(names: list[str], ctx: _Context, W: np.ndarray, W2: np.ndarray,
                     confidence: float) -> dict[str, BootstrapInterval]:
    if ctx.labels is None:
        raise ValueError(f"{names[0]} needs labels (the class of each example)")
    C = measures.class_stiffness(ctx.S, ctx.labels, None if ctx.one_set else ctx.labels2,
                                 ctx.num_classes)
    num_classes = C.shape[0]
    sums, counts = _weighted_class_sums(ctx.S, W, W2, ctx.rows_labels, ctx.cols_labels,
                                        num_classes, ctx.one_set)
    with np.errstate(invalid="ignore", divide="ignore"):
        C_samples = np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), np.nan)
    diagonal = np.eye(num_classes, dtype=bool)
    within, between = measures.within_between(C)
    out = {}
    if "within" in names:
        out["within"] = _interval("within", within, _nanmean_where(C_samples, diagonal),
                                  confidence)
    if "between" in names:
        out["between"] = _interval("between", between, _nanmean_where(C_samples, ~diagonal),
                                   confidence)
    if "superclass_contrast" in names:
        if ctx.fine_to_coarse is None:
            raise ValueError("superclass_contrast needs fine_to_coarse (the super-class of "
                             "each class)")
        estimate = measures.superclass_contrast(C, ctx.fine_to_coarse)
        coarse = np.asarray(ctx.fine_to_coarse)
        same = coarse[:, None] == coarse[None, :]
        samples = (_nanmean_where(C_samples, same & ~diagonal)
                   - _nanmean_where(C_samples, ~same))
        out["superclass_contrast"] = _interval("superclass_contrast", estimate, samples,
                                               confidence)
    return out


def _coherence_interval(G: np.ndarray, W: np.ndarray, confidence: float) -> BootstrapInterval:
    m = G.shape[0]
    one_class = np.zeros(m, np.int64)
    pair_sums, pair_counts = _weighted_class_sums(G, W, W, one_class, one_class, 1, True)
    pair_sums, pair_counts = pair_sums[:, 0, 0], pair_counts[:, 0, 0]
    diagonal_means = (W @ np.diagonal(G)) / m
    with np.errstate(invalid="ignore", divide="ignore"):
        pair_means = np.where(pair_counts > 0, pair_sums / np.maximum(pair_counts, 1), np.nan)
        samples = np.where(diagonal_means > 0,
                           1.0 + (m - 1) * pair_means / np.where(diagonal_means > 0,
                                                                 diagonal_means, 1.0), np.nan)
    return _interval("m_coherence", alignment.m_coherence(G), samples, confidence)


def _xi_intervals(names: list[str], ctx: _Context, W: np.ndarray, W2: np.ndarray,
                  confidence: float, distances: Any, x: Any, x2: Any, pairs: str,
                  bins: Any) -> dict[str, BootstrapInterval]:
    if distances is None and x is None:
        raise ValueError(f"{names[0]} needs the pair distances: pass distances or x")
    if distances is None:
        if not ctx.one_set and x2 is None:
            raise ValueError(f"{names[0]}: matrix compares two sets, pass x2 as well")
        distances = measures.input_distances(x, x2)
    labels2 = None if ctx.one_set else ctx.labels2
    curve = measures.stiffness_vs_distance(ctx.S, labels=ctx.labels, pairs=pairs, bins=bins,
                                           labels2=labels2, distances=distances)
    estimates = {n: measures.critical_length(curve, _XI_METHODS[n]) for n in names}
    # The pairs of the curve, grouped by bin: (row, column, stiffness) of each.
    selected = distance_curves.selected_pairs(ctx.S.shape, ctx.labels, labels2, pairs, ctx.one_set)
    rows, cols = np.nonzero(selected)
    d = np.asarray(distances, np.float64)[rows, cols]
    num_bins = curve.edges.size - 1
    bin_index = distance_curves.bin_index(d, curve.edges)
    inside = (bin_index >= 0) & (bin_index < num_bins)
    order = np.argsort(bin_index[inside], kind="stable")
    rows, cols = rows[inside][order], cols[inside][order]
    values, bin_index = ctx.S[rows, cols], bin_index[inside][order]
    filled, starts = np.unique(bin_index, return_index=True)

    num_samples = W.shape[0]
    counts = np.zeros((num_samples, num_bins))
    sums = np.zeros((num_samples, num_bins))
    chunk = max(1, _PAIR_CHUNK_ELEMENTS // max(1, rows.size))
    for start in range(0, num_samples, chunk):
        part = slice(start, start + chunk)
        weights = W[part][:, rows] * W2[part][:, cols]
        counts[part][:, filled] = np.add.reduceat(weights, starts, axis=1)
        sums[part][:, filled] = np.add.reduceat(weights * values, starts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1e-300), np.nan)
    out = {}
    for name in names:
        method = _XI_METHODS[name]
        samples = np.array([_xi_value(measures.critical_length(dataclasses.replace(
            curve, means=means[b], counts=counts[b]), method)) for b in range(num_samples)])
        out[name] = _interval(name, _xi_value(estimates[name]), samples, confidence)
    return out


def _xi_value(critical: measures.CriticalLength) -> float:
    if critical.xi is not None:
        return float(critical.xi)
    return float(_XI_STATUS_VALUES[critical.status])
