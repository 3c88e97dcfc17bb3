"""Every bad input to gradient_gram fails early with a message naming what to fix."""

import keras
import numpy as np
import pytest

import tfstiffness as tfs

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)


def _model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu"),
                             keras.layers.Dense(3)])


X = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
Y = np.array([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs(bad):
    x = X.copy()
    x[3, 1] = bad
    with pytest.raises(ValueError, match=r"x: contains NaN or inf in 1 example\(s\) .*index 3"):
        tfs.gradient_gram(_model(), x, Y, loss=LOSS)
    with pytest.raises(ValueError, match="x2: contains NaN or inf"):
        tfs.gradient_gram(_model(), X, Y, loss=LOSS, x2=x, y2=Y)


def test_length_mismatch():
    with pytest.raises(ValueError, match="x and y must have the same number of examples: got 6 "
                                         "inputs and 5 labels"):
        tfs.gradient_gram(_model(), X, Y[:5], loss=LOSS)
    with pytest.raises(ValueError, match="x2 and y2 must have"):
        tfs.gradient_gram(_model(), X, Y, loss=LOSS, x2=X, y2=Y[:2])
    with pytest.raises(ValueError, match="x2, y2: give both"):
        tfs.gradient_gram(_model(), X, Y, loss=LOSS, x2=X)


def test_labels_out_of_range():
    with pytest.raises(ValueError, match=r"y: labels must lie in \[0, 3\) for a model with 3 "
                                         r"outputs; got values in \[0, 3\]"):
        tfs.gradient_gram(_model(), X, np.array([0, 1, 2, 3, 0, 1]), loss=LOSS)
    with pytest.raises(ValueError, match=r"y2: labels must lie in \[0, 3\)"):
        tfs.gradient_gram(_model(), X, Y, loss=LOSS, x2=X, y2=-Y)
    with pytest.raises(ValueError, match=r"y: expected integer labels of shape \[N\] or one-hot"):
        tfs.gradient_gram(_model(), X, np.zeros((6, 5)), loss=LOSS)


def test_input_shape_does_not_fit():
    with pytest.raises(ValueError, match=r"x: each example has shape \(5,\), but the model "
                                         r"expects \(4,\)"):
        tfs.gradient_gram(_model(), np.zeros((6, 5), np.float32), Y, loss=LOSS)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(keras.ops.reshape(x, (-1, 4)))

    model = Sub()
    model(X[:1])
    with pytest.raises(ValueError, match=r"x: examples of shape \(5,\) do not fit the model"):
        tfs.gradient_gram(model, np.zeros((6, 5), np.float32), Y, loss=LOSS)


def test_no_loss_for_uncompiled_model():
    with pytest.raises(ValueError, match="loss: the model is not compiled with a loss"):
        tfs.gradient_gram(_model(), X, Y)
    with pytest.raises(ValueError, match="loss: unknown loss name 'nope'"):
        tfs.gradient_gram(_model(), X, Y, loss="nope")
    with pytest.raises(TypeError, match="loss: expected a keras.losses.Loss"):
        tfs.gradient_gram(_model(), X, Y, loss=3)
    with pytest.raises(ValueError, match="loss: must return one value per example"):
        tfs.gradient_gram(_model(), X, Y, loss=lambda t, p: keras.ops.sum(p))


def test_no_trainable_variables():
    model = _model()
    model.trainable = False
    with pytest.raises(ValueError, match="model: has no trainable variables"):
        tfs.gradient_gram(model, X, Y, loss=LOSS)


def test_disconnected_layer_is_named():
    class WithOrphan(keras.Model):
        def __init__(self):
            super().__init__()
            self.head = keras.layers.Dense(3, name="head")
            self.orphan = keras.layers.Dense(2, name="orphan")
            self.orphan.build((None, 4))  # built and trainable, but never called

        def call(self, x):
            return self.head(x)

    with pytest.raises(ValueError, match=r"model: the loss does not depend on .*'orphan'"):
        tfs.gradient_gram(WithOrphan(), X, Y, loss=LOSS)


def test_bad_method_and_batch_size():
    with pytest.raises(ValueError, match="method: expected one of"):
        tfs.gradient_gram(_model(), X, Y, loss=LOSS, method="fast")
    with pytest.raises(ValueError, match="batch_size: expected a positive integer"):
        tfs.gradient_gram(_model(), X, Y, loss=LOSS, batch_size=0)


def test_structure_that_does_not_fit_a_single_input_model():
    with pytest.raises(ValueError, match=r"x: the model has one input, named .*; got a dict "
                                         r"with key\(s\) \['a'\]"):
        tfs.gradient_gram(_model(), {"a": X}, Y, loss=LOSS)
    with pytest.raises(ValueError, match="x: the model has one input, but got a list of 2 arrays"):
        tfs.gradient_gram(_model(), [X, X[:, :2]], Y, loss=LOSS)
    gram = tfs.gradient_gram(_model(), [X], Y, loss=LOSS)  # as model.fit accepts it
    assert gram.total.shape == (6, 6)
