"""Synthetic generators: determinism by seed, label conventions and the promised properties."""

import numpy as np
import pytest

from tfstiffness.data import synthetic
from tfstiffness.data.cifar100_labels import FINE_TO_COARSE

# ------------------------------------------------------------------ hierarchical images


def test_hierarchical_images_deterministic_by_seed():
    a = synthetic.hierarchical_images(3, 4, 2, image_shape=(8, 8, 3), seed=5)
    b = synthetic.hierarchical_images(3, 4, 2, image_shape=(8, 8, 3), seed=5)
    c = synthetic.hierarchical_images(3, 4, 2, image_shape=(8, 8, 3), seed=6)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.allclose(a[0], c[0])
    x, y, yc = a
    assert x.shape == (24, 8, 8, 3) and x.dtype == np.float32
    assert y.dtype == yc.dtype == np.int64
    assert np.bincount(y).tolist() == [3] * 8


def test_hierarchical_images_class_means_do_not_depend_on_sample_count():
    # With no noise every example is its class mean: the same whatever num_per_class is.
    x1, y1, _ = synthetic.hierarchical_images(1, 3, 2, image_shape=(8, 8, 1), noise=0.0)
    x3, y3, _ = synthetic.hierarchical_images(3, 3, 2, image_shape=(8, 8, 1), noise=0.0)
    for k in range(6):
        np.testing.assert_array_equal(x3[y3 == k], np.repeat(x1[y1 == k], 3, axis=0))


