"""Elementwise-scale rules (PReLU, ConvNeXt's LayerScale) against brute force."""

import keras
import numpy as np
import pytest

from tests.support.rules_check import check_ghost
from tfstiffness.engine.rules import _elementwise, rule_for

L = keras.layers
RNG = np.random.default_rng(7)


def _randomise(model):
    # LayerScale starts at 1e-6 and PReLU's alpha at 0: either would hide a wrong term.
    for v in model.trainable_variables:
        v.assign(RNG.normal(size=v.shape).astype("float32"))


@pytest.mark.parametrize("shared_axes", [None, [1], [1, 2]])
def test_prelu(shared_axes):
    model = keras.Sequential([
        keras.Input((4, 4, 3)), L.Conv2D(5, 2), L.PReLU(shared_axes=shared_axes),
        L.Flatten(), L.Dense(6), L.PReLU(), L.Dense(3)])
    _randomise(model)
    check_ghost(model, RNG.normal(size=(5, 4, 4, 3)).astype("float32"), rng=RNG, batch_size=2)
    assert rule_for(model.layers[1]) is not None and rule_for(model.layers[4]) is not None


def test_layer_scale():
    layer_scale = _elementwise._layer_scale_class()
    assert layer_scale is not None, "keras.applications' ConvNeXt LayerScale moved"
    inputs = keras.Input((4, 4, 3))
    hidden = L.Conv2D(6, 2)(inputs)
    hidden = layer_scale(1e-6, 6)(hidden)
    hidden = L.Flatten()(hidden)
    # Called twice: the two calls' gradients add up.
    shared = layer_scale(0.5, 54)
    outputs = L.Dense(3)(shared(L.Dense(54)(shared(hidden))))
    model = keras.Model(inputs, outputs)
    _randomise(model)
    check_ghost(model, RNG.normal(size=(5, 4, 4, 3)).astype("float32"), rng=RNG, batch_size=2)
    assert all(rule_for(layer) is not None for layer in model.layers
               if isinstance(layer, layer_scale))
