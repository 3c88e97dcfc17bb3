"""The models of the stiffness experiments, as Keras 3 functional models.

Every model returns LOGITS (no softmax): pair it with a loss built with ``from_logits=True``,
e.g. ``keras.losses.SparseCategoricalCrossentropy(from_logits=True)``.

Layer names are fixed (not Keras' global counters), so variable paths such as
``"dense_0/kernel"`` are the same in every process: layer-wise stiffness and checkpoints can
refer to them by name.

Example:
    >>> from tfstiffness import models
    >>> model = models.paper_cnn((28, 28, 1), 10)
    >>> model.output_shape
    (None, 10)
    >>> [layer.name for layer in model.layers if layer.weights]
    ['conv_1', 'conv_2', 'conv_3', 'logits']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import layers, ops

from tfstiffness.errors import StudyInputError

Activation = str | Callable

__all__ = [
    "KERAS_HUB_MISSING",
    "MaskedMeanPooling",
    "PaddingMask",
    "PositionIds",
    "bert_tiny",
    "fully_connected",
    "keras_hub_module",
    "mnist1d_cnn",
    "paper_cnn",
    "resnet20v1",
    "toy_mlp",
    "transformer_classifier",
]


def _dense_stack(
    h: keras.KerasTensor, widths: Sequence[int], activation: Activation
) -> keras.KerasTensor:
    for i, width in enumerate(widths):
        h = layers.Dense(int(width), activation=activation, name=f"dense_{i}")(h)
    return h


def fully_connected(
    input_shape: Sequence[int],
    num_classes: int,
    widths: Sequence[int] = (500, 300, 100),
    activation: Activation = "relu",
) -> keras.Model:
    """Fully-connected network of the stiffness paper: Flatten, Dense layers, Dense logits.

    Args:
        input_shape: Shape of one example, e.g. ``(28, 28, 1)``; it is flattened.
        num_classes: Number of output logits.
        widths: Hidden layer widths; the paper uses 500, 300, 100.
        activation: Hidden activation (any Keras activation name or callable).

    Returns:
        A functional model named ``"fully_connected"`` with layers ``flatten``,
        ``dense_0`` ... ``dense_{k-1}`` and ``logits``.

    Example:
        >>> model = fully_connected((28, 28, 1), 10)
        >>> model.count_params()
        573910
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    h = layers.Flatten(name="flatten")(inputs)
    h = _dense_stack(h, widths, activation)
    outputs = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name="fully_connected")


def toy_mlp(
    input_dim: int,
    num_classes: int,
    widths: Sequence[int] = (64, 64),
    activation: Activation = "relu",
) -> keras.Model:
    """Small MLP for two-dimensional studies (Walker's 2-64-64-2 network by default).

    Args:
        input_dim: Number of input features (2 for the toy grids).
        num_classes: Number of output logits.
        widths: Hidden layer widths, e.g. ``(64, 8, 4)`` for the layer-wise studies.
        activation: ``"relu"``, ``"tanh"``, ``"leaky_relu"`` (Keras' negative slope 0.2) or
            any other Keras activation name or callable.

    Returns:
        A functional model named ``"toy_mlp"`` with layers ``dense_0`` ... and ``logits``.

    Example:
        >>> model = toy_mlp(2, 2, activation="tanh")
        >>> model.count_params()  # (2*64+64) + (64*64+64) + (64*2+2)
        4482
    """
    keras.activations.get(activation)  # Fail here, naming the argument, not deep in Dense.
    inputs = keras.Input(shape=(int(input_dim),), name="features")
    h = _dense_stack(inputs, widths, activation)
    outputs = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name="toy_mlp")


def paper_cnn(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    """CNN of the stiffness paper: three 3x3 ReLU convolutions (16, 32, 32 channels, "same"
    padding), each followed by 2x2 max-pooling, then Flatten and a Dense logits layer.

    Args:
        input_shape: ``(height, width, channels)``; each side must be at least 8 so three
            poolings leave at least one pixel.
        num_classes: Number of output logits.

    Returns:
        A functional model named ``"paper_cnn"``; conv layers ``conv_1`` ... ``conv_3``,
        pools ``pool_1`` ... ``pool_3``, then ``flatten`` and ``logits``.

    Example:
        >>> paper_cnn((32, 32, 3), 10).count_params()
        19466
    """
    if len(input_shape) != 3 or min(input_shape[:2]) < 8:
        raise ValueError(
            f"input_shape: expected (height, width, channels) with sides >= 8, got {input_shape}"
        )
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    h = inputs
    for i, channels in enumerate((16, 32, 32), start=1):
        h = layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"conv_{i}")(h)
        h = layers.MaxPooling2D(2, name=f"pool_{i}")(h)
    h = layers.Flatten(name="flatten")(h)
    outputs = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name="paper_cnn")


