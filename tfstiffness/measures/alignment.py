"""The gradient-alignment family, read from the same Gram matrix as stiffness (pure numpy).

For a set of m examples with per-example loss gradients g_i and Gram matrix G_ij = g_i . g_j:

- m-coherence (Chatterjee and Zielinski 2020): ``alpha = 1^T G 1 / tr G
  = |sum_i g_i|^2 / sum_i |g_i|^2``; 1 for orthogonal gradients, m for identical ones, 0 when
  they cancel. Per class: the same on each class's diagonal block of G.
- Gradient diversity (Yin et al. 2018): ``tr G / 1^T G 1 = 1 / alpha``.
- Gradient confusion (Sankararaman et al. 2020): ``eta = max(0, -min_{i != j} G_ij)``, the
  smallest eta >= 0 with g_i . g_j >= -eta for every pair; its cosine form uses the cosine
  matrix ``G_ij / sqrt(G_ii G_jj)`` (0 for a zero gradient, as in `measures.stiffness_matrix`).
- Train-val alignment: the cosine between the summed gradients of two sets (e.g. train and
  validation), ``1^T G_tv 1 / sqrt(1^T G_tt 1 * 1^T G_vv 1)``, from the cross Gram G_tv and the
  two sets' own Grams.

All of them need only a few sufficient statistics of G, sums over class blocks, traces and
minima of off-diagonal entries (`AlignmentStatistics`), which add up (sums) or reduce (minima)
over the tiles of a Gram matrix computed block by block. So there is one implementation for
both paths: `block_alignment_statistics` reads one tile, `AlignmentStatistics.combine` merges
tiles, and the `*_from_*` functions turn the statistics into measures; the in-memory functions
(`m_coherence`, ...) are the one-tile case. As in `tfstiffness.measures`, a NaN or inf in a Gram
matrix or in the squared norms is refused with a ValueError naming it.

Example:
    >>> g = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # three gradients
    >>> G = g @ g.T
    >>> m_coherence(G), gradient_diversity(G), gradient_confusion(G)
    (2.0, 0.5, 0.0)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tfstiffness import checks
from tfstiffness.measures._matrix import inverse_sqrt_or_zero, one_hot, total_of

CONFUSION_KINDS = ("gram", "cosine")


# --------------------------------------------------------------------------------------------
# The reductions: sufficient statistics -> measures (shared by the in-memory and streamed path)
# --------------------------------------------------------------------------------------------


def coherence_from_sums(gram_sum: Any, trace: Any) -> Any:
    """m-coherence ``alpha = 1^T G 1 / tr G`` from the sum of G's entries and its trace.

    ``1^T G 1 = |sum g_i|^2`` is >= 0 for a Gram matrix: round-off below 0 is taken as 0.
    Elementwise on arrays (e.g. per class).

    Args:
        gram_sum: ``1^T G 1``, the sum of every entry of G (diagonal included).
        trace: ``tr G = sum_i |g_i|^2``.

    Returns:
        alpha (a float, or an array like the inputs); NaN where the trace is 0 (every
        gradient is zero: no direction).

    Example:
        >>> coherence_from_sums(8.0, 4.0)
        2.0
    """
    gram_sum, trace = np.maximum(np.asarray(gram_sum, np.float64), 0.0), np.asarray(trace)
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = np.where(trace > 0, gram_sum / np.where(trace > 0, trace, 1.0), np.nan)
    return _scalar_or_array(alpha)


def diversity_from_sums(gram_sum: Any, trace: Any) -> Any:
    """Gradient diversity ``tr G / 1^T G 1`` (Yin et al. 2018) from the same statistics.

    Args:
        gram_sum: ``1^T G 1`` (round-off below 0 is taken as 0).
        trace: ``tr G``.

    Returns:
        The diversity; +inf where the gradients cancel exactly (``1^T G 1 = 0 < tr G``), NaN
        where every gradient is zero.

    Example:
        >>> diversity_from_sums(8.0, 4.0), diversity_from_sums(0.0, 4.0)
        (0.5, inf)
    """
    gram_sum = np.maximum(np.asarray(gram_sum, np.float64), 0.0)
    trace = np.asarray(trace, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        diversity = np.where(gram_sum > 0, trace / np.where(gram_sum > 0, gram_sum, 1.0),
                             np.where(trace > 0, np.inf, np.nan))
    return _scalar_or_array(diversity)


def confusion_from_min(min_off_diagonal: Any) -> Any:
    """Gradient confusion ``eta = max(0, -min_{i != j} G_ij)`` from the smallest pair entry.

    Args:
        min_off_diagonal: the smallest G_ij (or cosine) over pairs i != j; +inf when there is
            no pair.

    Returns:
        eta >= 0; NaN where there is no pair.

    Example:
        >>> confusion_from_min(-0.25), confusion_from_min(0.5)
        (0.25, 0.0)
    """
    smallest = np.asarray(min_off_diagonal, np.float64)
    eta = np.where(np.isposinf(smallest), np.nan, np.maximum(0.0, -smallest) + 0.0)  # no -0.0
    return _scalar_or_array(eta)


def cosine_of_sums(cross_sum: Any, first_sum: Any, second_sum: Any) -> Any:
    """Cosine between two summed gradients: ``1^T G_12 1 / sqrt(1^T G_11 1 * 1^T G_22 1)``.

    ``(sum_i g_i) . (sum_j h_j) = 1^T G_12 1`` and ``|sum_i g_i|^2 = 1^T G_11 1``, so the
    cosine of the summed gradients of two sets comes from three Gram sums. Clipped into
    [-1, 1] against round-off.

    Args:
        cross_sum: sum of the cross Gram G_12 (rows: first set, columns: second set).
        first_sum: sum of the first set's Gram G_11.
        second_sum: sum of the second set's Gram G_22.

    Returns:
        The cosine; NaN where either summed gradient is zero.

    Example:
        >>> cosine_of_sums(3.0, 4.0, 9.0)
        0.5
    """
    cross = np.asarray(cross_sum, np.float64)
    product = np.maximum(np.asarray(first_sum, np.float64), 0.0) * np.maximum(
        np.asarray(second_sum, np.float64), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(product > 0, cross / np.sqrt(np.where(product > 0, product, 1.0)),
                          np.nan)
    return _scalar_or_array(np.clip(cosine, -1.0, 1.0))


def _scalar_or_array(values: np.ndarray) -> Any:
    return float(values) if values.ndim == 0 else values


# --------------------------------------------------------------------------------------------
# Sufficient statistics, per tile and combined
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class AlignmentStatistics:
    """Sufficient statistics of a Gram matrix for the alignment family, by class block.

    With K classes (K = 1 when no labels are given), rows of class a and columns of class b:

    Attributes:
        block_sums: [K, K] sum of G_ij over i in a, j in b, the diagonal i == j included.
        traces: [K] sum of G_ii over i in class c (zeros for a Gram of two sets).
        min_off_diagonal: [K, K] smallest G_ij over i in a, j in b, i != j; +inf where there
            is no such pair.
        min_off_diagonal_cosine: [K, K] the same for the cosine G_ij / sqrt(G_ii G_jj).
        one_set: whether rows and columns are the same examples (G square, self-pairs on
            the diagonal) rather than two sets.

    Statistics of disjoint tiles of one matrix merge with `combine`; every array is plain
    numpy, so ``dataclasses.asdict`` saves them and ``AlignmentStatistics(**saved)`` restores.
    """

    block_sums: np.ndarray
    traces: np.ndarray
    min_off_diagonal: np.ndarray
    min_off_diagonal_cosine: np.ndarray
    one_set: bool

    def combine(self, other: AlignmentStatistics) -> AlignmentStatistics:
        """Statistics of the union of two disjoint sets of tiles of the same matrix.

        Example:
            >>> G = np.array([[2.0, -1.0], [-1.0, 3.0]])
            >>> diagonal = [block_alignment_statistics(G[i:i + 1, i:i + 1], [i], [i],
            ...                                        row_sq_norms=[G[i, i]],
            ...                                        col_sq_norms=[G[i, i]]) for i in (0, 1)]
            >>> upper = block_alignment_statistics(G[:1, 1:], [0], [1], row_sq_norms=[2.0],
            ...                                    col_sq_norms=[3.0], mirrored=True)
            >>> stats = diagonal[0].combine(diagonal[1]).combine(upper)
            >>> stats.m_coherence() == m_coherence(G), stats.gradient_confusion()
            (True, 1.0)
        """
        if self.one_set != other.one_set or self.block_sums.shape != other.block_sums.shape:
            raise ValueError(
                "other: statistics of different matrices (one set vs two sets, or another "
                f"number of classes: {self.block_sums.shape} vs {other.block_sums.shape})"
            )
        return AlignmentStatistics(
            block_sums=self.block_sums + other.block_sums,
            traces=self.traces + other.traces,
            min_off_diagonal=np.minimum(self.min_off_diagonal, other.min_off_diagonal),
            min_off_diagonal_cosine=np.minimum(self.min_off_diagonal_cosine,
                                               other.min_off_diagonal_cosine),
            one_set=self.one_set,
        )

    def m_coherence(self) -> float:
        """m-coherence of the whole set: ``coherence_from_sums(1^T G 1, tr G)``."""
        self._need_one_set("m-coherence")
        return coherence_from_sums(self.block_sums.sum(), self.traces.sum())

    def class_m_coherence(self) -> np.ndarray:
        """[K] m-coherence of each class's diagonal block (NaN for an absent class)."""
        self._need_one_set("m-coherence")
        return np.atleast_1d(coherence_from_sums(np.diagonal(self.block_sums), self.traces))

    def gradient_diversity(self) -> float:
        """Gradient diversity of the whole set: ``diversity_from_sums(1^T G 1, tr G)``."""
        self._need_one_set("gradient diversity")
        return diversity_from_sums(self.block_sums.sum(), self.traces.sum())

    def class_gradient_diversity(self) -> np.ndarray:
        """[K] gradient diversity of each class's diagonal block."""
        self._need_one_set("gradient diversity")
        return np.atleast_1d(diversity_from_sums(np.diagonal(self.block_sums), self.traces))

    def gradient_confusion(self, kind: str = "gram") -> float:
        """Gradient confusion over every pair (i != j for one set), of G or of the cosines."""
        return confusion_from_min(self._minima(kind).min())

    def class_gradient_confusion(self, kind: str = "gram") -> np.ndarray:
        """[K] gradient confusion over the pairs inside each class (NaN without a pair)."""
        return np.atleast_1d(confusion_from_min(np.diagonal(self._minima(kind))))

    def _minima(self, kind: str) -> np.ndarray:
        if kind not in CONFUSION_KINDS:
            raise ValueError(f"kind must be one of {CONFUSION_KINDS}, got {kind!r}")
        return self.min_off_diagonal if kind == "gram" else self.min_off_diagonal_cosine

    def _need_one_set(self, measure: str) -> None:
        if not self.one_set:
            raise ValueError(
                f"{measure} is a property of one set of examples; these statistics are of a "
                "Gram matrix between two sets (use cosine_of_sums for train-val alignment)"
            )


