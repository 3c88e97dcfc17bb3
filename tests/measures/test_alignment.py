"""The gradient-alignment family against its formulas, on hand-made and random gradients.

References are computed from the gradients themselves (sums of vectors, explicit loops), not
from the Gram matrix the module reads; the streamed form (tiles combined) must equal the
in-memory one.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from tfstiffness.measures import alignment


def gram_of(g, h=None):
    return g @ (g if h is None else h).T


def cross_gram(g, h):
    """Duck-typed GradientGram of two sets: only what the measures read."""
    return types.SimpleNamespace(total=g @ h.T, sq_norms=np.sum(g**2, 1),
                                 sq_norms2=np.sum(h**2, 1), cross=True)


def loop_confusion(g, h=None, cosine=False):
    one_set = h is None
    h = g if one_set else h
    smallest = np.inf
    for i in range(len(g)):
        for j in range(len(h)):
            if one_set and i == j:
                continue
            value = g[i] @ h[j]
            if cosine:
                norms = np.linalg.norm(g[i]) * np.linalg.norm(h[j])
                value = value / norms if norms > 0 else 0.0
            smallest = min(smallest, value)
    return max(0.0, -smallest) if np.isfinite(smallest) else np.nan


# ---------------------------------------------------------------------------------------------
# Hand-made gradients: the limiting cases of each measure
# ---------------------------------------------------------------------------------------------


def test_m_coherence_is_one_for_orthogonal_and_m_for_identical_gradients():
    assert alignment.m_coherence(gram_of(np.eye(5))) == pytest.approx(1.0)
    assert alignment.m_coherence(gram_of(np.tile([[1.0, 2.0, -1.0]], (7, 1)))) == pytest.approx(7)
    assert alignment.gradient_diversity(gram_of(np.eye(5))) == pytest.approx(1.0)
    assert alignment.gradient_diversity(np.ones((4, 4))) == pytest.approx(0.25)


def test_cancelling_and_zero_gradients():
    cancelling = gram_of(np.array([[1.0, 2.0], [-1.0, -2.0]]))
    assert alignment.m_coherence(cancelling) == 0.0
    assert alignment.gradient_diversity(cancelling) == np.inf
    assert alignment.gradient_confusion(cancelling) == pytest.approx(5.0)
    assert alignment.gradient_confusion(cancelling, kind="cosine") == pytest.approx(1.0)
    zeros = np.zeros((3, 3))
    assert np.isnan(alignment.m_coherence(zeros)) and np.isnan(alignment.gradient_diversity(zeros))
    assert alignment.gradient_confusion(zeros, kind="cosine") == 0.0  # zero gradient: cosine 0


def test_gradient_confusion_of_a_hand_made_gram():
    G = np.array([[4.0, -1.0, 2.0], [-1.0, 1.0, -0.9], [2.0, -0.9, 9.0]])
    assert alignment.gradient_confusion(G) == pytest.approx(1.0)  # min off-diagonal is -1
    # Cosines: -1/2, 2/6, -0.9/3: the most negative is -0.5.
    assert alignment.gradient_confusion(G, kind="cosine") == pytest.approx(0.5)
    assert alignment.gradient_confusion(np.abs(G)) == 0.0  # aligned gradients: no confusion
    assert np.isnan(alignment.gradient_confusion(np.array([[3.0]])))  # one example: no pair


def test_train_val_alignment_of_hand_made_sets():
    g = np.array([[1.0, 0.0], [0.0, 1.0]])  # summed: (1, 1)
    h = np.array([[2.0, 2.0], [1.0, 1.0]])  # summed: (3, 3), parallel
    assert alignment.train_val_alignment(gram_of(g, h), gram_of(g), gram_of(h)) == pytest.approx(1)
    assert alignment.train_val_alignment(gram_of(g, -h), gram_of(g), gram_of(h)) == pytest.approx(
        -1)
    orthogonal = np.array([[1.0, -1.0]])
    assert alignment.train_val_alignment(gram_of(g, orthogonal), gram_of(g),
                                         gram_of(orthogonal)) == pytest.approx(0.0, abs=1e-15)
    cancelling = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert np.isnan(alignment.train_val_alignment(gram_of(cancelling, h), gram_of(cancelling),
                                                  gram_of(h)))


# ---------------------------------------------------------------------------------------------
# Random gradients: each measure against its formula
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_measures_against_their_formulas_on_random_gradients(seed):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(12, 6)) + rng.normal(size=6)
    G = gram_of(g)
    alpha = np.sum(np.sum(g, axis=0) ** 2) / np.sum(g**2)  # |sum g|^2 / sum |g|^2
    assert alignment.m_coherence(G) == pytest.approx(alpha, rel=1e-12)
    assert alignment.gradient_diversity(G) == pytest.approx(1 / alpha, rel=1e-12)
    assert alignment.gradient_confusion(G) == pytest.approx(loop_confusion(g), rel=1e-12)
    assert alignment.gradient_confusion(G, "cosine") == pytest.approx(
        loop_confusion(g, cosine=True), rel=1e-12)
    h = rng.normal(size=(7, 6))
    summed_g, summed_h = g.sum(0), h.sum(0)
    expected = summed_g @ summed_h / np.linalg.norm(summed_g) / np.linalg.norm(summed_h)
    assert alignment.train_val_alignment(gram_of(g, h), G, gram_of(h)) == pytest.approx(
        expected, rel=1e-12)
    stats = alignment.alignment_statistics(cross_gram(g, h))
    assert stats.gradient_confusion() == pytest.approx(loop_confusion(g, h), rel=1e-12)
    assert stats.gradient_confusion("cosine") == pytest.approx(loop_confusion(g, h, True))


def test_per_class_measures_against_each_class_alone():
    rng = np.random.default_rng(4)
    labels = np.array([2, 0, 0, 2, 1, 2, 0, 2, 1, 1, 0])
    g = rng.normal(size=(labels.size, 4)) + rng.normal(size=(3, 4))[labels]
    G = gram_of(g)
    coherence = alignment.class_m_coherence(G, labels, num_classes=4)
    stats = alignment.alignment_statistics(G, labels, num_classes=4)
    for c in range(3):
        members = g[labels == c]
        assert coherence[c] == pytest.approx(alignment.m_coherence(gram_of(members)), rel=1e-12)
        assert coherence[c] == pytest.approx(
            np.sum(members.sum(0) ** 2) / np.sum(members**2), rel=1e-12)
        assert stats.class_gradient_diversity()[c] == pytest.approx(1 / coherence[c])
        assert stats.class_gradient_confusion()[c] == pytest.approx(loop_confusion(members))
        assert stats.class_gradient_confusion("cosine")[c] == pytest.approx(
            loop_confusion(members, cosine=True))
    assert np.isnan(coherence[3])  # absent class
    assert np.isnan(stats.class_gradient_confusion()[3])


# ---------------------------------------------------------------------------------------------
# Streamed: tiles combined equal the in-memory statistics
# ---------------------------------------------------------------------------------------------


def tiles(n, size):
    return [np.arange(s, min(s + size, n)) for s in range(0, n, size)]


def assert_same_statistics(a, b):
    np.testing.assert_allclose(a.block_sums, b.block_sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.traces, b.traces, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(a.min_off_diagonal, b.min_off_diagonal)
    np.testing.assert_allclose(a.min_off_diagonal_cosine, b.min_off_diagonal_cosine, rtol=1e-12)
    assert a.one_set == b.one_set


@pytest.mark.parametrize("size", [1, 3, 5, 13])
def test_upper_triangle_tiles_mirrored_equal_the_whole_matrix(size):
    rng = np.random.default_rng(size)
    labels = rng.integers(0, 3, size=13)
    g = rng.normal(size=(13, 5)) + rng.normal(size=(3, 5))[labels]
    G = gram_of(g)
    sq_norms = np.sum(g**2, axis=1)
    streamed = None
    for r, rows in enumerate(tiles(13, size)):
        for c, cols in enumerate(tiles(13, size)):
            if c < r:
                continue  # the lower triangle is the mirror of the upper one
            tile = alignment.block_alignment_statistics(
                G[np.ix_(rows, cols)], rows, cols, labels[rows], labels[cols], 3,
                row_sq_norms=sq_norms[rows], col_sq_norms=sq_norms[cols], mirrored=c > r)
            streamed = tile if streamed is None else streamed.combine(tile)
    whole = alignment.alignment_statistics(G, labels, 3)
    assert_same_statistics(streamed, whole)
    assert streamed.m_coherence() == pytest.approx(alignment.m_coherence(G), rel=1e-12)
    np.testing.assert_allclose(streamed.class_m_coherence(),
                               alignment.class_m_coherence(G, labels, 3), rtol=1e-12)
    assert streamed.gradient_confusion("cosine") == pytest.approx(
        alignment.gradient_confusion(G, "cosine"), rel=1e-12)


def test_cross_tiles_give_the_train_val_alignment():
    rng = np.random.default_rng(7)
    g, h = rng.normal(size=(9, 4)) + 1.0, rng.normal(size=(6, 4)) + 0.5
    labels, labels2 = rng.integers(0, 2, 9), rng.integers(0, 2, 6)
    sq_g, sq_h = np.sum(g**2, 1), np.sum(h**2, 1)
    cross = None
    for rows in tiles(9, 4):
        for cols in tiles(6, 4):
            tile = alignment.block_alignment_statistics(
                (g @ h.T)[np.ix_(rows, cols)], rows, cols, labels[rows], labels2[cols], 2,
                row_sq_norms=sq_g[rows], col_sq_norms=sq_h[cols], one_set=False)
            cross = tile if cross is None else cross.combine(tile)
    assert_same_statistics(cross, alignment.alignment_statistics(cross_gram(g, h), labels, 2,
                                                                 labels2))
    first = alignment.alignment_statistics(gram_of(g), labels, 2)
    second = alignment.alignment_statistics(gram_of(h), labels2, 2)
    streamed = alignment.cosine_of_sums(cross.block_sums.sum(), first.block_sums.sum(),
                                        second.block_sums.sum())
    assert streamed == pytest.approx(
        alignment.train_val_alignment(g @ h.T, gram_of(g), gram_of(h)), rel=1e-12)
    per_class = alignment.cosine_of_sums(np.diagonal(cross.block_sums),
                                         np.diagonal(first.block_sums),
                                         np.diagonal(second.block_sums))
    for c in range(2):
        a, b = g[labels == c].sum(0), h[labels2 == c].sum(0)
        assert per_class[c] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_statistics_round_trip_through_plain_arrays():
    import dataclasses

    stats = alignment.alignment_statistics(np.array([[2.0, -1.0], [-1.0, 3.0]]), [0, 1])
    restored = alignment.AlignmentStatistics(**dataclasses.asdict(stats))
    assert_same_statistics(stats, restored)


# ---------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------


def test_nan_is_refused_naming_the_argument():
    G = np.eye(3)
    G[1, 2] = np.nan
    for measure in (alignment.m_coherence, alignment.gradient_diversity,
                    alignment.gradient_confusion):
        with pytest.raises(ValueError, match=r"^gram holds 1 non-finite value.*index \(1, 2\)"):
            measure(G)
    with pytest.raises(ValueError, match=r"^first_gram holds 1 non-finite"):
        alignment.train_val_alignment(np.ones((3, 2)), G, np.eye(2))
    with pytest.raises(ValueError, match=r"^col_sq_norms holds 1 non-finite value.*index 0"):
        alignment.block_alignment_statistics(np.eye(2), [0, 1], [0, 1], row_sq_norms=[1, 1],
                                             col_sq_norms=[np.nan, 1.0])
    with pytest.raises(ValueError, match=r"^block holds 1 non-finite"):
        alignment.block_alignment_statistics(np.array([[np.inf]]), [0], [0],
                                             row_sq_norms=[1.0], col_sq_norms=[1.0])
    gram = cross_gram(np.eye(2), np.eye(2))
    gram.sq_norms2 = np.array([1.0, np.nan])
    with pytest.raises(ValueError, match=r"^col_sq_norms holds 1 non-finite value.*index 1"):
        alignment.gradient_confusion(gram, "cosine")


def test_bad_arguments_are_refused():
    G = np.eye(3)
    with pytest.raises(ValueError, match="kind must be one of"):
        alignment.gradient_confusion(G, kind="sign")
    ones = {"row_sq_norms": np.ones(3), "col_sq_norms": np.ones(3)}
    with pytest.raises(ValueError, match="mirrored: a tile standing for its transpose"):
        alignment.block_alignment_statistics(G, [0, 1, 2], [0, 1, 2], mirrored=True, **ones)
    cross = alignment.alignment_statistics(cross_gram(np.eye(2), np.eye(2)))
    with pytest.raises(ValueError, match="m-coherence is a property of one set"):
        cross.m_coherence()
    with pytest.raises(ValueError, match="other: statistics of different matrices"):
        alignment.alignment_statistics(G).combine(alignment.alignment_statistics(G, [0, 1, 1]))
    with pytest.raises(ValueError, match="pass a GradientGram with sq_norms and sq_norms2"):
        alignment.m_coherence(np.ones((2, 3)))
    with pytest.raises(ValueError, match="row_labels, col_labels: give both"):
        alignment.block_alignment_statistics(G, [0, 1, 2], [0, 1, 2], [0, 0, 1], **ones)
    with pytest.raises(ValueError, match="num_classes is needed with labels"):
        alignment.block_alignment_statistics(G, [0, 1, 2], [0, 1, 2], [0, 0, 1], [0, 0, 1],
                                             **ones)
    with pytest.raises(ValueError, match=r"row_sq_norms must have shape \(3,\)"):
        alignment.block_alignment_statistics(G, [0, 1, 2], [0, 1, 2], row_sq_norms=np.ones(2),
                                             col_sq_norms=np.ones(3))
    with pytest.raises(ValueError, match="labels2 is for a Gram matrix of two sets"):
        alignment.alignment_statistics(G, [0, 0, 1], labels2=[0, 0, 1])
    with pytest.raises(ValueError, match="first_gram must be 3 x 3"):
        alignment.train_val_alignment(np.ones((3, 2)), np.eye(2), np.eye(2))
    with pytest.raises(ValueError, match=r"rows must be 2 integer indices"):
        alignment.block_alignment_statistics(np.eye(2), [0], [0, 1], **{
            k: v[:2] for k, v in ones.items()})
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        alignment.alignment_statistics(G, [0, 1, 2], num_classes=2)
