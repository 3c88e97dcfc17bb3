"""Quantized models: int8 and int4 exact against brute force; float8 refused with a message
saying why (never a traceback from inside Keras' float8 gradient)."""

import keras
import numpy as np
import pytest

import tfstiffness as tfs
from tests.support.bruteforce import brute_force_gram, relative_error

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
RNG = np.random.default_rng(5)
X = RNG.normal(size=(6, 4)).astype("float32")
Y = RNG.integers(0, 3, 6)


def _model(mode):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(3, name="head")])
    for v in model.trainable_variables:  # biases off zero, so a wrong term cannot hide
        v.assign(v + RNG.normal(size=v.shape).astype("float32") * 0.3)
    model.quantize(mode)
    return model


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_integer_quantization_is_exact(mode):
    model = _model(mode)
    expected, _ = brute_force_gram(model, SCE, X, Y)
    for method in ("auto", "vmap", "jacobian"):
        gram = tfs.gradient_gram(model, X, Y, loss=SCE, method=method)
        assert relative_error(gram.total, expected) <= 1e-5, method


@pytest.mark.parametrize("method", ["auto", "ghost", "vmap", "jacobian"])
def test_float8_is_refused_naming_layers_and_alternatives(method):
    model = _model("float8")
    message = (r"model: layer\(s\) \['dense.*', 'head'\] are quantized to float8 "
               r"\(model.quantize\('float8'\)\); .*scale and amax-history variables are "
               r"trainable=True but set from each batch.*Measure the model before quantizing "
               r"it, or quantize with 'int8' or 'int4'")
    with pytest.raises(ValueError, match=message):
        tfs.gradient_gram(model, X, Y, loss=SCE, method=method)
    with pytest.raises(ValueError, match=message):
        tfs.stiffness_summary(model, X, Y, loss=SCE, method=method)
