"""TracIn on data as `fit` takes it: datasets and generators, with their sample weights,
against the brute-force per-example gradients of the same examples."""

import keras
import numpy as np
import tensorflow as tf

import tfstiffness as tfs
from tests.support.bruteforce import per_example_gradients, relative_error

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
KERAS_SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
RNG = np.random.default_rng(41)


def _gradients(model, loss, x, y):
    return np.concatenate(list(per_example_gradients(model, loss, x, y).values()), axis=1)


def _weighted(yt, p):  # fit's loss on one example with its weight
    return KERAS_SCE(yt[0], p, sample_weight=yt[1])[None]


def test_tracin_takes_datasets_and_generators_with_weights():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="tanh"),
                              keras.layers.Dense(3)])
    x, y = RNG.normal(size=(9, 5)).astype("float32"), RNG.integers(0, 3, 9)
    xt, yt = RNG.normal(size=(4, 5)).astype("float32"), RNG.integers(0, 3, 4)
    w, wt = RNG.uniform(0.2, 2.0, 9).astype("float32"), RNG.uniform(0.2, 2.0, 4).astype("float32")
    expected = _gradients(model, LOSS, x, y) @ _gradients(model, LOSS, xt, yt).T
    result = tfs.tracin([model], tf.data.Dataset.from_tensor_slices((x, y)).batch(4),
                        x_test=(b for b in [(xt[:2], yt[:2]), (xt[2:], yt[2:])]), y_test=None,
                        loss=LOSS)
    assert relative_error(result.scores, expected) <= 1e-5
    weighted = (_gradients(model, _weighted, x, (y, w))
                @ _gradients(model, _weighted, xt, (yt, wt)).T)
    result = tfs.tracin([model], tf.data.Dataset.from_tensor_slices((x, y, w)),
                        x_test=iter([(xt, yt, wt)]), loss=LOSS)
    assert relative_error(result.scores, weighted) <= 1e-5
    assert relative_error(weighted, np.diag(w) @ expected @ np.diag(wt)) <= 1e-5
