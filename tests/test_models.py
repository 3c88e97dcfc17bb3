"""Models: architecture (parameter counts worked out by hand), names, masking, training, and
exact per-example gradient Grams against the brute-force reference."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.support.bruteforce import brute_force_gram, relative_error
from tfstiffness import gradient_gram, models
from tfstiffness.data import synthetic


def dense(fan_in: int, units: int) -> int:
    return fan_in * units + units


def conv(kernel: int, cin: int, cout: int, bias: bool = True) -> int:
    return kernel * kernel * cin * cout + (cout if bias else 0)


# ------------------------------------------------------------------ parameter counts


def test_fully_connected_parameter_count():
    model = models.fully_connected((28, 28, 1), 10)
    expected = dense(784, 500) + dense(500, 300) + dense(300, 100) + dense(100, 10)
    # The text says 575,910, but its own sum 784*500+500+...+100*10+10 is 573,910.
    assert expected == 573_910
    assert model.count_params() == expected
    assert model.output_shape == (None, 10)


def test_paper_cnn_parameter_count_and_shapes():
    model = models.paper_cnn((28, 28, 1), 10)
    # 28 -> 14 -> 7 -> 3 after three 2x2 poolings ("valid"), 32 channels.
    expected = conv(3, 1, 16) + conv(3, 16, 32) + conv(3, 32, 32) + dense(3 * 3 * 32, 10)
    assert model.count_params() == expected == 16_938
    assert model.get_layer("flatten").output.shape == (None, 288)
    cifar = models.paper_cnn((32, 32, 3), 100)
    assert cifar.count_params() == (
        conv(3, 3, 16) + conv(3, 16, 32) + conv(3, 32, 32) + dense(4 * 4 * 32, 100)
    )


def test_mnist1d_cnn_parameter_count_and_lengths():
    model = models.mnist1d_cnn()
    # Conv1D kernels k x cin x cout + cout; lengths (L + 2 - k) // 2 + 1: 40 -> 19 -> 10 -> 5.
    expected = (5 * 1 * 25 + 25) + 2 * (3 * 25 * 25 + 25) + dense(5 * 25, 10)
    assert model.count_params() == expected == 5_210
    assert [model.get_layer(f"conv_{i}").output.shape[1] for i in (1, 2, 3)] == [19, 10, 5]
    assert model.input_shape == (None, 40) and model.output_shape == (None, 10)
    assert models.mnist1d_cnn(64, 3, channels=8).get_layer("flatten").output.shape == (None, 64)
    with pytest.raises(ValueError, match="input_length must be at least 7"):
        models.mnist1d_cnn(6)


def _resnet20_count(channels: int, classes: int, batch_norm: bool) -> tuple[int, int]:
    """(total, trainable) parameters of ResNet20 v1 from its definition."""
    bias = not batch_norm
    bn = 4 if batch_norm else 0  # gamma, beta (trainable), moving mean, variance (not).
    total = conv(3, channels, 16, bias) + bn * 16
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            cin = filters // 2 if stage > 0 and block == 0 else filters
            total += conv(3, cin, filters, bias) + conv(3, filters, filters, bias)
            total += 2 * bn * filters
            if cin != filters:
                total += conv(1, cin, filters)  # Projection shortcut, with bias, no BN.
    total += dense(64, classes)
    non_trainable = (16 + 2 * 3 * (16 + 32 + 64)) * 2 if batch_norm else 0
    return total, total - non_trainable


@pytest.mark.parametrize("batch_norm", [False, True])
def test_resnet20v1_parameter_count_and_structure(batch_norm):
    model = models.resnet20v1((32, 32, 3), 10, batch_norm=batch_norm)
    total, trainable = _resnet20_count(3, 10, batch_norm)
    assert model.count_params() == total
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == trainable
    if not batch_norm:
        assert total == 271_690  # The "0.27M" of He et al.'s Table 6.
    convs3 = [lay for lay in model.layers
              if isinstance(lay, keras.layers.Conv2D) and lay.kernel_size == (3, 3)]
    dense_layers = [lay for lay in model.layers if isinstance(lay, keras.layers.Dense)]
    assert len(convs3) + len(dense_layers) == 20  # The "20" of ResNet20.
    bns = [lay for lay in model.layers if isinstance(lay, keras.layers.BatchNormalization)]
    assert len(bns) == (19 if batch_norm else 0)
    # Stride 2 at the start of stages 2 and 3: 32 -> 16 -> 8.
    assert model.get_layer("stage1_block3_relu").output.shape == (None, 32, 32, 16)
    assert model.get_layer("stage2_block1_relu").output.shape == (None, 16, 16, 32)
    assert model.get_layer("stage3_block3_relu").output.shape == (None, 8, 8, 64)


def test_transformer_parameter_count():
    v, length, d, heads, ff, blocks, k = 30, 8, 16, 2, 32, 2, 3
    model = models.transformer_classifier(v, length, k, embed_dim=d, num_heads=heads,
                                          ff_dim=ff, num_blocks=blocks)
    attention = 4 * dense(d, d)  # Query, key, value and output projections (heads * d/heads).
    block = attention + 2 * (2 * d) + dense(d, ff) + dense(ff, d)  # + two LayerNorms.
    expected = v * d + length * d + blocks * block + dense(d, k)
    assert model.count_params() == expected
    assert model.get_layer("pooled").output.shape == (None, d)


def test_toy_mlp_parameter_count_and_activations():
    for widths in [(64, 64), (64, 8, 4), (8, 64, 8)]:
        model = models.toy_mlp(2, 2, widths=widths)
        sizes = (2, *widths, 2)
        assert model.count_params() == sum(dense(a, b) for a, b in itertools.pairwise(sizes))
    x = np.array([[-1.0, 0.5]], np.float32)
    for activation, fn in [("relu", lambda z: np.maximum(z, 0)), ("tanh", np.tanh),
                           ("leaky_relu", lambda z: np.where(z > 0, z, 0.2 * z))]:
        model = models.toy_mlp(2, 2, widths=(5,), activation=activation)
        w0, b0, w1, b1 = (np.asarray(v) for v in model.weights)
        expected = fn(x @ w0 + b0) @ w1 + b1
        np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        models.toy_mlp(2, 2, activation="no_such_activation")


# ------------------------------------------------------------------ names, outputs, masking


def test_names_are_deterministic_and_outputs_are_logits():
    def paths(model):
        return [v.path for v in model.weights]

    for build in [lambda: models.fully_connected((8, 8, 1), 3),
                  lambda: models.resnet20v1((8, 8, 3), 3, batch_norm=True),
                  lambda: models.transformer_classifier(30, 8, 2, embed_dim=8, num_heads=2)]:
        first, second = build(), build()
        assert paths(first) == paths(second)
        assert first.layers[-1].name == "logits"
        assert first.layers[-1].activation is keras.activations.linear
    assert paths(models.fully_connected((4,), 2, widths=(3,))) == [
        "dense_0/kernel", "dense_0/bias", "logits/kernel", "logits/bias"]


def test_transformer_ignores_padding():
    model = models.transformer_classifier(30, 8, 2, embed_dim=16, num_heads=2, ff_dim=32)
    tokens = np.array([[5, 3, 9, 0, 0, 0, 0, 0], [7, 7, 2, 11, 4, 0, 0, 0]], np.int32)
    before = model(tokens).numpy()
    pooled = keras.Model(model.input, model.get_layer("pooled").output)
    pooled_before = pooled(tokens).numpy()
    # What sits at padding positions must not matter: change the padding token's embedding.
    table = model.get_layer("token_embedding").embeddings
    table.assign(np.concatenate([np.full((1, 16), 50.0, np.float32), table.numpy()[1:]]))
    np.testing.assert_allclose(model(tokens).numpy(), before, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pooled(tokens).numpy(), pooled_before, rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(model(np.zeros((1, 8), np.int32)).numpy()))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="divisible"):
        models.transformer_classifier(30, 8, 2, embed_dim=10, num_heads=4)
    with pytest.raises(ValueError, match="input_shape"):
        models.paper_cnn((4, 4, 3), 10)


# ------------------------------------------------------------------ training


def _images():
    x, y, _ = synthetic.hierarchical_images(8, 4, 2, image_shape=(8, 8, 3), seed=0)
    return x, y, 8


def _text():
    tokens, y = synthetic.synthetic_text(64, vocab_size=30, sequence_length=8, seed=0)
    return tokens, y, 2


def _arcs():
    x, y = synthetic.two_arcs_grid(16)
    return x, y, 2


def _signals():
    # Class-dependent bumps in noise, like MNIST-1D's shape (generating it takes seconds).
    rng = np.random.default_rng(0)
    y = np.arange(64) % 4
    t = np.arange(40)
    bumps = np.exp(-0.5 * ((t[None] - 8 - 8 * y[:, None]) / 2.0) ** 2)
    return (bumps + 0.3 * rng.standard_normal((64, 40))).astype(np.float32), y, 4


TRAINING_CASES = {
    "fully_connected": (lambda s, k: models.fully_connected(s, k), _images, 1e-3),
    "paper_cnn": (lambda s, k: models.paper_cnn(s, k), _images, 3e-3),
    "resnet20v1": (lambda s, k: models.resnet20v1(s, k), _images, 1e-3),
    "transformer": (lambda s, k: models.transformer_classifier(
        30, s[0], k, embed_dim=16, num_heads=2, ff_dim=32), _text, 3e-3),
    "mnist1d_cnn": (lambda s, k: models.mnist1d_cnn(s[0], k), _signals, 1e-2),
    "toy_mlp_relu": (lambda s, k: models.toy_mlp(s[0], k), _arcs, 1e-2),
    "toy_mlp_tanh": (lambda s, k: models.toy_mlp(s[0], k, activation="tanh"), _arcs, 1e-2),
    "toy_mlp_leaky_relu": (
        lambda s, k: models.toy_mlp(s[0], k, activation="leaky_relu"), _arcs, 1e-2),
}


def _train_losses(model, x, y, lr, steps):
    """Full-batch Adam steps, eager: for models this small tracing `fit` costs far more."""
    optimizer = keras.optimizers.Adam(lr)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    losses = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        losses.append(float(loss))
    return losses


@pytest.mark.parametrize("case", sorted(TRAINING_CASES))
def test_model_trains_on_its_synthetic_data(case):
    build, data, lr = TRAINING_CASES[case]
    x, y, k = data()
    losses = _train_losses(build(x.shape[1:], k), x, y, lr, steps=15)
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.slow
def test_resnet20v1_with_batch_norm_trains():
    x, y, k = _images()
    losses = _train_losses(models.resnet20v1(x.shape[1:], k, batch_norm=True), x, y, 1e-3, 15)
    assert losses[-1] < 0.6 * losses[0], losses


# ------------------------------------------------------------------ exact Gram matrices

TINY_MODELS = {
    "fully_connected": lambda: models.fully_connected((6, 6, 1), 3, widths=(7, 5)),
    "paper_cnn": lambda: models.paper_cnn((8, 8, 2), 3),
    "mnist1d_cnn": lambda: models.mnist1d_cnn(40, 3, channels=4),
    "resnet20v1": lambda: models.resnet20v1((8, 8, 3), 3),
    "resnet20v1_bn": lambda: models.resnet20v1((8, 8, 3), 3, batch_norm=True),
    # One block: a second adds tracing time but no new kind of layer.
    "transformer": lambda: models.transformer_classifier(30, 8, 3, embed_dim=8, num_heads=2,
                                                         ff_dim=16, num_blocks=1),
    "toy_mlp": lambda: models.toy_mlp(2, 3, activation="tanh"),
}


def _tiny_data(model, n=6):
    rng = np.random.default_rng(1)
    shape = model.input.shape[1:]
    if model.name == "transformer_classifier":
        x, _ = synthetic.synthetic_text(n, vocab_size=30, sequence_length=shape[0], seed=1)
    else:
        x = rng.standard_normal((n, *shape)).astype(np.float32)
    return x, np.arange(n) % 3


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name == "resnet20v1_bn" else name
    for name in sorted(TINY_MODELS)])
def test_gradient_gram_is_exact(name):
    model = TINY_MODELS[name]()
    if name == "resnet20v1_bn":
        # Non-trivial BN statistics, so inference mode differs from a plain identity.
        for v in model.non_trainable_variables:
            v.assign(np.random.default_rng(2).uniform(0.5, 1.5, v.shape).astype(np.float32))
    x, y = _tiny_data(model)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    expected, _ = brute_force_gram(model, loss, x, y)
    for method in ("jacobian", "auto"):
        gram = gradient_gram(model, x, y, loss=loss, method=method)
        assert gram.total.shape == (len(x), len(x))
        assert relative_error(gram.total, expected) <= 1e-5, method
