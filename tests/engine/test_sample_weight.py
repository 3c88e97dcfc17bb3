"""sample_weight= as `fit` takes it: per example (G_w = diag(w) G diag(w)) and per token (fit's
loss on a batch of that one example), against the brute-force loop with Keras' own weighted
loss; the streaming summary of weighted examples; mistakes named."""

import warnings

import keras
import numpy as np
import pytest

import tfstiffness as tfs
from tests.support.bruteforce import brute_force_gram, relative_error

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
KERAS_SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)  # fit's reduction
RNG = np.random.default_rng(21)


def _classifier():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(7, activation="tanh"),
                              keras.layers.Dense(3)])
    for v in model.trainable_variables:  # biases off zero, so a wrong term cannot hide
        v.assign(v + RNG.normal(size=v.shape).astype("float32") * 0.3)
    return model


def _fit_loss(yt, p):
    """fit's loss on a batch of one example: Keras' loss called with the sample weight."""
    return KERAS_SCE(yt[0], p, sample_weight=yt[1])[None]


@pytest.mark.parametrize("method", ["auto", "vmap", "jacobian"])
def test_per_example_weights_give_diag_w_g_diag_w(method):
    model = _classifier()
    x = RNG.normal(size=(9, 5)).astype("float32")
    y = RNG.integers(0, 3, 9)
    w = RNG.uniform(-1.0, 2.0, 9).astype("float32")
    w[4] = 0.0
    expected, _ = brute_force_gram(model, _fit_loss, x, (y, w))
    plain, _ = brute_force_gram(model, SCE, x, y)
    assert relative_error(np.diag(w) @ plain @ np.diag(w), expected) <= 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the zero-weight example's zero gradient
        gram = tfs.gradient_gram(model, x, y, loss=SCE, sample_weight=w, method=method,
                                 batch_size=4)
    assert relative_error(gram.total, expected) <= 1e-5
    assert gram.sq_norms[4] == 0 and gram.num_zero_gradient == 1
    x2 = RNG.normal(size=(4, 5)).astype("float32")
    y2, w2 = RNG.integers(0, 3, 4), RNG.uniform(0.5, 2.0, 4).astype("float32")
    cross = tfs.gradient_gram(model, x, y, loss=SCE, x2=x2, y2=y2, sample_weight=w,
                              sample_weight2=w2, method=method)
    expected, _ = brute_force_gram(model, _fit_loss, x, (y, w), x2, (y2, w2))
    assert relative_error(cross.total, expected) <= 1e-5


def _sequence_model(mask_zero):
    tokens = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(11, 5, mask_zero=mask_zero)(tokens)
    h = keras.layers.Dense(7, activation="tanh")(h)
    return keras.Model(tokens, keras.layers.Dense(11)(h))


@pytest.mark.parametrize("mask_zero", [False, True])
def test_per_token_weights_follow_fit_on_one_example(mask_zero):
    tokens = RNG.integers(1, 11, (8, 6)).astype("int32")
    lengths = np.array([6, 5, 3, 1, 4, 6, 2, 3])
    padding = np.arange(6)[None, :] < lengths[:, None]
    tokens[~padding] = 0
    labels = RNG.integers(0, 11, (8, 6))
    model = _sequence_model(mask_zero)
    # A padding mask as weights (as keras_hub preprocessors return it), then general weights.
    for w in (padding.astype("float32"), RNG.uniform(0.0, 2.0, (8, 6)).astype("float32")):
        expected, _ = brute_force_gram(model, _fit_loss, tokens, (labels, w))
        for method in ("auto", "vmap", "jacobian"):
            gram = tfs.gradient_gram(model, tokens, labels, loss=SCE, sample_weight=w,
                                     method=method)
            assert relative_error(gram.total, expected) <= 1e-5, method
    # Per-example weights on a sequence loss scale each example's mean.
    w = RNG.uniform(0.5, 2.0, 8).astype("float32")
    per_token = np.repeat(w[:, None], 6, 1)
    expected, _ = brute_force_gram(model, _fit_loss, tokens, (labels, per_token))
    gram = tfs.gradient_gram(model, tokens, labels, loss=SCE, sample_weight=w)
    assert relative_error(gram.total, expected) <= 1e-5


def test_stiffness_summary_of_weighted_examples():
    model = _classifier()
    x = RNG.normal(size=(13, 5)).astype("float32")
    y = np.arange(13) % 3
    w = RNG.choice([-1.0, 0.5, 2.0], 13).astype("float32")
    expected, _ = brute_force_gram(model, _fit_loss, x, (y, w))
    summary = tfs.stiffness_summary(model, x, y, loss=SCE, sample_weight=w, block_size=4,
                                    distance_edges=())
    np.testing.assert_allclose(summary.sq_norms, np.diag(expected), rtol=1e-5)
    for kind in ("sign", "cosine"):
        C = tfs.class_stiffness(tfs.stiffness_matrix(expected, kind), y)
        np.testing.assert_allclose(summary.class_matrix[kind], C, atol=1e-5)


def test_weight_mistakes_are_named():
    model = _classifier()
    x = RNG.normal(size=(6, 5)).astype("float32")
    y = RNG.integers(0, 3, 6)
    with pytest.raises(ValueError, match=r"sample_weight: expected weights per example \[N\] "
                       r"or per token \[N, T\] with N = 6, got shape \[5\]"):
        tfs.gradient_gram(model, x, y, loss=SCE, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match=r"sample_weight: contains NaN or inf weights"):
        tfs.gradient_gram(model, x, y, loss=SCE, sample_weight=np.array([1, 1, np.nan, 1, 1, 1]))
    with pytest.raises(TypeError, match=r"sample_weight: expected numeric weights, per example "
                       r"\[N\] or per token \[N, T\], got <U1 values"):
        tfs.gradient_gram(model, x, y, loss=SCE, sample_weight=np.array(list("abcdef")))
    with pytest.raises(ValueError, match=r"sample_weight: per-token weights need per-token "
                       r"losses, but the loss of y gives values of shape \[N\]; pass "
                       r"per-example weights \[N\]"):
        tfs.gradient_gram(model, x, y, loss=SCE, sample_weight=np.ones((6, 3)))
    with pytest.raises(ValueError, match=r"sample_weight2: per-token weights of shape \[4, 5\] "
                       r"do not fit output y, whose loss gives values of shape \[N, 6\]"):
        seq = _sequence_model(False)
        tokens = RNG.integers(1, 11, (4, 6)).astype("int32")
        tfs.gradient_gram(seq, tokens, tokens, loss=SCE, x2=tokens, y2=tokens,
                          sample_weight2=np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"sample_weight2: weights the second set; pass x2 and "
                       r"y2 with it"):
        tfs.gradient_gram(model, x, y, loss=SCE, sample_weight2=np.ones(6))