def mnist1d_cnn(input_length: int = 40, num_classes: int = 10,
                channels: int = 25) -> keras.Model:
    """Greydanus' CNN for MNIST-1D (2020; about 94% test accuracy published).

    The signal [batch, input_length] gets a channel axis, then three ReLU Conv1D layers of
    ``channels`` filters with stride 2 and zero padding 1 on each side (kernel 5, then 3 and
    3, as the ``ConvBase`` of the MNIST-1D repository), then Flatten and Dense logits. For
    the standard length 40 the lengths go 40 -> 19 -> 10 -> 5, so the logits read 5 x 25 =
    125 features; 5,210 parameters for 10 classes.

    Args:
        input_length: Length of each signal (40 for MNIST-1D); at least 7, so three
            stride-2 convolutions leave one position.
        num_classes: Number of output logits.
        channels: Filters of each convolution.

    Returns:
        A functional model named ``"mnist1d_cnn"`` taking float [batch, input_length]
        (``data.load("mnist1d")`` gives [N, 40]); layers ``add_channel``, ``pad_1``,
        ``conv_1`` ... ``pad_3``, ``conv_3``, ``flatten``, ``logits``.

    Example:
        >>> model = mnist1d_cnn()
        >>> model.count_params(), model.get_layer("flatten").output.shape
        (5210, (None, 125))
    """
    if input_length < 7:
        raise ValueError(f"input_length must be at least 7, got {input_length}")
    inputs = keras.Input(shape=(int(input_length),), name="signal")
    h = layers.Reshape((int(input_length), 1), name="add_channel")(inputs)
    for i, kernel in enumerate((5, 3, 3), start=1):
        h = layers.ZeroPadding1D(1, name=f"pad_{i}")(h)
        h = layers.Conv1D(channels, kernel, strides=2, activation="relu", name=f"conv_{i}")(h)
    h = layers.Flatten(name="flatten")(h)
    outputs = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name="mnist1d_cnn")


def resnet20v1(
    input_shape: Sequence[int], num_classes: int, batch_norm: bool = False
) -> keras.Model:
    """ResNet20 v1 for CIFAR (He et al. 2016, section 4.2), optionally without batch norm.

    A 3x3 convolution with 16 filters, then three stages of three basic blocks with 16, 32
    and 64 filters. A basic block is conv3x3 - [BN] - ReLU - conv3x3 - [BN], added to the
    shortcut, then ReLU. The first block of stages 2 and 3 has stride 2 and a 1x1 stride-2
    convolution as projection shortcut (as in the Keras CIFAR ResNet example, without BN on
    the projection); other shortcuts are identities. Global average pooling and a Dense
    logits layer end the network. Kernels use He-normal initialisation.

    Without batch norm (the stiffness paper's variant) every convolution has a bias; with
    ``batch_norm=True`` the convolutions followed by BN have none (BN's beta replaces it).

    Args:
        input_shape: ``(height, width, channels)``, e.g. ``(32, 32, 3)``; sides >= 4.
        num_classes: Number of output logits.
        batch_norm: Insert ``BatchNormalization`` after every 3x3 convolution.

    Returns:
        A functional model named ``"resnet20v1"``. Layers of block ``b`` of stage ``s`` are
        named ``stage{s}_block{b}_conv1``, ``..._conv2``, ``..._shortcut`` (projections),
        ``..._bn1``/``..._bn2`` (with BN); the stem is ``stem_conv`` (``stem_bn``).

    Example:
        >>> resnet20v1((32, 32, 3), 10).count_params()
        271690
    """
    if len(input_shape) != 3 or min(input_shape[:2]) < 4:
        raise ValueError(
            f"input_shape: expected (height, width, channels) with sides >= 4, got {input_shape}"
        )

    def conv(h: keras.KerasTensor, filters: int, kernel: int, stride: int, name: str):
        return layers.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding="same",
            use_bias=not batch_norm or kernel == 1,
            kernel_initializer="he_normal",
            name=name,
        )(h)

    def norm_relu(h: keras.KerasTensor, prefix: str, relu: bool = True) -> keras.KerasTensor:
        if batch_norm:
            h = layers.BatchNormalization(name=f"{prefix}_bn")(h)
        return layers.ReLU(name=f"{prefix}_relu")(h) if relu else h

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    h = conv(inputs, 16, 3, 1, "stem_conv")
    h = norm_relu(h, "stem")
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in range(1, 4):
            prefix = f"stage{stage}_block{block}"
            stride = 2 if stage > 1 and block == 1 else 1
            r = conv(h, filters, 3, stride, f"{prefix}_conv1")
            r = norm_relu(r, f"{prefix}_1")
            r = conv(r, filters, 3, 1, f"{prefix}_conv2")
            r = norm_relu(r, f"{prefix}_2", relu=False)
            shortcut = h if stride == 1 else conv(h, filters, 1, stride, f"{prefix}_shortcut")
            h = layers.Add(name=f"{prefix}_add")([shortcut, r])
            h = layers.ReLU(name=f"{prefix}_relu")(h)
    h = layers.GlobalAveragePooling2D(name="pool")(h)
    outputs = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name="resnet20v1")


