"""Stiffness and class stiffness against direct formulas and explicit Python loops on small
matrices."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.measures.reference import (
    fake_gram,
    loop_class_stiffness,
    loop_cosine,
    nan_at,
    random_gradients,
)
from tfstiffness import measures

# ---------------------------------------------------------------------------------------------
# stiffness_matrix and count_zero_gradients
# ---------------------------------------------------------------------------------------------


def test_sign_stiffness_is_minus_one_zero_or_one_with_ties_at_zero():
    G = np.array([[2.0, -0.5, 0.0], [-0.5, 3.0, -0.0], [0.0, -0.0, 1e-30]])
    S = measures.stiffness_matrix(G, kind="sign")
    expected = np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(S, expected)
    assert not np.any(np.signbit(S[S == 0]))  # no -0.0 left
    assert S.dtype == np.float64


def test_cosine_matches_loop_for_one_set():
    rng = np.random.default_rng(1)
    g = random_gradients(rng, 6)
    G = g @ g.T
    S = measures.stiffness_matrix(G)
    norms = np.diag(G)
    np.testing.assert_allclose(S, loop_cosine(G, norms, norms), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.diag(S), 1.0, rtol=1e-12)


def test_cosine_of_two_sets_uses_the_gram_objects_norms():
    rng = np.random.default_rng(2)
    g1, g2 = random_gradients(rng, 4), random_gradients(rng, 3)
    gram = fake_gram(g1, g2)
    S = measures.stiffness_matrix(gram, kind="cosine")
    expected = loop_cosine(g1 @ g2.T, np.sum(g1**2, 1), np.sum(g2**2, 1))
    assert S.shape == (4, 3)
    np.testing.assert_allclose(S, expected, rtol=1e-12)


def test_cosine_of_plain_non_square_array_with_explicit_norms():
    rng = np.random.default_rng(3)
    g1, g2 = random_gradients(rng, 2), random_gradients(rng, 5)
    n, m = np.sum(g1**2, 1), np.sum(g2**2, 1)
    S = measures.stiffness_matrix(g1 @ g2.T, sq_norms=n, sq_norms2=m)
    np.testing.assert_allclose(S, loop_cosine(g1 @ g2.T, n, m), rtol=1e-12)


def test_explicit_norms_override_the_gram_objects():
    rng = np.random.default_rng(4)
    gram = fake_gram(random_gradients(rng, 3))
    doubled = 4.0 * gram.sq_norms  # twice the norm: every cosine halves
    S = measures.stiffness_matrix(gram, sq_norms=doubled)
    half = 0.5 * measures.stiffness_matrix(gram)
    np.testing.assert_allclose(S, half, rtol=1e-12)


def test_cosine_of_zero_gradient_is_zero_and_warned():
    g = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [-2.0, 0.0]])
    G = g @ g.T
    with pytest.warns(UserWarning, match=r"1 of 4 examples have an exactly zero gradient"):
        S = measures.stiffness_matrix(G, kind="cosine")
    np.testing.assert_array_equal(S[1], 0.0)
    np.testing.assert_array_equal(S[:, 1], 0.0)
    assert S[1, 1] == 0.0
    assert S[0, 2] == pytest.approx(1 / np.sqrt(2), rel=1e-12)
    assert S[0, 3] == pytest.approx(-1.0, rel=1e-12)
    assert S[2, 2] == pytest.approx(1.0, rel=1e-12)


def test_zero_gradient_warning_counts_each_set():
    g1 = np.array([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]])
    g2 = np.array([[3.0, 1.0], [0.0, 0.0]])
    gram = fake_gram(g1, g2)
    pattern = r"2 of 3 examples in the first set and 1 of 2 in the second set"
    with pytest.warns(UserWarning, match=pattern):
        S = measures.stiffness_matrix(gram)
    expected = np.zeros((3, 2))
    expected[1, 0] = 5.0 / np.sqrt(5.0 * 10.0)
    np.testing.assert_allclose(S, expected, rtol=1e-12)


def test_square_plain_array_with_column_norms_is_two_sets():
    # Two sets of equal size: the diagonal is not a set of squared norms.
    G = np.array([[2.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="needs sq_norms"):
        measures.stiffness_matrix(G, sq_norms2=np.array([4.0, 0.0]))
    with pytest.warns(UserWarning, match="0 of 2 examples in the first set and 1 of 2 in the"):
        S = measures.stiffness_matrix(G, sq_norms=np.array([1.0, 1.0]), sq_norms2=[4.0, 0.0])
    np.testing.assert_allclose(S, [[1.0, 0.0], [0.5, 0.0]])


def test_no_warning_without_zero_gradients():
    rng = np.random.default_rng(5)
    gram = fake_gram(random_gradients(rng, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        measures.stiffness_matrix(gram)
        measures.stiffness_matrix(gram, kind="sign")


def test_cosine_is_clipped_into_minus_one_one():
    # Off-diagonal entries a round-off above Cauchy-Schwarz, as float32 Grams can give.
    G = np.array([[1.0, 1.0 + 1e-7], [-(1.0 + 1e-7), 1.0]])
    S = measures.stiffness_matrix(G)
    np.testing.assert_array_equal(S, [[1.0, 1.0], [-1.0, 1.0]])


def test_count_zero_gradients_of_norms_matrix_and_gram_object():
    assert measures.count_zero_gradients(np.array([0.0, 1.0, 0.0, 3.0])) == 2
    assert measures.count_zero_gradients(np.diag([0.0, 2.0, 0.0])) == 2
    one_set = fake_gram(np.array([[0.0, 0.0], [1.0, 0.0]]))
    assert measures.count_zero_gradients(one_set) == 1
    two_sets = fake_gram(np.array([[0.0, 0.0], [1.0, 0.0]]), np.zeros((3, 2)))
    assert measures.count_zero_gradients(two_sets) == 4
    assert isinstance(measures.count_zero_gradients(np.ones(2)), int)


def test_stiffness_matrix_errors():
    G = np.eye(3)
    with pytest.raises(ValueError, match=r"kind must be one of \('sign', 'cosine'\).*'angle'"):
        measures.stiffness_matrix(G, kind="angle")
    with pytest.raises(ValueError, match="needs sq_norms"):
        measures.stiffness_matrix(np.ones((2, 3)))
    with pytest.raises(ValueError, match="needs sq_norms2"):
        measures.stiffness_matrix(np.ones((2, 3)), sq_norms=np.ones(2))
    with pytest.raises(ValueError, match=r"sq_norms must have shape \(3,\)"):
        measures.stiffness_matrix(G, sq_norms=np.ones(2))
    with pytest.raises(ValueError, match=r"sq_norms2 must have shape \(3,\)"):
        measures.stiffness_matrix(G, sq_norms=np.ones(3), sq_norms2=np.ones(4))
    with pytest.raises(ValueError, match="sq_norms holds squared norms, which cannot be negative"):
        measures.stiffness_matrix(-np.eye(2))
    with pytest.raises(ValueError, match="gram must be a 2-D matrix"):
        measures.stiffness_matrix(np.ones(3))
    with pytest.raises(ValueError, match="gram_or_sq_norms must be"):
        measures.count_zero_gradients(np.ones((2, 3)))


# ---------------------------------------------------------------------------------------------
# class_stiffness and within_between
# ---------------------------------------------------------------------------------------------


def test_class_stiffness_one_set_excludes_self_pairs():
    rng = np.random.default_rng(6)
    S = rng.uniform(-1, 1, size=(7, 7))  # not symmetric: rows and columns must not be mixed
    labels = np.array([0, 2, 0, 1, 2, 0, 2])
    C = measures.class_stiffness(S, labels)
    np.testing.assert_allclose(C, loop_class_stiffness(S, labels, labels, 3, True), rtol=1e-12)
    # By hand: class 1 has one example, so C(1, 1) has no pair; C(0, 1) = mean S[{0,2,5}, 3].
    assert np.isnan(C[1, 1])
    assert C[0, 1] == pytest.approx(np.mean(S[[0, 2, 5], 3]))


def test_class_stiffness_of_a_constant_diagonal_ignores_the_diagonal():
    S = np.full((4, 4), 0.25)
    np.fill_diagonal(S, 1.0)
    C = measures.class_stiffness(S, np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(C, 0.25, rtol=1e-12)


def test_class_stiffness_two_sets_counts_every_pair():
    rng = np.random.default_rng(7)
    S = rng.uniform(-1, 1, size=(5, 4))
    labels, labels2 = np.array([1, 0, 1, 1, 0]), np.array([0, 1, 1, 0])
    C = measures.class_stiffness(S, labels, labels2)
    np.testing.assert_allclose(C, loop_class_stiffness(S, labels, labels2, 2, False), rtol=1e-12)
    # A square two-set matrix keeps its diagonal: here only the i == j pairs are class 0 vs 0.
    S_square = np.diag([0.9, 0.7])
    C_square = measures.class_stiffness(S_square, np.array([0, 1]), np.array([0, 1]))
    np.testing.assert_allclose(C_square, [[0.9, 0.0], [0.0, 0.7]])


def test_class_stiffness_empty_classes_are_nan():
    S = np.array([[1.0, 0.3, -0.4], [0.3, 1.0, 0.6], [-0.4, 0.6, 1.0]])
    C = measures.class_stiffness(S, np.array([0, 0, 2]), num_classes=4)
    assert C.shape == (4, 4)
    assert C[0, 0] == pytest.approx(0.3)
    assert C[0, 2] == pytest.approx(0.1)
    assert C[2, 0] == pytest.approx(0.1)
    assert np.isnan(C[2, 2])  # a single example: only its excluded self-pair
    assert np.all(np.isnan(C[[1, 3], :])) and np.all(np.isnan(C[:, [1, 3]]))


def test_class_stiffness_errors():
    S = np.zeros((3, 3))
    with pytest.raises(ValueError, match="labels must be a 1-D array"):
        measures.class_stiffness(S, np.eye(3, dtype=int))
    with pytest.raises(ValueError, match="labels must hold integers"):
        measures.class_stiffness(S, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="labels has 2 entries but S has 3 rows"):
        measures.class_stiffness(S, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        measures.class_stiffness(S, np.array([0, 1, 2]), num_classes=2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        measures.class_stiffness(S, np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="pass labels2"):
        measures.class_stiffness(np.zeros((3, 2)), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="labels2 has 3 entries but S has 2 columns"):
        measures.class_stiffness(np.zeros((3, 2)), np.array([0, 1, 1]), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"labels2 must lie in \[0, 2\)"):
        measures.class_stiffness(np.zeros((1, 1)), np.array([0]), np.array([5]), num_classes=2)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        measures.class_stiffness(S, np.array([0, 1, 1]), num_classes=0)
    with pytest.raises(TypeError, match="num_classes must be a positive int"):
        measures.class_stiffness(S, np.array([0, 1, 1]), num_classes=2.0)


def test_within_between_against_a_loop_skipping_nan():
    C = np.array([[0.8, 0.1, np.nan], [0.3, 0.6, -0.2], [0.0, np.nan, np.nan]])
    within, between = measures.within_between(C)
    assert within == pytest.approx((0.8 + 0.6) / 2)
    assert between == pytest.approx((0.1 + 0.3 - 0.2 + 0.0) / 4)
    all_nan = measures.within_between(np.full((2, 2), np.nan))
    assert np.isnan(all_nan[0]) and np.isnan(all_nan[1])
    with pytest.raises(ValueError, match="C must be a square class matrix"):
        measures.within_between(np.zeros((2, 3)))


# ---------------------------------------------------------------------------------------------
# Super-classes
# ---------------------------------------------------------------------------------------------

# Four fine classes, interleaved over two super-classes: {0, 2} and {1, 3}.
FINE_TO_COARSE = np.array([0, 1, 0, 1])
FINE_C = np.array(
    [
        [0.9, 0.1, 0.6, 0.0],
        [0.2, 0.8, -0.1, 0.4],
        [0.5, 0.05, 0.7, np.nan],
        [-0.2, 0.3, 0.1, 0.6],
    ]
)


def test_superclass_contrast_against_a_loop():
    same, different = [], []
    for a in range(4):
        for b in range(4):
            if a == b or np.isnan(FINE_C[a, b]):
                continue
            target = same if FINE_TO_COARSE[a] == FINE_TO_COARSE[b] else different
            target.append(FINE_C[a, b])
    expected = np.mean(same) - np.mean(different)
    assert measures.superclass_contrast(FINE_C, FINE_TO_COARSE) == pytest.approx(expected)
    # By hand: same = {0.6, 0.4, 0.5, 0.3}, different = {0.1, 0.0, 0.2, -0.1, 0.05, -0.2, 0.1}.
    assert expected == pytest.approx(0.45 - 0.15 / 7)


def test_superclass_order_is_a_stable_grouping():
    np.testing.assert_array_equal(measures.superclass_order(FINE_TO_COARSE), [0, 2, 1, 3])
    order = measures.superclass_order(np.array([2, 0, 1, 0, 2, 1]))
    np.testing.assert_array_equal(order, [1, 3, 2, 5, 0, 4])


def test_superclass_matrix_against_a_loop():
    M = measures.superclass_matrix(FINE_C, FINE_TO_COARSE)
    expected = np.zeros((2, 2))
    for p in range(2):
        for q in range(2):
            values = [
                FINE_C[a, b]
                for a in range(4)
                for b in range(4)
                if a != b
                and FINE_TO_COARSE[a] == p
                and FINE_TO_COARSE[b] == q
                and not np.isnan(FINE_C[a, b])
            ]
            expected[p, q] = np.mean(values)
    np.testing.assert_allclose(M, expected, rtol=1e-12)
    # Diagonal blocks leave out the within-class entries: block (0, 0) is mean(0.6, 0.5).
    assert M[0, 0] == pytest.approx(0.55)
    assert M[1, 1] == pytest.approx(0.35)


def test_superclass_matrix_single_fine_class_block_is_nan():
    C = np.array([[0.9, 0.2], [0.3, 0.8]])
    M = measures.superclass_matrix(C, np.array([0, 1]))
    assert np.isnan(M[0, 0]) and np.isnan(M[1, 1])
    assert M[0, 1] == pytest.approx(0.2) and M[1, 0] == pytest.approx(0.3)
    assert np.isnan(measures.superclass_contrast(C, np.array([0, 1])))


def test_superclass_errors():
    with pytest.raises(ValueError, match="fine_to_coarse has 3 entries but C has 4 classes"):
        measures.superclass_contrast(FINE_C, np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="fine_to_coarse must be a 1-D integer array"):
        measures.superclass_matrix(FINE_C, np.array([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="fine_to_coarse must hold non-negative"):
        measures.superclass_order(np.array([0, -1]))


# ---------------------------------------------------------------------------------------------
# Non-finite values are refused, naming the argument, the count and the first index
# ---------------------------------------------------------------------------------------------


def test_stiffness_matrix_refuses_nan_in_the_gram_and_in_the_norms():
    G = np.eye(3) + 0.1
    for kind in ("sign", "cosine"):
        with pytest.raises(ValueError, match=r"^gram holds 1 non-finite value.*index \(1, 2\)"):
            measures.stiffness_matrix(nan_at(G, 1, 2), kind=kind)
    norms = np.diag(G).copy()
    norms[2] = np.nan  # a NaN squared norm used to give cosine 0 silently
    with pytest.raises(ValueError, match=r"^sq_norms holds 1 non-finite value.*index 2"):
        measures.stiffness_matrix(G, sq_norms=norms)
    with pytest.raises(ValueError, match=r"^gram holds 1 non-finite"):  # from the diagonal
        measures.stiffness_matrix(nan_at(G, 0, 0))
    with pytest.raises(ValueError, match=r"^sq_norms2 holds 2 non-finite value.*index 0"):
        measures.stiffness_matrix(np.ones((2, 2)), sq_norms=np.ones(2),
                                  sq_norms2=np.array([np.inf, np.nan]))
    with pytest.raises(ValueError, match=r"^gram_or_sq_norms holds 1 non-finite"):
        measures.count_zero_gradients(np.array([0.0, np.nan]))


def test_class_stiffness_refuses_nan_instead_of_a_nan_matrix():
    S = nan_at(np.eye(4), 0, 3)
    with pytest.raises(ValueError, match=r"^S holds 1 non-finite value.*index \(0, 3\)"):
        measures.class_stiffness(S, np.array([0, 0, 1, 1]))
