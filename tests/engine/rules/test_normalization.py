"""Normalisation rules (per-example VJP through the layer) against brute force."""

import keras
import numpy as np

from tests.support.rules_check import check_ghost
from tfstiffness.engine.rules import rule_for

L = keras.layers
RNG = np.random.default_rng(1)


def _randomise(model):
    # Gamma = 1 and beta = 0 would hide a swapped or mis-scaled gradient.
    for v in model.trainable_variables:
        v.assign(RNG.normal(size=v.shape).astype("float32"))


def test_group_normalization():
    model = keras.Sequential([
        keras.Input((5, 5, 4)), L.Conv2D(6, 3, activation="relu"),
        L.GroupNormalization(groups=3), L.GroupNormalization(groups=2, center=False),
        L.Flatten(), L.Dense(3)])
    _randomise(model)
    check_ghost(model, RNG.normal(size=(5, 5, 5, 4)).astype("float32"), rng=RNG, batch_size=2)


def test_rms_normalization():
    model = keras.Sequential([
        keras.Input((4, 6)), L.Dense(6), L.RMSNormalization(),
        L.RMSNormalization(axis=[-2, -1]), L.Flatten(), L.Dense(3)])
    _randomise(model)
    check_ghost(model, RNG.normal(size=(5, 4, 6)).astype("float32"), rng=RNG, batch_size=2)
    assert all(rule_for(layer) is not None for layer in model.layers[:-2])
