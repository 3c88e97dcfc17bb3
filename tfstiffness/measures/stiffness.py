"""Stiffness measures on a Gram matrix of per-example loss gradients (pure numpy).

Definitions follow STIFFNESS.md (Fort et al. 2019): sign and cosine stiffness, the class
stiffness matrix and its within/between summaries, super-class aggregation, input distances,
stiffness binned by distance and the dynamical critical length xi.

Everything here is float64 numpy; nothing imports TensorFlow, so these functions are cheap to
import and to test.

Non-finite values are refused, never propagated: a NaN or inf in a Gram or stiffness matrix, in
the squared norms, in the inputs or distances, or in a non-empty bin of a curve raises a
ValueError naming the argument, how many entries are bad and the index of the first one (a
diverging fit or overflowing inputs give NaN gradients: fix those, or leave the examples out).
The one NaN that means something is the documented "no pair" NaN of an empty class pair in a
class matrix or of an empty bin, which the summaries skip. The same rule holds in
`tfstiffness.measures.alignment`, `tfstiffness.measures.uncertainty` and `tfstiffness.measures.neighbourhood`.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from typing import Any

import numpy as np

from tfstiffness.measures import input_space
from tfstiffness.engine import structure

STIFFNESS_KINDS = ("sign", "cosine")
PAIR_KINDS = ("within", "between", "all")
CRITICAL_LENGTH_METHODS = ("crossing", "linear_fit")
#: Every `CriticalLength.status`: those of the crossing estimator, of the linear fit, and the
#: one of a curve with no non-empty bin.
CRITICAL_LENGTH_STATUSES = ("crossed", "never_crossed", "nonpositive_from_start", "fitted",
                            "no_decay", "nonpositive_at_zero", "too_few_bins", "no_pairs")


# --------------------------------------------------------------------------------------------
# Sign and cosine stiffness
# --------------------------------------------------------------------------------------------


def stiffness_matrix(
    gram: Any,
    kind: str = "cosine",
    sq_norms: np.ndarray | None = None,
    sq_norms2: np.ndarray | None = None,
) -> np.ndarray:
    """Stiffness matrix S from a Gram matrix G_ij = g_i . g_j of per-example gradients.

    kind "sign": S_ij = sign(G_ij) in {-1, 0, +1}.
    kind "cosine": S_ij = G_ij / sqrt(n_i m_j), clipped into [-1, 1], where n and m are the
    squared gradient norms of the row and column examples. An example whose squared norm is
    exactly 0 has no direction: its whole row (or column) is 0, its diagonal entry included,
    and a UserWarning says how many such examples each set has.

    The squared norms come from, in this order: the explicit ``sq_norms`` / ``sq_norms2``
    arguments; the Gram object's ``sq_norms`` / ``sq_norms2``; the diagonal of a square plain
    array (one set). For one set, ``sq_norms2`` defaults to ``sq_norms``.

    Args:
        gram: a ``GradientGram`` (anything with ``.total``; its ``sq_norms``, ``sq_norms2``
            and ``cross`` are used when present) or a plain [N, M] array, e.g. one entry of
            ``gram.by_layer``.
        kind: "sign" or "cosine".
        sq_norms: [N] squared gradient norms of the row examples.
        sq_norms2: [M] squared gradient norms of the column examples.

    Returns:
        [N, M] float64 stiffness matrix.

    Raises:
        ValueError: unknown ``kind``; a NaN or inf in the Gram matrix or the squared norms;
            squared norms missing for a non-square array, of the wrong length, or negative.

    Example:
        >>> G = np.array([[4.0, -2.0, 0.0], [-2.0, 1.0, 0.0], [0.0, 0.0, 9.0]])
        >>> print(stiffness_matrix(G, kind="sign"))
        [[ 1. -1.  0.]
         [-1.  1.  0.]
         [ 0.  0.  1.]]
        >>> print(stiffness_matrix(G, kind="cosine"))
        [[ 1. -1.  0.]
         [-1.  1.  0.]
         [ 0.  0.  1.]]
    """
    if kind not in STIFFNESS_KINDS:
        raise ValueError(f"kind must be one of {STIFFNESS_KINDS}, got {kind!r}")
    G = _as_matrix(_total_of(gram), "gram")
    _check_finite(G, "gram")
    if kind == "sign":
        return np.sign(G) + 0.0  # + 0.0 turns -0.0 into 0.0
    row_norms, col_norms, one_set = _squared_norms(gram, G, sq_norms, sq_norms2)
    _warn_zero_gradients(row_norms, col_norms, one_set)
    # Scale rows and columns separately: the product n_i * m_j could under- or overflow.
    inv_row = _inverse_sqrt_or_zero(row_norms)
    inv_col = _inverse_sqrt_or_zero(col_norms)
    cosine = G * inv_row[:, None] * inv_col[None, :]
    return np.clip(cosine, -1.0, 1.0)


def count_zero_gradients(gram_or_sq_norms: Any) -> int:
    """Number of examples whose squared gradient norm is exactly zero.

    Args:
        gram_or_sq_norms: a ``GradientGram`` (counts both sets when ``cross`` is True), a
            1-D array of squared norms, or a square one-set Gram array (its diagonal).

    Returns:
        The count, as a Python int.

    Example:
        >>> count_zero_gradients(np.array([0.0, 2.5, 0.0]))
        2
        >>> count_zero_gradients(np.diag([1.0, 0.0]))
        1
    """
    if hasattr(gram_or_sq_norms, "total"):
        G = _as_matrix(gram_or_sq_norms.total, "gram_or_sq_norms")
        row_norms, col_norms, one_set = _squared_norms(gram_or_sq_norms, G, None, None)
        count = int(np.sum(row_norms == 0))
        return count if one_set else count + int(np.sum(col_norms == 0))
    values = np.asarray(gram_or_sq_norms, dtype=np.float64)
    if values.ndim == 2 and values.shape[0] == values.shape[1]:
        values = np.diagonal(values)
    _check_finite(values, "gram_or_sq_norms")
    if values.ndim != 1:
        raise ValueError(
            "gram_or_sq_norms must be a Gram object, a 1-D array of squared norms or a square "
            f"Gram array, got shape {values.shape}"
        )
    return int(np.sum(values == 0))


def _total_of(gram: Any) -> Any:
    return gram.total if hasattr(gram, "total") else gram


def _as_matrix(values: Any, name: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {matrix.shape}")
    return matrix


def _check_finite(values: np.ndarray, name: str) -> None:
    """Refuses NaN and inf, naming the argument, the count and the first bad index."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    first = np.unravel_index(int(np.argmax(bad)), bad.shape)
    where = int(first[0]) if len(first) == 1 else tuple(int(i) for i in first)
    raise ValueError(
        f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or inf), the first at index "
        f"{where}: measures of non-finite values are undefined. Find where they arise (a "
        "diverging fit or overflowing inputs give NaN gradients) or leave those examples out."
    )


