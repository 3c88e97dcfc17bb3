"""Stiffness measures on a Gram matrix of per-example loss gradients (pure numpy).

Definitions follow STIFFNESS.md (Fort et al. 2019): sign and cosine stiffness, the class
stiffness matrix and its within/between summaries, and super-class aggregation. Stiffness
against input distance and the critical length are in `tfstiffness.measures.distance_curves`.

Everything here is float64 numpy; nothing imports TensorFlow, so these functions are cheap to
import and to test.

Non-finite values are refused, never propagated: a NaN or inf in a Gram or stiffness matrix, in
the squared norms, in the inputs or distances, or in a non-empty bin of a curve raises a
ValueError naming the argument, how many entries are bad and the index of the first one (a
diverging fit or overflowing inputs give NaN gradients: fix those, or leave the examples out).
The one NaN that means something is the documented "no pair" NaN of an empty class pair in a
class matrix or of an empty bin, which the summaries skip. The same rule holds in every module
of `tfstiffness.measures`; the checks themselves are `tfstiffness.checks`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from tfstiffness import checks
from tfstiffness.measures._matrix import (
    inverse_sqrt_or_zero,
    nanmean,
    one_hot,
    ratio_or_nan,
    total_of,
)

STIFFNESS_KINDS = ("sign", "cosine")


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
    G = checks.float_matrix(total_of(gram), "gram")
    checks.finite_array(G, "gram")
    if kind == "sign":
        return np.sign(G) + 0.0  # + 0.0 turns -0.0 into 0.0
    row_norms, col_norms, one_set = _squared_norms(gram, G, sq_norms, sq_norms2)
    _warn_zero_gradients(row_norms, col_norms, one_set)
    # Scale rows and columns separately: the product n_i * m_j could under- or overflow.
    inv_row = inverse_sqrt_or_zero(row_norms)
    inv_col = inverse_sqrt_or_zero(col_norms)
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
        G = checks.float_matrix(gram_or_sq_norms.total, "gram_or_sq_norms")
        row_norms, col_norms, one_set = _squared_norms(gram_or_sq_norms, G, None, None)
        count = int(np.sum(row_norms == 0))
        return count if one_set else count + int(np.sum(col_norms == 0))
    values = np.asarray(gram_or_sq_norms, dtype=np.float64)
    if values.ndim == 2 and values.shape[0] == values.shape[1]:
        values = np.diagonal(values)
    checks.finite_array(values, "gram_or_sq_norms")
    if values.ndim != 1:
        raise ValueError(
            "gram_or_sq_norms must be a Gram object, a 1-D array of squared norms or a square "
            f"Gram array, got shape {values.shape}"
        )
    return int(np.sum(values == 0))


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
    row_norms = checks.squared_norms(sq_norms, n_rows, "sq_norms")
    col_norms = checks.squared_norms(sq_norms2, n_cols, "sq_norms2")
    return row_norms, col_norms, not cross


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
    S = checks.float_matrix(S, "S")
    checks.finite_array(S, "S")
    one_set = labels2 is None
    if one_set and S.shape[0] != S.shape[1]:
        raise ValueError(
            f"S is {S.shape[0]} x {S.shape[1]}: a non-square matrix compares two sets, "
            "pass labels2 for its columns"
        )
    labels = checks.class_indices(labels, "labels", S.shape[0], "rows")
    labels2 = labels if one_set else checks.class_indices(labels2, "labels2", S.shape[1],
                                                          "columns")
    num_classes = checks.num_classes(num_classes, labels, labels2)

    rows_one_hot = one_hot(labels, num_classes)
    cols_one_hot = one_hot(labels2, num_classes)
    sums = rows_one_hot.T @ S @ cols_one_hot
    counts = np.outer(rows_one_hot.sum(axis=0), cols_one_hot.sum(axis=0))
    if one_set:  # Take out the self-pairs, which all sit on the class diagonal.
        sums -= np.diag(rows_one_hot.T @ np.diagonal(S))
        counts -= np.diag(rows_one_hot.sum(axis=0))
    return ratio_or_nan(sums, counts)


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
    return nanmean(np.diagonal(C)), nanmean(C[off_diagonal])


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
    return nanmean(C[same_coarse & distinct]) - nanmean(C[~same_coarse])


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
    membership = one_hot(coarse, int(coarse.max()) + 1 if coarse.size else 0)
    sums = membership.T @ np.where(counted, C, 0.0) @ membership
    counts = membership.T @ counted.astype(np.float64) @ membership
    return ratio_or_nan(sums, counts)


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
    matrix = checks.float_matrix(C, name)
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name} must be a square class matrix, got shape {matrix.shape}")
    return matrix