def block_alignment_statistics(
    block: Any,
    rows: Any,
    cols: Any,
    row_labels: Any | None = None,
    col_labels: Any | None = None,
    num_classes: int | None = None,
    *,
    row_sq_norms: Any,
    col_sq_norms: Any,
    one_set: bool = True,
    mirrored: bool = False,
) -> AlignmentStatistics:
    """`AlignmentStatistics` of one tile ``G[rows][:, cols]`` of a Gram matrix.

    Everything is given for the tile alone, as a block-by-block computation has it: the
    tile's row and column examples' labels and squared gradient norms. ``rows`` and ``cols``
    are their indices in the whole set; for one set (``one_set=True``) an entry with
    ``rows[i] == cols[j]`` is a self-pair: it enters the trace and the block sums, never the
    minima. For a Gram matrix of two sets (``one_set=False``) every entry is a pair.
    ``mirrored=True`` says the tile also stands for its transpose ``G[cols][:, rows]`` (a
    symmetric Gram computed on the upper triangle of tiles); such a tile holds no self-pair.

    Args:
        block: [n, m] the tile.
        rows: [n] indices of its row examples in the whole set.
        cols: [m] indices of its column examples (in the same set, or in the second set).
        row_labels: [n] integer classes of the row examples (None: one class).
        col_labels: [m] integer classes of the column examples (None: one class).
        num_classes: K, the same for every tile; needed with labels.
        row_sq_norms: [n] squared gradient norms G_ii of the row examples (for the cosines).
        col_sq_norms: [m] squared gradient norms of the column examples.
        one_set: whether rows and columns index the same examples.
        mirrored: whether the tile also stands for its transpose.

    Returns:
        The tile's statistics; `AlignmentStatistics.combine` merges tiles.

    Raises:
        ValueError: a NaN or inf in the tile or the norms; shapes that do not fit the tile;
            labels without ``num_classes`` or outside [0, K); a mirrored tile holding a
            self-pair.

    Example:
        >>> G = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 2.0]])
        >>> top = block_alignment_statistics(G[:1], [0], [0, 1, 2], row_sq_norms=[1.0],
        ...                                  col_sq_norms=np.diag(G))
        >>> rest = block_alignment_statistics(G[1:], [1, 2], [0, 1, 2],
        ...                                   row_sq_norms=[1.0, 2.0], col_sq_norms=np.diag(G))
        >>> stats = top.combine(rest)
        >>> float(stats.block_sums.sum()), float(stats.traces.sum()), stats.m_coherence()
        (8.0, 4.0, 2.0)
    """
    block = checks.float_matrix(block, "block")
    checks.finite_array(block, "block")
    num_rows, num_cols = block.shape
    rows = _checked_index(rows, num_rows, "rows")
    cols = _checked_index(cols, num_cols, "cols")
    row_norms = checks.squared_norms(row_sq_norms, num_rows, "row_sq_norms")
    col_norms = checks.squared_norms(col_sq_norms, num_cols, "col_sq_norms")
    if (row_labels is None) != (col_labels is None):
        raise ValueError("row_labels, col_labels: give both (classes) or neither (one class)")
    if row_labels is None:
        num_classes = 1
        row_labels, col_labels = np.zeros(num_rows, np.int64), np.zeros(num_cols, np.int64)
    else:
        if num_classes is None:
            raise ValueError("num_classes is needed with labels: every tile must count the "
                             "same classes to be combined")
        row_labels = checks.class_indices(row_labels, "row_labels", num_rows, "rows")
        col_labels = checks.class_indices(col_labels, "col_labels", num_cols, "columns")
    num_classes = checks.num_classes(num_classes, row_labels, col_labels,
                                     names=("row_labels", "col_labels"))

    self_pair = (rows[:, None] == cols[None, :]) if one_set else np.zeros(block.shape, bool)
    if mirrored and self_pair.any():
        raise ValueError("mirrored: a tile standing for its transpose must hold no self-pair")
    row_one_hot = one_hot(row_labels, num_classes)
    col_one_hot = one_hot(col_labels, num_classes)
    block_sums = row_one_hot.T @ block @ col_one_hot
    traces = row_one_hot.T @ np.where(self_pair, block, 0.0).sum(axis=1)
    cosine = np.clip(block * inverse_sqrt_or_zero(row_norms)[:, None]
                     * inverse_sqrt_or_zero(col_norms)[None, :], -1.0, 1.0)
    minima = _class_block_minima(np.where(self_pair, np.inf, block), row_labels, col_labels,
                                 num_classes)
    minima_cosine = _class_block_minima(np.where(self_pair, np.inf, cosine), row_labels,
                                        col_labels, num_classes)
    if mirrored:  # A mirrored tile holds no self-pair, so its traces are zero.
        block_sums = block_sums + block_sums.T
        minima = np.minimum(minima, minima.T)
        minima_cosine = np.minimum(minima_cosine, minima_cosine.T)
    return AlignmentStatistics(block_sums, traces, minima, minima_cosine, one_set)