def _squared_norms(
    gram: Any, G: np.ndarray, sq_norms: Any, sq_norms2: Any
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Row norms, column norms and whether rows and columns are the same set of examples."""
    n_rows, n_cols = G.shape
    if sq_norms is None:
        sq_norms = getattr(gram, "sq_norms", None)
    if sq_norms2 is None:
        sq_norms2 = getattr(gram, "sq_norms2", None)
    if hasattr(gram, "cross"):
        cross = bool(gram.cross)
    else:  # A plain array is one set unless it is not square or column norms are given.
        cross = n_rows != n_cols or sq_norms2 is not None
    if sq_norms is None:
        if cross:
            raise ValueError(
                f"cosine stiffness of a {n_rows} x {n_cols} Gram matrix of two sets needs "
                "sq_norms (and sq_norms2): the diagonal holds no squared norms"
            )
        sq_norms = np.diagonal(G)
    if sq_norms2 is None:
        if cross:
            raise ValueError("cosine stiffness between two sets needs sq_norms2 as well")
        sq_norms2 = sq_norms
    row_norms = _checked_norms(sq_norms, n_rows, "sq_norms")
    col_norms = _checked_norms(sq_norms2, n_cols, "sq_norms2")
    return row_norms, col_norms, not cross


def _checked_norms(values: Any, length: int, name: str) -> np.ndarray:
    norms = np.asarray(values, dtype=np.float64)
    if norms.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got {norms.shape}")
    _check_finite(norms, name)
    if np.any(norms < 0):
        raise ValueError(f"{name} holds squared norms, which cannot be negative")
    return norms


def _inverse_sqrt_or_zero(sq_norms: np.ndarray) -> np.ndarray:
    safe = np.where(sq_norms > 0, sq_norms, 1.0)
    return np.where(sq_norms > 0, 1.0 / np.sqrt(safe), 0.0)


def _warn_zero_gradients(row_norms: np.ndarray, col_norms: np.ndarray, one_set: bool) -> None:
    zero_rows = int(np.sum(row_norms == 0))
    zero_cols = int(np.sum(col_norms == 0))
    if one_set and zero_rows:
        message = f"{zero_rows} of {row_norms.size} examples have"
    elif not one_set and (zero_rows or zero_cols):
        message = (
            f"{zero_rows} of {row_norms.size} examples in the first set and "
            f"{zero_cols} of {col_norms.size} in the second set have"
        )
    else:
        return
    warnings.warn(
        f"{message} an exactly zero gradient; their cosine stiffness is set to 0",
        UserWarning,
        stacklevel=3,
    )


# --------------------------------------------------------------------------------------------
# Class and super-class stiffness
# --------------------------------------------------------------------------------------------


def class_stiffness(
    S: np.ndarray,
    labels: np.ndarray,
    labels2: np.ndarray | None = None,
    num_classes: int | None = None,
) -> np.ndarray:
    """Class stiffness matrix C(a, b) = mean of S_ij over i in class a, j in class b, i != j.

    One set (``labels2`` is None, S square): the self-pairs i == j are excluded. Two sets
    (``labels2`` given, rows and columns are different examples): every pair counts. A class
    pair without any pair of examples (an absent class, or a class with one example on the
    diagonal of a one-set matrix) is NaN, not 0.

    Args:
        S: [N, M] stiffness matrix (rows: first set, columns: second set or the same set).
        labels: [N] integer class of each row example.
        labels2: [M] integer class of each column example, for two sets.
        num_classes: number of classes K; defaults to the largest label + 1.

    Returns:
        [K, K] float64 matrix, rows indexed by the row examples' class.

    Raises:
        ValueError: a NaN or inf in S; labels not 1-D integers in [0, K), lengths not
            matching S, or a non-square S without ``labels2``.

    Example:
        >>> S = np.array([[1.0, 0.5, -0.2], [0.5, 1.0, 0.1], [-0.2, 0.1, 1.0]])
        >>> print(class_stiffness(S, np.array([0, 0, 1])))
        [[ 0.5  -0.05]
         [-0.05   nan]]
    """
    S = _as_matrix(S, "S")
    _check_finite(S, "S")
    one_set = labels2 is None
    if one_set and S.shape[0] != S.shape[1]:
        raise ValueError(
            f"S is {S.shape[0]} x {S.shape[1]}: a non-square matrix compares two sets, "
            "pass labels2 for its columns"
        )
    labels = _checked_labels(labels, S.shape[0], "labels", "rows")
    labels2 = labels if one_set else _checked_labels(labels2, S.shape[1], "labels2", "columns")
    num_classes = _num_classes(num_classes, labels, labels2)
    _check_label_range(labels, num_classes, "labels")
    _check_label_range(labels2, num_classes, "labels2")

    rows_one_hot = _one_hot(labels, num_classes)
    cols_one_hot = _one_hot(labels2, num_classes)
    sums = rows_one_hot.T @ S @ cols_one_hot
    counts = np.outer(rows_one_hot.sum(axis=0), cols_one_hot.sum(axis=0))
    if one_set:  # Take out the self-pairs, which all sit on the class diagonal.
        sums -= np.diag(rows_one_hot.T @ np.diagonal(S))
        counts -= np.diag(rows_one_hot.sum(axis=0))
    return _ratio_or_nan(sums, counts)


def within_between(C: np.ndarray) -> tuple[float, float]:
    """Within-class and between-class stiffness of a class stiffness matrix.

    within = mean over classes c of C(c, c); between = mean over ordered pairs a != b of
    C(a, b). NaN entries (class pairs without examples) are skipped; a summary with no
    finite entry is NaN.

    Args:
        C: [K, K] class stiffness matrix from ``class_stiffness``.

    Returns:
        (within, between) as Python floats.

    Example:
        >>> C = np.array([[0.8, 0.1], [0.3, 0.6]])
        >>> [round(v, 6) for v in within_between(C)]
        [0.7, 0.2]
    """
    C = _square_class_matrix(C, "C")
    off_diagonal = ~np.eye(C.shape[0], dtype=bool)
    return _nanmean(np.diagonal(C)), _nanmean(C[off_diagonal])


def superclass_contrast(C: np.ndarray, fine_to_coarse: np.ndarray) -> float:
    """Between-class stiffness inside super-classes minus that across super-classes.

    Mean of C(a, b) over distinct fine classes a != b of the same super-class, minus the mean
    over a, b in different super-classes (NaN entries skipped). Positive after training when
    the fine-class matrix shows blocks along the super-classes.

    Args:
        C: [K, K] fine-class stiffness matrix.
        fine_to_coarse: [K] super-class of each fine class.

    Returns:
        The contrast as a Python float (NaN if either side has no finite entry).

    Example:
        >>> C = np.array([[1.0, 0.5, 0.1, 0.0],
        ...               [0.5, 1.0, 0.0, 0.1],
        ...               [0.1, 0.0, 1.0, 0.3],
        ...               [0.0, 0.1, 0.3, 1.0]])
        >>> round(superclass_contrast(C, np.array([0, 0, 1, 1])), 6)
        0.35
    """
    C = _square_class_matrix(C, "C")
    coarse = _checked_fine_to_coarse(fine_to_coarse, C.shape[0])
    same_coarse = coarse[:, None] == coarse[None, :]
    distinct = ~np.eye(C.shape[0], dtype=bool)
    return _nanmean(C[same_coarse & distinct]) - _nanmean(C[~same_coarse])


def superclass_order(fine_to_coarse: np.ndarray) -> np.ndarray:
    """Permutation of the fine classes that groups them by super-class.

    Stable: inside a super-class the fine classes keep their order. Reorder a class matrix
    with ``C[np.ix_(order, order)]`` to see the super-class blocks along the diagonal.

    Args:
        fine_to_coarse: [K] super-class of each fine class.

    Returns:
        [K] int array of fine class indices.

    Example:
        >>> print(superclass_order(np.array([1, 0, 1, 0])))
        [1 3 0 2]
    """
    coarse = _checked_fine_to_coarse(fine_to_coarse, None)
    return np.argsort(coarse, kind="stable")


def superclass_matrix(C: np.ndarray, fine_to_coarse: np.ndarray) -> np.ndarray:
    """Aggregate a fine-class stiffness matrix into a super-class matrix.

    Entry (p, q) is the NaN-aware mean of C(a, b) over fine classes a in super-class p and b
    in super-class q, counting only distinct classes a != b. Off the diagonal that is every
    entry of the block; on the diagonal it leaves out the fine classes' own within-class
    stiffness C(a, a), so a diagonal entry measures between-class stiffness inside one
    super-class (NaN for a super-class with a single fine class).

    Args:
        C: [K, K] fine-class stiffness matrix.
        fine_to_coarse: [K] super-class of each fine class; K_coarse = its maximum + 1.

    Returns:
        [K_coarse, K_coarse] float64 matrix; NaN for a block without finite entries.

    Example:
        >>> C = np.array([[1.0, 0.5, 0.1, 0.0],
        ...               [0.5, 1.0, 0.0, 0.1],
        ...               [0.1, 0.0, 1.0, 0.3],
        ...               [0.0, 0.1, 0.3, 1.0]])
        >>> print(superclass_matrix(C, np.array([0, 0, 1, 1])))
        [[0.5  0.05]
         [0.05 0.3 ]]
    """
    C = _square_class_matrix(C, "C")
    coarse = _checked_fine_to_coarse(fine_to_coarse, C.shape[0])
    counted = np.isfinite(C) & ~np.eye(C.shape[0], dtype=bool)
    membership = _one_hot(coarse, int(coarse.max()) + 1 if coarse.size else 0)
    sums = membership.T @ np.where(counted, C, 0.0) @ membership
    counts = membership.T @ counted.astype(np.float64) @ membership
    return _ratio_or_nan(sums, counts)


def _checked_labels(labels: Any, length: int, name: str, axis_name: str) -> np.ndarray:
    values = np.asarray(labels)
    if values.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of integer classes (argmax one-hot labels first), "
            f"got shape {values.shape}"
        )
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {values.dtype}")
    if values.size != length:
        raise ValueError(f"{name} has {values.size} entries but S has {length} {axis_name}")
    return values.astype(np.int64)


def _num_classes(num_classes: int | None, labels: np.ndarray, labels2: np.ndarray) -> int:
    if num_classes is None:
        if labels.size == 0 and labels2.size == 0:
            raise ValueError("num_classes is needed when there are no labels")
        return int(max(labels.max(initial=0), labels2.max(initial=0))) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be a positive int, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes}")
    return int(num_classes)


def _check_label_range(labels: np.ndarray, num_classes: int, name: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}), got values from {labels.min()} "
            f"to {labels.max()}"
        )


def _checked_fine_to_coarse(fine_to_coarse: Any, num_fine: int | None) -> np.ndarray:
    coarse = np.asarray(fine_to_coarse)
    if coarse.ndim != 1 or (coarse.size and not np.issubdtype(coarse.dtype, np.integer)):
        raise ValueError(
            "fine_to_coarse must be a 1-D integer array (the super-class of each fine class), "
            f"got shape {coarse.shape} and dtype {coarse.dtype}"
        )
    if num_fine is not None and coarse.size != num_fine:
        raise ValueError(f"fine_to_coarse has {coarse.size} entries but C has {num_fine} classes")
    if coarse.size and coarse.min() < 0:
        raise ValueError("fine_to_coarse must hold non-negative super-class indices")
    return coarse.astype(np.int64)


def _square_class_matrix(C: Any, name: str) -> np.ndarray:
    matrix = _as_matrix(C, name)
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name} must be a square class matrix, got shape {matrix.shape}")
    return matrix


def _one_hot(indices: np.ndarray, depth: int) -> np.ndarray:
    one_hot = np.zeros((indices.size, depth), dtype=np.float64)
    one_hot[np.arange(indices.size), indices] = 1.0
    return one_hot


def _ratio_or_nan(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), np.nan)


def _nanmean(values: np.ndarray) -> float:
    """Mean of the non-NaN entries; NaN, without numpy's warning, when there are none."""
    values = np.asarray(values, dtype=np.float64)
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")


# --------------------------------------------------------------------------------------------
# Input distances, stiffness against distance and the critical length
# --------------------------------------------------------------------------------------------


def input_distances(x: Any, x2: Any | None = None) -> np.ndarray:
    """Distances d = 1 - x_1 . x_2 between standardised, unit-normalised inputs, in [0, 2].

    Each input is flattened; every feature is standardised with the mean and (population)
    std of the set, pooled over both sets when ``x2`` is given so that swapping the sets
    transposes the result; a feature with std 0 is only centred. Each example is then scaled
    to unit L2 norm (an example that is all zero after standardising stays zero, so it is at
    distance 1 from everything, itself included). Works as well on hidden representations.

    Several inputs (a list or dict of arrays, as a multi-input model takes them): the same
    on the concatenation of the float inputs; inputs that are all integer (token ids, masks)
    give token overlap instead, ``1 - cos`` of the examples' bags of tokens (see
    ``tfstiffness.measures.input_space``).

    Args:
        x: [N, ...] inputs or representations, or a list / dict of such arrays.
        x2: [M, ...] second set, with the same per-example shape (and structure).

    Returns:
        [N, M] float64 distances (M = N when ``x2`` is None).

    Raises:
        ValueError: a NaN or inf in ``x`` or ``x2`` (the index is (example, flattened
            feature)); ``x2`` has a different per-example size than ``x``.

    Example:
        >>> x = np.array([[0.0, 1.0], [0.0, 2.0], [1.0, 0.0]])
        >>> print(np.round(input_distances(x), 3))
        [[0.    0.5   1.756]
         [0.5   0.    1.945]
         [1.756 1.945 0.   ]]
    """
    if structure.is_nested(x):
        for name, leaf in structure.named_leaves(x, "x") + (
                [] if x2 is None else structure.named_leaves(x2, "x2")):
            _flattened(leaf, name)  # refuses NaN and inf, naming the input
        return input_space.input_distances(x, x2)
    first = _flattened(x, "x")
    second = None if x2 is None else _flattened(x2, "x2")
    if second is not None and second.shape[1] != first.shape[1]:
        raise ValueError(
            f"x2 has {second.shape[1]} features per example but x has {first.shape[1]}"
        )
    pooled = first if second is None else np.concatenate([first, second])
    mean = pooled.mean(axis=0)
    std = pooled.std(axis=0)
    scale = np.where(std > 0, std, 1.0)  # A constant feature is only centred.
    unit_first = _unit_rows((first - mean) / scale)
    unit_second = unit_first if second is None else _unit_rows((second - mean) / scale)
    return np.clip(1.0 - unit_first @ unit_second.T, 0.0, 2.0)


def _flattened(x: Any, name: str) -> np.ndarray:
    values = np.asarray(x, dtype=np.float64)
    if values.ndim == 0:
        raise ValueError(f"{name} must have a leading example axis, got a scalar")
    values = values.reshape(values.shape[0], -1)
    _check_finite(values, name)
    return values


def _unit_rows(values: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return values / np.where(norms > 0, norms, 1.0)


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
    S = _as_matrix(S, "S")
    _check_finite(S, "S")
    one_set = x2 is None and labels2 is None and S.shape[0] == S.shape[1]
    pair_distances = _pair_distances(S, x, x2, distances, one_set)
    selected = _selected_pairs(S.shape, labels, labels2, pairs, one_set)
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
        _check_finite(pair_distances, "distances")
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


def _selected_pairs(
    shape: tuple[int, int], labels: Any, labels2: Any, pairs: str, one_set: bool
) -> np.ndarray:
    """Boolean [N, M] mask of the pairs to bin."""
    selected = np.triu(np.ones(shape, dtype=bool), k=1) if one_set else np.ones(shape, bool)
    if pairs == "all":
        return selected
    if labels is None:
        raise ValueError(f"pairs={pairs!r} needs labels (the class of each example)")
    row_labels = _checked_labels(labels, shape[0], "labels", "rows")
    if one_set:
        col_labels = row_labels
    elif labels2 is None:
        raise ValueError(f"pairs={pairs!r} between two sets needs labels2 as well")
    else:
        col_labels = _checked_labels(labels2, shape[1], "labels2", "columns")
    same_class = row_labels[:, None] == col_labels[None, :]
    return selected & (same_class if pairs == "within" else ~same_class)


def _bin_edges(bins: Any, d_selected: np.ndarray) -> np.ndarray:
    if np.ndim(bins) == 0:
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
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
    index = _bin_index(d_selected, edges)
    inside = (index >= 0) & (index < num_bins)
    counts = np.bincount(index[inside], minlength=num_bins)
    sums = np.bincount(index[inside], weights=s_selected[inside], minlength=num_bins)
    return counts, _ratio_or_nan(sums, counts)


def _bin_index(distances: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each distance; -1 or len(edges) - 1 when outside the edges."""
    # Half-open bins [e_k, e_k+1) like np.histogram, the last bin closed on the right.
    index = np.searchsorted(edges, distances, side="right") - 1
    index[distances == edges[-1]] = edges.size - 2
    return index


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
