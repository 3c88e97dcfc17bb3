"""A head compiled with `loss=None`: zero gradient for the layers only it uses (as `fit`
trains the rest), one warning naming them; a layer connected to nothing is still refused."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfstiffness as tfs
from tests.support.bruteforce import brute_force_gram, relative_error

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
RNG = np.random.default_rng(11)


def _two_heads():
    inputs = keras.Input((4,))
    h = keras.layers.Dense(6, activation="tanh", name="trunk")(inputs)
    cls = keras.layers.Dense(3, name="cls")(h)
    reg = keras.layers.Dense(2, name="reg")(keras.layers.Dense(5, name="reg_hidden")(h))
    outputs = {"cls": cls, "reg": reg}
    return keras.Model(inputs, outputs)


def _reference(yt, p):  # written out: only the classification head has a loss
    return keras.losses.sparse_categorical_crossentropy(yt["cls"], p["cls"], from_logits=True)


@pytest.mark.parametrize("method", ["auto", "vmap", "jacobian"])
def test_head_without_loss_has_zero_gradient_and_one_warning(method):
    model = _two_heads()
    model.compile("adam", loss={"cls": SCE, "reg": None})
    for layer in model.layers:  # move biases off zero, so a wrong term cannot hide
        for v in layer.trainable_variables:
            v.assign(v + RNG.normal(size=v.shape).astype("float32") * 0.3)
    x = RNG.normal(size=(7, 4)).astype("float32")
    y = {"cls": RNG.integers(0, 3, 7)}
    expected, by_layer = brute_force_gram(model, _reference, x, y)
    assert np.abs(by_layer["reg"]).max() == 0 and np.abs(by_layer["cls"]).max() > 0
    with pytest.warns(UserWarning, match=r"model: layer\(s\) 'reg', 'reg_hidden' feed only "
                      r"output\(s\) 'reg' whose loss is None, so their gradient is zero \(as "
                      r"in model.fit"):
        gram = tfs.gradient_gram(model, x, y, method=method, batch_size=4, by_layer=True)
    assert relative_error(gram.total, expected) <= 1e-5
    assert np.abs(gram.by_layer["reg"]).max() == 0
    with warnings.catch_warnings():  # once: the checked model is cached
        warnings.filterwarnings("error", message=".*whose loss is None")
        again = tfs.gradient_gram(model, x, y, method=method, batch_size=4)
    assert relative_error(again.total, expected) <= 1e-5
    # The same model with the loss passed per output, None for the head, agrees.
    with pytest.warns(UserWarning, match="whose loss is None"):
        passed = tfs.gradient_gram(_copy(model), x, y, loss={"cls": SCE, "reg": None},
                                   method=method)
    assert relative_error(passed.total, expected) <= 1e-5


def _copy(model):
    twin = _two_heads()
    twin.set_weights(model.get_weights())
    return twin


def test_layer_connected_to_no_output_is_still_refused():
    inputs = keras.Input((4,))
    h = keras.layers.Dense(6, activation="tanh", name="trunk")(inputs)
    frozen_out = keras.layers.Dense(2, name="reg")(h)
    cut = keras.layers.Lambda(lambda t: tf.stop_gradient(t), name="cut")(
        keras.layers.Dense(3, name="cut_off")(h))
    model = keras.Model(inputs, {"cls": keras.layers.Add()([keras.layers.Dense(3, name="cls")(h),
                                                            cut]),
                                 "reg": frozen_out})
    x = RNG.normal(size=(5, 4)).astype("float32")
    y = {"cls": RNG.integers(0, 3, 5)}
    with pytest.raises(ValueError, match=r"model: the loss does not depend on the trainable "
                       r"variables of layer\(s\) 'cut_off' \(gradient None"):
        tfs.gradient_gram(model, x, y, loss={"cls": SCE, "reg": None})