def alignment_statistics(
    gram: Any,
    labels: Any | None = None,
    num_classes: int | None = None,
    labels2: Any | None = None,
) -> AlignmentStatistics:
    """`AlignmentStatistics` of a whole Gram matrix held in memory (the one-tile case).

    Args:
        gram: a ``GradientGram`` (its ``sq_norms``, ``sq_norms2`` and ``cross`` are used) or
            a plain array: square for one set (squared norms from its diagonal).
        labels: [N] integer classes of the rows, or None for one class.
        num_classes: K; defaults to the largest label + 1.
        labels2: [M] classes of the columns, for a Gram matrix of two sets.

    Returns:
        The statistics.

    Raises:
        ValueError: a NaN or inf in the Gram matrix or its norms; a plain non-square array
            (two sets need a ``GradientGram`` with both sets' squared norms).

    Example:
        >>> G = np.array([[1.0, 0.5, -0.2], [0.5, 1.0, 0.1], [-0.2, 0.1, 1.0]])
        >>> stats = alignment_statistics(G, labels=[0, 0, 1])
        >>> print(stats.class_m_coherence())
        [1.5 1. ]
    """
    G = checks.float_matrix(total_of(gram), "gram")
    checks.finite_array(G, "gram")
    cross = bool(getattr(gram, "cross", G.shape[0] != G.shape[1]))
    if cross:
        if getattr(gram, "sq_norms", None) is None or getattr(gram, "sq_norms2", None) is None:
            raise ValueError(
                f"gram is a {G.shape[0]} x {G.shape[1]} matrix of two sets: pass a GradientGram "
                "with sq_norms and sq_norms2 (or use block_alignment_statistics)"
            )
        row_norms, col_norms = gram.sq_norms, gram.sq_norms2
        if (labels is None) != (labels2 is None):
            raise ValueError("labels, labels2: for a Gram matrix of two sets give both or "
                             "neither")
    else:
        if G.shape[0] != G.shape[1]:
            raise ValueError(f"gram of one set must be square, got shape {G.shape}")
        if labels2 is not None:
            raise ValueError("labels2 is for a Gram matrix of two sets; this one is of one set")
        row_norms = getattr(gram, "sq_norms", None)
        row_norms = col_norms = np.diagonal(G) if row_norms is None else row_norms
        labels2 = labels
    if labels is not None:
        labels = checks.class_indices(labels, "labels", G.shape[0], "rows")
        labels2 = checks.class_indices(labels2, "labels2", G.shape[1], "columns")
        num_classes = checks.num_classes(num_classes, labels, labels2)
    return block_alignment_statistics(
        G, np.arange(G.shape[0]), np.arange(G.shape[1]), labels, labels2, num_classes,
        row_sq_norms=row_norms, col_sq_norms=col_norms, one_set=not cross)


