"""Grouped convolutions under every method: exact, or refused (jacobian), never wrong."""

import keras
import numpy as np
import pytest

import tfstiffness as tfs
from tests.support.bruteforce import brute_force_gram, relative_error

L = keras.layers
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def grouped():
    model = keras.Sequential([keras.Input((8, 8, 4)), L.Conv2D(4, 3, groups=2, activation="relu"),
                              L.Conv2D(4, 3, groups=4, name="depthwise_as_grouped"),
                              L.Flatten(), L.Dense(3)])
    x = RNG.normal(size=(6, 8, 8, 4)).astype("float32")
    y = RNG.integers(0, 3, 6)
    return model, x, y, brute_force_gram(model, LOSS, x, y)[0]


@pytest.mark.parametrize("method", ["auto", "ghost", "vmap"])
def test_exact_methods(grouped, method):
    model, x, y, ref = grouped
    gram = tfs.gradient_gram(model, x, y, loss=LOSS, method=method)
    assert relative_error(gram.total, ref) <= 1e-5


def test_jacobian_is_refused_naming_the_layers(grouped):
    model, x, y, _ = grouped
    with pytest.raises(ValueError, match=r"method: 'jacobian' gives wrong per-example gradients "
                       r"through the grouped convolution layer\(s\) \['conv2d.*', "
                       r"'depthwise_as_grouped'\].*use method='auto'"):
        tfs.gradient_gram(model, x, y, loss=LOSS, method="jacobian")
    with pytest.raises(ValueError, match="method: 'jacobian'"):
        tfs.stiffness_summary(model, x, y, loss=LOSS, method="jacobian")
