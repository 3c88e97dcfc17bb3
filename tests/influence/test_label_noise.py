"""Flipped labels found by TracIn self-influence; the label flipping and the ROC AUC."""

import itertools

import numpy as np
import pytest

from tfstiffness import models
from tfstiffness.data import synthetic
from tfstiffness.influence.label_noise import flip_labels, flipped_label_experiment, roc_auc


def test_flip_labels_flips_the_requested_share_deterministically():
    y = np.arange(1000) % 5
    noisy, flipped = flip_labels(y, 0.1, seed=3)
    assert flipped.sum() == 100
    assert np.all(noisy[flipped] != y[flipped]) and np.all(noisy[~flipped] == y[~flipped])
    again, flipped_again = flip_labels(y, 0.1, seed=3)
    np.testing.assert_array_equal(again, noisy)
    np.testing.assert_array_equal(flipped_again, flipped)
    other = flip_labels(y, 0.1, seed=4)[1]
    assert not np.array_equal(other, flipped)
    # New labels spread over all the other classes.
    assert set(np.unique(noisy[flipped] - y[flipped]) % 5) == {1, 2, 3, 4}
    assert flip_labels(y, 0.0)[1].sum() == 0 and flip_labels(y, 1.0)[1].all()
    assert flip_labels(np.array([0, 1, 0]), 1.0, num_classes=4)[0].max() <= 3


def test_flip_labels_refuses_bad_arguments():
    with pytest.raises(ValueError, match=r"fraction: expected a number in \[0, 1\]"):
        flip_labels(np.arange(4), 1.5)
    with pytest.raises(ValueError, match="y: expected non-negative integer"):
        flip_labels(np.array([0.5, 1.0]), 0.1)
    with pytest.raises(ValueError, match="num_classes: expected at least 2"):
        flip_labels(np.zeros(4, int), 0.5)
    with pytest.raises(ValueError, match="num_classes: expected at least 2 classes, all labels"):
        flip_labels(np.arange(4), 0.5, num_classes=3)


def test_roc_auc_equals_counting_pairs():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 40).astype(float)  # many ties
    positives = rng.random(40) < 0.3
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0)
             for p, n in itertools.product(scores[positives], scores[~positives])]
    assert roc_auc(scores, positives) == pytest.approx(np.mean(pairs), abs=1e-12)
    assert roc_auc([1.0, 2.0], [False, True]) == 1.0
    assert roc_auc([1.0, 2.0], [True, False]) == 0.0
    assert np.isnan(roc_auc([1.0, 2.0], [True, True]))
    with pytest.raises(ValueError, match="scores: contains NaN"):
        roc_auc([np.nan, 1.0], [True, False])
    with pytest.raises(ValueError, match="scores, positives: expected two"):
        roc_auc([1.0, 2.0], [True])


def test_self_influence_finds_flipped_labels_on_blobs():
    # Overlapping blobs, so the model does not simply separate everything: AUC 0.97 here.
    x, y = synthetic.gaussian_blobs(3, 100, dim=10, seed=0, spread=1.0)
    result = flipped_label_experiment(x, y, lambda: models.toy_mlp(10, 3, (32,)), epochs=5,
                                      learning_rate=0.1, fraction=0.1, seed=0)
    assert result.flipped.sum() == 30
    assert result.auc > 0.8
    assert result.found_in_top(0.1) > 0.5  # chance: 0.1
    assert result.tracin.num_checkpoints == 5
    np.testing.assert_array_equal(result.tracin.learning_rates, [0.1] * 5)
    assert result.accuracy_clean > 0.8


def test_experiment_refuses_bad_arguments():
    x, y = synthetic.gaussian_blobs(2, 10, dim=2, seed=0)
    with pytest.raises(ValueError, match="optimizer: expected one of"):
        flipped_label_experiment(x, y, lambda: models.toy_mlp(2, 2), optimizer="rmsprop")
    with pytest.raises(ValueError, match="epochs: expected a positive integer"):
        flipped_label_experiment(x, y, lambda: models.toy_mlp(2, 2), epochs=0)


@pytest.mark.slow
def test_self_influence_finds_flipped_labels_on_mnist1d():
    # The README's measurement (about a minute on 2 cores).
    data = pytest.importorskip("mnist1d.data")
    d = data.make_dataset(data.get_dataset_args())
    x, y = d["x"].astype("float32"), d["y"].astype("int64")
    x = (x - x.mean(0)) / x.std(0)
    result = flipped_label_experiment(x, y, lambda: models.toy_mlp(40, 10, (100, 100)),
                                      epochs=60, learning_rate=0.05, optimizer="sgd", seed=0)
    assert result.auc > 0.85
    assert result.auc > result.loss_auc  # the model has memorised many flipped labels