def _checked_index(index: Any, length: int, name: str) -> np.ndarray:
    values = np.asarray(index)
    if values.shape != (length,) or (values.size and not np.issubdtype(values.dtype,
                                                                        np.integer)):
        raise ValueError(f"{name} must be {length} integer indices (one per tile {name[:-1]}), "
                         f"got shape {values.shape} and dtype {values.dtype}")
    if values.size and values.min() < 0:
        raise ValueError(f"{name} must be non-negative indices")
    return values.astype(np.int64)


def _class_block_minima(values: np.ndarray, row_labels: np.ndarray, col_labels: np.ndarray,
                        num_classes: int) -> np.ndarray:
    """[K, K] minimum of ``values`` over each class block; +inf for an empty block."""
    minima = np.full((num_classes, num_classes), np.inf)
    if values.size == 0:
        return minima
    row_order = np.argsort(row_labels, kind="stable")
    col_order = np.argsort(col_labels, kind="stable")
    row_classes, row_starts = np.unique(row_labels[row_order], return_index=True)
    col_classes, col_starts = np.unique(col_labels[col_order], return_index=True)
    # Sorted by class, each class is one contiguous segment: reduce the segments.
    reduced = np.minimum.reduceat(values[row_order][:, col_order], row_starts, axis=0)
    minima[np.ix_(row_classes, col_classes)] = np.minimum.reduceat(reduced, col_starts, axis=1)
    return minima