def test_hierarchical_label_conventions():
    _, y, yc = synthetic.hierarchical_images(2, image_shape=(8, 8, 1))
    assert len(y) == 200 and set(y.tolist()) == set(range(100))
    np.testing.assert_array_equal(yc, FINE_TO_COARSE[y])  # CIFAR-100's table for 20 x 5.
    _, y, yc = synthetic.hierarchical_images(2, 3, 4, image_shape=(8, 8, 1))
    np.testing.assert_array_equal(yc, y // 4)  # Otherwise consecutive blocks of fine labels.
    np.testing.assert_array_equal(synthetic.hierarchical_fine_to_coarse(3, 4), np.arange(12) // 4)


def _class_means(x, y, num_classes):
    return np.stack([x[y == k].reshape(np.sum(y == k), -1).mean(axis=0)
                     for k in range(num_classes)])


def test_hierarchical_classes_of_one_superclass_are_closer():
    x, y, _ = synthetic.hierarchical_images(10, image_shape=(16, 16, 3), seed=3)
    means = _class_means(x, y, 100)
    dist = np.linalg.norm(means[:, None] - means[None], axis=-1)
    same = FINE_TO_COARSE[:, None] == FINE_TO_COARSE[None, :]
    np.fill_diagonal(same, False)
    farthest_sibling = np.where(same, dist, -np.inf).max(axis=1)
    nearest_stranger = np.where(~same & ~np.eye(100, dtype=bool), dist, np.inf).min(axis=1)
    # For every class, even the farthest sibling is nearer than the nearest other class.
    assert np.all(farthest_sibling < nearest_stranger)


def test_hierarchical_images_are_learnable_from_class_means():
    # Nearest class mean, fitted on half the examples, classifies the other half: even with
    # heavy noise the classes carry signal, and mistakes stay mostly within the super-class.
    x, y, yc = synthetic.hierarchical_images(10, 4, 3, image_shape=(8, 8, 3), noise=3.0)
    fit = np.zeros(len(y), bool)
    for k in range(12):
        fit[np.flatnonzero(y == k)[::2]] = True
    means = _class_means(x[fit], y[fit], 12)
    flat = x[~fit].reshape(np.sum(~fit), -1)
    pred = np.argmin(((flat[:, None] - means[None]) ** 2).sum(-1), axis=1)
    wrong = pred != y[~fit]
    assert np.mean(~wrong) > 0.3  # Chance: 1/12.
    # Confusions are between siblings far more often than chance (2 of 11 other classes).
    assert np.mean(pred[wrong] // 3 == yc[~fit][wrong]) > 0.5


# ------------------------------------------------------------------ two arcs


def _dense_arc(index, count=4000):
    start = 0.0 if index == 0 else np.pi
    angles = np.linspace(start, start + np.pi, count)
    return synthetic.ARC_CENTERS[index] + synthetic.ARC_RADIUS * np.stack(
        [np.cos(angles), np.sin(angles)], axis=1)


def test_two_arcs_grid_layout_and_balance():
    x, y = synthetic.two_arcs_grid(50)
    assert x.shape == (2500, 2) and x.dtype == np.float32 and y.dtype == np.int64
    axis = np.linspace(-1, 1, 50, dtype=np.float32)
    np.testing.assert_array_equal(np.unique(x[:, 0]), axis)
    np.testing.assert_array_equal(x[:50, 1], np.full(50, -1.0, np.float32))
    assert np.bincount(y).tolist() == [1250, 1250]  # Point symmetry swaps the labels.
    flipped = {tuple(p): label for p, label in zip(np.round(x, 5), y, strict=True)}
    assert all(flipped[tuple(-p)] == 1 - label for p, label in zip(np.round(x, 5), y, strict=True))


def test_two_arcs_labels_match_nearest_arc_rule():
    x, y = synthetic.two_arcs_grid(30)
    # Independent check: distances to densely sampled arc points, not the closed form.
    dist = np.stack([np.min(np.linalg.norm(x[:, None] - _dense_arc(i)[None], axis=-1), axis=1)
                     for i in (0, 1)], axis=1)
    decided = np.abs(dist[:, 0] - dist[:, 1]) > 1e-3
    np.testing.assert_array_equal(y[decided], (dist[decided, 1] < dist[decided, 0]).astype(int))
    np.testing.assert_allclose(synthetic.two_arcs_distances(x), dist, atol=1e-3)
    # Points on an arc belong to it.
    for i in (0, 1):
        np.testing.assert_array_equal(synthetic.two_arcs_labels(_dense_arc(i, 50)[5:-5]), i)


def test_arcs_boundary_distance_is_the_distance_to_a_label_change():
    x, y = synthetic.two_arcs_grid(50)
    d = synthetic.arcs_boundary_distance(x)
    assert d.shape == (2500,) and np.all(d >= 0)
    assert synthetic.arcs_boundary_distance(np.zeros((1, 2)))[0] < 1e-6  # Symmetry centre.
    assert 0 < np.sum(d < 0.1) < 2500
    rng = np.random.default_rng(0)
    angles = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    for i in rng.choice(2500, 60, replace=False):
        # Inside the radius everything keeps the point's label ...
        r = 0.98 * d[i] * np.sqrt(rng.uniform(size=(400, 1)))
        inside = x[i] + r * circle[rng.integers(0, 720, 400)]
        assert np.all(synthetic.two_arcs_labels(inside) == y[i])
        # ... and just beyond it the label changes somewhere.
        outside = x[i] + (1.02 * d[i] + 2e-3) * circle
        assert np.any(synthetic.two_arcs_labels(outside) != y[i])
    # Two points with different labels are at least their boundary distances apart (up to
    # the documented overestimate of at most `resolution`, reached only next to the boundary).
    pairs = np.flatnonzero(y[:-1] != y[1:])
    pairs = pairs[(pairs + 1) % 50 != 0]  # Horizontal neighbours in one row.
    gap = np.linalg.norm(x[pairs] - x[pairs + 1], axis=1)
    assert np.all(d[pairs] + d[pairs + 1] <= gap + 2 * 4e-3)


# ------------------------------------------------------------------ gaussian blobs


def test_gaussian_blobs():
    x, y = synthetic.gaussian_blobs(4, 25, 3, seed=1, spread=0.1)
    again = synthetic.gaussian_blobs(4, 25, 3, seed=1, spread=0.1)
    np.testing.assert_array_equal(x, again[0])
    np.testing.assert_array_equal(y, again[1])
    assert x.shape == (100, 3) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [25] * 4
    assert not np.allclose(x, synthetic.gaussian_blobs(4, 25, 3, seed=2, spread=0.1)[0])
    # The spread is the per-coordinate standard deviation around the class mean.
    centred = np.concatenate([x[y == k] - x[y == k].mean(0) for k in range(4)])
    assert 0.07 < centred.std() < 0.13
    # The means depend on the seed only: with no spread, each class is one point.
    x0, y0 = synthetic.gaussian_blobs(4, 5, 3, seed=1, spread=0.0)
    for k in range(4):
        np.testing.assert_allclose(x0[y0 == k], np.repeat(x0[y0 == k][:1], 5, axis=0))
        assert np.linalg.norm(x[y == k].mean(0) - x0[y0 == k][0]) < 0.1


# ------------------------------------------------------------------ synthetic text


def test_synthetic_text_structure_and_rule():
    tokens, y = synthetic.synthetic_text(300, vocab_size=40, sequence_length=16,
                                         num_classes=3, seed=4)
    again = synthetic.synthetic_text(300, vocab_size=40, sequence_length=16,
                                     num_classes=3, seed=4)
    np.testing.assert_array_equal(tokens, again[0])
    np.testing.assert_array_equal(y, again[1])
    assert tokens.shape == (300, 16) and tokens.dtype == np.int32
    assert tokens.min() >= 0 and tokens.max() < 40
    assert np.bincount(y).tolist() == [100] * 3
    lengths = np.sum(tokens != 0, axis=1)
    assert lengths.min() >= 4 and len(set(lengths.tolist())) > 5  # Variable lengths.
    # Padding only at the end.
    assert np.all(tokens[np.arange(16)[None, :] >= lengths[:, None]] == 0)
    assert np.all(tokens[np.arange(16)[None, :] < lengths[:, None]] != 0)
    # The label is the class with strictly the most indicative tokens.
    sets = synthetic.text_indicative_tokens(3)
    counts = np.stack([np.isin(tokens, s).sum(axis=1) for s in sets], axis=1)
    np.testing.assert_array_equal(np.argmax(counts, axis=1), y)
    top2 = np.sort(counts, axis=1)[:, -2:]
    assert np.all(top2[:, 1] > top2[:, 0])
    assert not np.array_equal(tokens, synthetic.synthetic_text(
        300, vocab_size=40, sequence_length=16, num_classes=3, seed=5)[0])


def test_synthetic_text_rejects_bad_sizes():
    with pytest.raises(ValueError, match="vocab_size"):
        synthetic.synthetic_text(10, vocab_size=7, num_classes=2)
    with pytest.raises(ValueError, match="sequence_length"):
        synthetic.synthetic_text(10, sequence_length=3)
