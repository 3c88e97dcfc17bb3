"""Input distances against an explicit loop over examples and features."""

from __future__ import annotations

import numpy as np
import pytest

from tests.measures.reference import loop_distance
from tfstiffness import measures
from tfstiffness.measures.input_space import InputSpace

# ---------------------------------------------------------------------------------------------
# input_distances
# ---------------------------------------------------------------------------------------------


def test_input_distances_match_a_loop_and_lie_in_zero_two():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(6, 2, 3)) + 5.0  # images: flattened to 6 features
    x[:, 0, 1] = 3.0  # a constant feature: centred to 0, not divided by its std of 0
    D = measures.input_distances(x)
    flat = x.reshape(6, -1)
    mean, std = flat.mean(0), flat.std(0)
    expected = np.array([[loop_distance(a, b, mean, std) for b in flat] for a in flat])
    np.testing.assert_allclose(D, expected, rtol=1e-12, atol=1e-12)
    assert D.min() >= 0.0 and D.max() <= 2.0
    np.testing.assert_allclose(np.diag(D), 0.0, atol=1e-12)
    np.testing.assert_allclose(D, D.T, atol=1e-15)


def test_input_distances_identical_opposite_and_zero_points():
    # The mean is (0, 0): rows 0, 1 coincide, rows 2, 3 point the other way, row 4 is all zero.
    x = np.array([[2.0, 1.0], [2.0, 1.0], [-2.0, -1.0], [-2.0, -1.0], [0.0, 0.0]])
    D = measures.input_distances(x)
    assert D[0, 1] == pytest.approx(0.0, abs=1e-12)
    assert D[0, 2] == pytest.approx(2.0, abs=1e-12)
    assert D[1, 3] == pytest.approx(2.0, abs=1e-12)
    np.testing.assert_array_equal(D[4], 1.0)  # an all-zero example is at 1 from everything
    np.testing.assert_array_equal(D[:, 4], 1.0)


def test_input_distances_two_sets_pool_statistics_and_transpose_on_swap():
    rng = np.random.default_rng(9)
    x, x2 = rng.normal(size=(4, 3)), rng.normal(size=(5, 3)) * 2.0 + 1.0
    D = measures.input_distances(x, x2)
    assert D.shape == (4, 5)
    np.testing.assert_allclose(measures.input_distances(x2, x), D.T, atol=1e-12)
    pooled = np.concatenate([x, x2])
    mean, std = pooled.mean(0), pooled.std(0)
    expected = np.array([[loop_distance(a, b, mean, std) for b in x2] for a in x])
    np.testing.assert_allclose(D, expected, rtol=1e-12, atol=1e-12)
    # Two sets are the off-diagonal block of the pooled one-set distances.
    np.testing.assert_allclose(D, measures.input_distances(pooled)[:4, 4:], atol=1e-12)


def test_input_distances_error():
    with pytest.raises(ValueError, match="x2 has 4 features per example but x has 3"):
        measures.input_distances(np.zeros((2, 3)), np.zeros((2, 2, 2)))


def test_input_distances_are_the_input_spaces_with_numpys_statistics_to_the_last_bit():
    # Past one statistics block (4096 rows) and over two sets: the in-memory function and the
    # streaming summary's InputSpace give the same numbers as np.mean / np.std of the pool.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4200, 3)).astype(np.float32) * 7.0 + 2.0
    x2 = rng.normal(size=(300, 3)) - 1.0
    pooled = np.concatenate([x.astype(np.float64), x2])
    space = InputSpace.fit(x, x2)
    np.testing.assert_array_equal(space.mean, pooled.mean(axis=0))
    np.testing.assert_array_equal(space.scale, pooled.std(axis=0))
    unit = (pooled - pooled.mean(axis=0)) / pooled.std(axis=0)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    expected = np.clip(1.0 - unit[:50] @ unit[4200:].T, 0.0, 2.0)
    d = measures.input_distances(x, x2)
    # The same product shapes on both sides: BLAS may round a row differently when the matrix
    # around it has another size (numpy 1.26's OpenBLAS did, by 2e-16, beside TF 2.16).
    np.testing.assert_array_equal(d, np.clip(1.0 - space.unit(x) @ space.unit(x2).T, 0.0, 2.0))
    np.testing.assert_allclose(d[:50], expected, atol=1e-12)


def test_input_distances_of_several_inputs_check_each_input_by_name():
    x = {"image": np.ones((3, 2, 2)), "ids": np.array([[1, 2], [3, 4], [5, 6]])}
    d = measures.input_distances(x)
    assert d.shape == (3, 3)
    x["image"] = x["image"].copy()
    x["image"][1, 0, 1] = np.inf
    with pytest.raises(ValueError, match=r"^x\['image'\] holds 1 non-finite value.*index "
                                         r"\(1, 1\)"):
        measures.input_distances(x)
    with pytest.raises(ValueError, match="^x must have a leading example axis, got a scalar$"):
        measures.input_distances(np.float64(1.0))