# --------------------------------------------------------------------------------------------
# In-memory measures
# --------------------------------------------------------------------------------------------


def m_coherence(gram: Any) -> float:
    """m-coherence ``alpha = 1^T G 1 / tr G`` of one set (Chatterjee and Zielinski 2020).

    ``alpha = |sum_i g_i|^2 / sum_i |g_i|^2`` lies in [0, m]: 1 when the m gradients are
    orthogonal, m when they are identical, 0 when they cancel. Chatterjee and Zielinski,
    "Making Coherence Out of Nothing At All: Measuring the Evolution of Gradient Alignment"
    (arXiv 2008.01217, 2020).

    Args:
        gram: one set's [m, m] Gram matrix (a ``GradientGram`` or an array).

    Returns:
        alpha; NaN when every gradient is zero.

    Example:
        >>> m_coherence(np.ones((4, 4))), m_coherence(np.eye(4))
        (4.0, 1.0)
    """
    return alignment_statistics(gram).m_coherence()


def class_m_coherence(gram: Any, labels: Any, num_classes: int | None = None) -> np.ndarray:
    """[K] m-coherence of each class: ``1_c^T G 1_c / tr G_cc`` on the class's diagonal block.

    Args:
        gram: one set's Gram matrix.
        labels: [m] integer classes.
        num_classes: K; defaults to the largest label + 1.

    Returns:
        float64 [K]; NaN for an absent class (or one whose gradients are all zero).

    Example:
        >>> G = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        >>> print(class_m_coherence(G, [0, 0, 1], num_classes=3))
        [ 2.  1. nan]
    """
    return alignment_statistics(gram, labels, num_classes).class_m_coherence()


