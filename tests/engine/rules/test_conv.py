"""Convolution rules (depthwise, separable, transposed, 3D, grouped) against brute force."""

import keras
import numpy as np
import pytest

from tests.support.rules_check import check_ghost

L = keras.layers
RNG = np.random.default_rng(0)


def _model(shape, *layers, head="flatten"):
    pool = L.Flatten() if head == "flatten" else L.GlobalAveragePooling1D()
    return keras.Sequential([keras.Input(shape), *layers, pool, L.Dense(3)])


def _data(shape, n=5):
    return RNG.normal(size=(n, *shape)).astype("float32")


def _randomise_biases(model):
    # Zero-initialised biases would hide a wrong bias gradient: give them values.
    for v in model.trainable_variables:
        if "bias" in v.path:
            v.assign(RNG.normal(size=v.shape).astype("float32"))


CASES = {
    "depthwise2d": ((9, 9, 3), lambda: [
        L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="relu"),
        L.DepthwiseConv2D(3, dilation_rate=2, padding="same", use_bias=False,
                          activation="tanh"),
        L.DepthwiseConv2D((2, 3), padding="valid")]),
    "depthwise1d": ((11, 2), lambda: [
        L.DepthwiseConv1D(3, strides=2, padding="same", depth_multiplier=2, activation="relu"),
        L.DepthwiseConv1D(3, dilation_rate=2, padding="valid", use_bias=False)]),
    "separable2d": ((9, 9, 3), lambda: [
        L.SeparableConv2D(4, 3, strides=2, padding="same", depth_multiplier=2,
                          activation="relu"),
        L.SeparableConv2D(3, 3, dilation_rate=2, padding="valid", use_bias=False)]),
    "separable1d": ((11, 2), lambda: [
        L.SeparableConv1D(4, 3, strides=2, padding="same", activation="relu"),
        L.SeparableConv1D(3, 2, dilation_rate=2, padding="valid", depth_multiplier=3,
                          use_bias=False)]),
    "conv2d_transpose": ((4, 4, 3), lambda: [
        L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
        L.Conv2DTranspose(3, 3, strides=2, padding="valid", output_padding=1, use_bias=False),
        L.Conv2DTranspose(2, (2, 3), padding="valid")]),  # (CPU kernels refuse dilation)
    "conv1d_transpose": ((5, 2), lambda: [
        L.Conv1DTranspose(3, 3, strides=2, padding="same", activation="relu"),
        L.Conv1DTranspose(2, 4, strides=3, padding="valid", output_padding=2)]),
    "conv3d_transpose": ((3, 3, 2, 2), lambda: [
        L.Conv3DTranspose(3, 2, strides=2, padding="valid", activation="relu"),
        L.Conv3DTranspose(2, 3, strides=(1, 2, 1), padding="same", use_bias=False)]),
    # >= 8 input channels: kernels from one matmul per offset instead of a patch matrix.
    "conv_per_offset": ((7, 7, 8), lambda: [
        L.Conv2D(9, 3, strides=2, padding="same", activation="relu"),
        L.Conv2D(4, (2, 3), dilation_rate=(2, 1), padding="valid")]),
    "conv1d_per_offset": ((9, 8), lambda: [
        L.Conv1D(8, 3, strides=2, padding="causal", activation="relu"),
        L.Conv1D(3, 2, dilation_rate=2, padding="same")]),
    "conv3d": ((6, 5, 4, 2), lambda: [
        L.Conv3D(3, 3, strides=2, padding="same", activation="relu"),
        L.Conv3D(2, 2, dilation_rate=(1, 2, 1), padding="valid")]),
}
GROUPED = ((6, 6, 4), lambda: [
    # Materialised per-group kernels (many positions) and one Outer factor per group (T = 1).
    L.Conv2D(6, 3, groups=2, padding="same", activation="relu"),
    L.Conv2D(6, 3, groups=3, strides=2, use_bias=False, activation="relu"),
    L.Conv2D(4, 2, groups=2)])


@pytest.mark.parametrize("name", sorted(CASES))
def test_convolution_rules(name):
    shape, layers = CASES[name]
    model = _model(shape, *layers())
    _randomise_biases(model)
    check_ghost(model, _data(shape), rng=RNG, batch_size=2)


# Slow only because Keras compiles a grouped convolution with XLA on every eager call on CPU
# (the brute-force loop makes one call per example).
@pytest.mark.slow
def test_grouped_conv2d():
    shape, layers = GROUPED
    model = _model(shape, *layers())
    _randomise_biases(model)
    check_ghost(model, _data(shape, 4), rng=RNG, batch_size=2)


@pytest.mark.slow
def test_grouped_conv1d():
    model = _model((7, 6), L.Conv1D(6, 3, groups=3, padding="causal", activation="relu"),
                   L.Conv1D(4, 3, groups=2, strides=2), head="pool")
    _randomise_biases(model)
    check_ghost(model, _data((7, 6), 4), rng=RNG, batch_size=2)