@keras.saving.register_keras_serializable(package="tfstiffness")
class PositionIds(layers.Layer):
    """Maps token ids [batch, length] to their positions 0 .. length-1 (no weights)."""

    def call(self, tokens):
        length = ops.shape(tokens)[1]
        return ops.broadcast_to(ops.arange(length, dtype="int32")[None, :], ops.shape(tokens))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="tfstiffness")
class PaddingMask(layers.Layer):
    """Attention mask [batch, length, length]: query i may attend to key j iff token j != 0.

    Padding queries still get an output (ignored later by the masked pooling); a sequence
    that is all padding attends uniformly rather than producing NaNs.
    """

    def call(self, tokens):
        keys = ops.not_equal(tokens, 0)[:, None, :]
        return ops.broadcast_to(keys, (ops.shape(tokens)[0], ops.shape(tokens)[1],
                                       ops.shape(tokens)[1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[1])


@keras.saving.register_keras_serializable(package="tfstiffness")
class MaskedMeanPooling(layers.Layer):
    """Mean of ``features`` [batch, length, dim] over the positions whose token is not 0.

    A sequence of padding only pools to zeros. No weights.
    """

    def call(self, features, tokens):
        mask = ops.cast(ops.not_equal(tokens, 0), features.dtype)[:, :, None]
        count = ops.maximum(ops.sum(mask, axis=1), 1.0)
        return ops.sum(features * mask, axis=1) / count

    def compute_output_shape(self, features_shape, tokens_shape=None):
        return (features_shape[0], features_shape[2])


def transformer_classifier(
    vocab_size: int,
    sequence_length: int,
    num_classes: int,
    embed_dim: int = 64,
    num_heads: int = 4,
    ff_dim: int = 128,
    num_blocks: int = 2,
) -> keras.Model:
    """Small post-LN transformer encoder classifier over integer token ids (0 = padding).

    Token embedding plus a learned position embedding; ``num_blocks`` encoder blocks of
    self-attention (padding keys masked) with residual and LayerNormalization, then a
    ReLU feed-forward layer of ``ff_dim`` and a projection back to ``embed_dim``, again with
    residual and LayerNormalization; masked mean pooling over non-padding tokens; Dense
    logits. No dropout: stiffness is measured in inference mode anyway.

    Args:
        vocab_size: Number of token ids, padding (0) included.
        sequence_length: Length of every input sequence (inputs are padded/truncated to it).
        num_classes: Number of output logits.
        embed_dim: Model width; must be divisible by ``num_heads``.
        num_heads: Attention heads; each has key dimension ``embed_dim // num_heads``.
        ff_dim: Hidden width of the feed-forward layers.
        num_blocks: Number of encoder blocks.

    Returns:
        A functional model named ``"transformer_classifier"`` taking int tokens
        [batch, sequence_length]. Its layer ``"pooled"`` outputs the pooled representation
        [batch, embed_dim]: ``keras.Model(model.input, model.get_layer("pooled").output)``.

    Example:
        >>> import numpy as np
        >>> model = transformer_classifier(30, 8, 2, embed_dim=16, num_heads=2, ff_dim=32)
        >>> model(np.array([[5, 3, 9, 0, 0, 0, 0, 0]])).shape
        TensorShape([1, 2])
    """
    if embed_dim % num_heads:
        raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
    tokens = keras.Input(shape=(sequence_length,), dtype="int32", name="tokens")
    h = layers.Embedding(vocab_size, embed_dim, name="token_embedding")(tokens)
    positions = PositionIds(name="position_ids")(tokens)
    p = layers.Embedding(sequence_length, embed_dim, name="position_embedding")(positions)
    h = layers.Add(name="embed_add")([h, p])
    mask = PaddingMask(name="attention_mask")(tokens)
    for b in range(num_blocks):
        attn = layers.MultiHeadAttention(
            num_heads, embed_dim // num_heads, name=f"block{b}_attention"
        )(h, h, attention_mask=mask)
        h = layers.LayerNormalization(name=f"block{b}_ln1")(
            layers.Add(name=f"block{b}_add1")([h, attn])
        )
        ff = layers.Dense(ff_dim, activation="relu", name=f"block{b}_ff1")(h)
        ff = layers.Dense(embed_dim, name=f"block{b}_ff2")(ff)
        h = layers.LayerNormalization(name=f"block{b}_ln2")(
            layers.Add(name=f"block{b}_add2")([h, ff])
        )
    pooled = MaskedMeanPooling(name="pooled")(h, tokens)
    outputs = layers.Dense(num_classes, name="logits")(pooled)
    return keras.Model(tokens, outputs, name="transformer_classifier")


#: What to do when keras_hub is missing.
KERAS_HUB_MISSING = ("--model bert_tiny needs keras_hub, which tfstiffness does not install: "
                     "pip install keras-hub (it installs beside TensorFlow 2.21 without "
                     "changing it), or pip install -e '.[test]' in a clone")


def keras_hub_module():
    """keras_hub, imported; StudyInputError saying how to install it when it is missing."""
    try:
        import keras_hub
    except ImportError:
        raise StudyInputError(KERAS_HUB_MISSING) from None
    return keras_hub


def bert_tiny(vocab_size: int, sequence_length: int, num_classes: int, *, num_layers: int,
              num_heads: int, hidden_dim: int, intermediate_dim: int, **options: Any):
    """keras_hub's BERT classifier in a small configuration, randomly initialised.

    ``BertTextClassifier(backbone=BertBackbone(...), preprocessor=None)``: it takes the dict
    inputs ``token_ids``, ``padding_mask`` and ``segment_ids`` [batch, sequence_length]
    (`studies.model_factory.model_inputs`) and returns logits. Nothing is downloaded. The
    size is the caller's: the text study's is `studies.text_transformer.BERT_TINY_DEFAULTS`
    (2 layers, 2 heads, hidden 64, intermediate 128).

    Args:
        vocab_size: Vocabulary size of the data's tokenizer (id 0 is padding).
        sequence_length: The data's padded sequence length.
        num_classes: Number of output logits.
        num_layers, num_heads, hidden_dim, intermediate_dim: The ``BertBackbone``'s size.
        **options: Other ``BertBackbone`` options (``dropout``, ...).

    Raises:
        errors.StudyInputError: keras_hub is not installed (saying how to install it).

    Example:
        >>> model = bert_tiny(100, 16, 2, num_layers=2, num_heads=2, hidden_dim=64,
        ...                   intermediate_dim=128)  # doctest: +SKIP
        >>> sorted(model.input)  # doctest: +SKIP
        ['padding_mask', 'segment_ids', 'token_ids']
    """
    keras_hub = keras_hub_module()
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=int(vocab_size), max_sequence_length=int(sequence_length),
        num_layers=num_layers, num_heads=num_heads, hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim, **options)
    return keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=int(num_classes),
                                               preprocessor=None)
