"""Each structured ("ghost") rule against the brute-force per-example loop."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.support.bruteforce import relative_error
from tests.support.custom_layers import Scale
from tests.support.rules_check import check_ghost
from tfstiffness.engine import _factors
from tfstiffness.engine.rules._linear import einsum_layout as _einsum_layout

TOL = 1e-5
RNG = np.random.default_rng(0)


def _check(model, x, y=None, expect_fallback=()):
    return check_ghost(model, x, y, expect_fallback, rng=RNG)[0]


def _seq(*layers, shape):
    return keras.Sequential([keras.Input(shape), *layers])


def test_dense_flat_and_sequence():
    _check(_seq(keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3), shape=(5,)),
           RNG.normal(size=(6, 5)).astype("float32"))
    # T > 1 (and T of two axes): the per-position sum.
    model = _seq(keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(3, use_bias=False),
                 keras.layers.Flatten(), keras.layers.Dense(3), shape=(2, 3, 5))
    _check(model, RNG.normal(size=(6, 2, 3, 5)).astype("float32"))


def test_einsum_dense_with_partial_bias_and_ellipsis():
    model = _seq(
        keras.layers.EinsumDense("abc,cde->abde", output_shape=(4, 2, 3), bias_axes="e"),
        keras.layers.EinsumDense("abde,dec->abc", output_shape=(4, 5), bias_axes="bc"),
        keras.layers.EinsumDense("...c,cd->...d", output_shape=3, bias_axes="d"),
        keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3), shape=(4, 5))
    _check(model, RNG.normal(size=(6, 4, 5)).astype("float32"))


def test_einsum_layout_reads_dense_maps_and_refuses_others():
    layout = _einsum_layout("abc,cde->abde", 3)
    assert (layout.rows, layout.contracted, layout.kernel_free) == ("ab", "c", "de")
    assert _einsum_layout("...b,bc->...c", 3).contracted == "b"
    assert _einsum_layout("abc,bc->ab", 3) is None  # kernel shares a kept axis
    assert _einsum_layout("abc,cd->ad", 3) is None  # sums an input axis off the kernel


def test_multi_head_attention():
    tokens = keras.Input((5, 4))
    out = keras.layers.MultiHeadAttention(2, 3, value_dim=2)(tokens, tokens)
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(out))
    _check(keras.Model(tokens, out), RNG.normal(size=(6, 5, 4)).astype("float32"))


@pytest.mark.parametrize("kwargs", [
    {"strides": 2, "padding": "same"},
    {"strides": 2, "padding": "valid"},
    {"dilation_rate": 2, "padding": "same"},
    {"dilation_rate": 2, "padding": "valid"},
])
def test_conv2d(kwargs):
    model = _seq(keras.layers.Conv2D(3, 3, activation="relu", **kwargs), keras.layers.Flatten(),
                 keras.layers.Dense(3), shape=(9, 9, 2))
    _check(model, RNG.normal(size=(5, 9, 9, 2)).astype("float32"))


@pytest.mark.parametrize("kwargs", [
    {"strides": 2, "padding": "same"}, {"padding": "valid", "dilation_rate": 2},
    {"padding": "causal", "dilation_rate": 2},
])
def test_conv1d(kwargs):
    model = _seq(keras.layers.Conv1D(4, 3, activation="relu", **kwargs),
                 keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3), shape=(11, 2))
    _check(model, RNG.normal(size=(5, 11, 2)).astype("float32"))


@pytest.mark.parametrize("vocab", [4, 50])  # few rows: materialised table; many: token matching
def test_embedding_with_repeated_tokens(vocab):
    model = _seq(keras.layers.Embedding(vocab, 3), keras.layers.Flatten(), keras.layers.Dense(3),
                 shape=(6,))
    x = RNG.integers(0, 4, size=(7, 6)).astype("int32")
    x[0] = 1  # one token repeated throughout an example
    _check(model, x)


def test_layer_and_batch_normalization():
    model = _seq(keras.layers.Dense(6), keras.layers.LayerNormalization(),
                 keras.layers.BatchNormalization(), keras.layers.Dense(3), shape=(4,))
    bn = model.layers[2]
    bn.moving_mean.assign(RNG.normal(size=6).astype("float32"))
    bn.moving_variance.assign(RNG.uniform(0.5, 2, size=6).astype("float32"))
    bn.gamma.assign(RNG.normal(size=6).astype("float32"))
    _check(model, RNG.normal(size=(6, 4)).astype("float32"))


def test_shared_layer_called_on_different_inputs():
    a, b = keras.Input((4,)), keras.Input((4,))
    shared = keras.layers.Dense(4, activation="tanh")
    merged = keras.layers.Concatenate()([shared(a), shared(shared(b))])
    both = keras.Input((2, 4))
    model = keras.Model(both, keras.layers.Dense(3)(
        keras.Model([a, b], merged)([both[:, 0], both[:, 1]])))
    _check(model, RNG.normal(size=(6, 2, 4)).astype("float32"))


def test_mixing_ruled_and_unruled_layers():
    model = _seq(keras.layers.Dense(5, activation="relu"), Scale(name="scale"),
                 keras.layers.PReLU(name="prelu"), keras.layers.Dense(3), shape=(4,))
    model.get_layer("scale").w.assign(RNG.normal(size=5).astype("float32"))
    gram = _check(model, RNG.normal(size=(6, 4)).astype("float32"),
                  expect_fallback=("scale",))  # PReLU has a rule (issue 23)
    keys = [key.rsplit("/", 1)[-1] for key in gram.by_layer]
    assert keys[1:3] == ["scale", "prelu"]  # layer order is kept


@pytest.mark.parametrize("pairs_per_step", [1 << 18, 3])  # 3: many steps of the token join
def test_factor_forms_agree_with_materialised_gradients(monkeypatch, pairs_per_step):
    monkeypatch.setattr(_factors, "_PAIRS_PER_STEP", pairs_per_step)
    a = tf.random.normal([5, 3, 4])
    b = tf.random.normal([5, 3, 2])
    dense = tf.reshape(tf.einsum("ntd,ntp->ndp", a, b), [5, -1]).numpy()
    ref = dense @ dense.T
    for factor in (_factors.Outer(a, b), _factors.linear_factor(a, b)):
        assert relative_error(_factors.gram(factor, factor), ref) <= TOL
        assert relative_error(_factors.sq_norms(factor), np.diag(ref)) <= TOL
    tokens = tf.constant(RNG.integers(0, 3, size=(5, 3)), tf.int32)
    table = np.zeros((5, 3, 2))
    for i in range(5):
        for t in range(3):
            table[i, tokens[i, t]] += b[i, t]
    flat = table.reshape(5, -1)
    for factor in (_factors.TokenMatch(tokens, b), _factors.embedding_factor(tokens, b, 3)):
        assert relative_error(_factors.gram(factor, factor), flat @ flat.T) <= TOL
        assert relative_error(_factors.sq_norms(factor), (flat**2).sum(1)) <= TOL


class TiedProjection(keras.layers.Layer):
    """Logits from the embedding table itself: the table is used outside its own call."""

    def __init__(self, embedding, **kwargs):
        super().__init__(**kwargs)
        self.embedding = embedding

    def call(self, h):
        return keras.ops.matmul(h, keras.ops.transpose(self.embedding.embeddings))


def test_tied_weights_are_detected_and_stay_exact():
    tokens = keras.Input((4,), dtype="int32")
    embedding = keras.layers.Embedding(3, 5, name="tied")
    h = keras.layers.GlobalAveragePooling1D()(embedding(tokens))
    h = keras.layers.Dense(5, activation="tanh", name="hidden")(h)
    model = keras.Model(tokens, TiedProjection(embedding)(h))
    x = RNG.integers(0, 3, size=(6, 4)).astype("int32")
    with pytest.warns(UserWarning, match=r"ghost: the variables of layer\(s\) \['tied'\]"):
        _check(model, x, expect_fallback=("tied",))