def gradient_diversity(gram: Any) -> float:
    """Gradient diversity ``tr G / 1^T G 1 = sum_i |g_i|^2 / |sum_i g_i|^2`` (= 1 / alpha).

    Yin, Pananjady, Lam, Papailiopoulos, Ramchandran, Bartlett, "Gradient Diversity: a Key
    Ingredient for Scalable Distributed Learning" (AISTATS 2018).

    Args:
        gram: one set's [m, m] Gram matrix.

    Returns:
        The diversity in [1/m, inf]; +inf when the gradients cancel exactly, NaN when they
        are all zero.

    Example:
        >>> gradient_diversity(np.eye(4)), gradient_diversity(np.ones((4, 4)))
        (1.0, 0.25)
    """
    return alignment_statistics(gram).gradient_diversity()


def gradient_confusion(gram: Any, kind: str = "gram") -> float:
    """Gradient confusion ``eta = max(0, -min_{i != j} G_ij)`` (Sankararaman et al. 2020).

    The smallest eta >= 0 with ``g_i . g_j >= -eta`` for every pair of distinct examples.
    ``kind="cosine"`` takes the minimum over the cosines ``G_ij / sqrt(G_ii G_jj)`` instead
    (0 for a zero gradient), so eta lies in [0, 1]. For a Gram matrix of two sets every
    (row, column) pair counts. Sankararaman, De, Xu, Huang, Goldstein, "The Impact of Neural
    Network Overparameterization on Gradient Confusion and Stochastic Gradient Descent"
    (ICML 2020).

    Args:
        gram: a Gram matrix (``GradientGram`` or array; one set or, as a ``GradientGram``,
            two sets).
        kind: "gram" or "cosine".

    Returns:
        eta; NaN when there is no pair (one example).

    Example:
        >>> G = np.array([[4.0, -1.0], [-1.0, 1.0]])
        >>> gradient_confusion(G), gradient_confusion(G, kind="cosine")
        (1.0, 0.5)
    """
    if kind not in CONFUSION_KINDS:
        raise ValueError(f"kind must be one of {CONFUSION_KINDS}, got {kind!r}")
    return alignment_statistics(gram).gradient_confusion(kind)


def train_val_alignment(cross_gram: Any, first_gram: Any, second_gram: Any) -> float:
    """Cosine between the summed gradients of two sets (e.g. train and validation).

    ``A = 1^T G_tv 1 / sqrt(1^T G_tt 1 * 1^T G_vv 1) = cos(sum_i g_i, sum_j h_j)``, where
    G_tv is the cross Gram (rows: the first set's gradients g_i, columns: the second set's
    h_j) and G_tt, G_vv are each set's own Gram. It is the cosine between the full-batch
    gradients of the two sets: > 0 when a gradient step on the first set lowers the loss on
    the second. (The mean of the pairwise cosines, the other common reading, is
    ``measures.stiffness_matrix(cross_gram).mean()``.)

    Args:
        cross_gram: [N, M] Gram matrix between the two sets.
        first_gram: [N, N] Gram matrix of the first set.
        second_gram: [M, M] Gram matrix of the second set.

    Returns:
        The cosine in [-1, 1]; NaN when either summed gradient is zero.

    Raises:
        ValueError: shapes that do not fit together; a NaN or inf in any of the matrices.

    Example:
        >>> g = np.array([[1.0, 0.0], [1.0, 0.0]]); h = np.array([[1.0, 1.0]])
        >>> round(train_val_alignment(g @ h.T, g @ g.T, h @ h.T), 6)
        0.707107
    """
    cross = checks.float_matrix(total_of(cross_gram), "cross_gram")
    first = checks.float_matrix(total_of(first_gram), "first_gram")
    second = checks.float_matrix(total_of(second_gram), "second_gram")
    if first.shape != (cross.shape[0],) * 2 or second.shape != (cross.shape[1],) * 2:
        raise ValueError(
            f"cross_gram is {cross.shape[0]} x {cross.shape[1]}, so first_gram must be "
            f"{cross.shape[0]} x {cross.shape[0]} and second_gram {cross.shape[1]} x "
            f"{cross.shape[1]}; got {first.shape} and {second.shape}"
        )
    for matrix, name in ((cross, "cross_gram"), (first, "first_gram"), (second, "second_gram")):
        checks.finite_array(matrix, name)
    return cosine_of_sums(cross.sum(), first.sum(), second.sum())
