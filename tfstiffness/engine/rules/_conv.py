"""Rules for convolutions: plain and grouped (1D/2D/3D), depthwise, separable and transposed.

All are linear in their kernels, so example i's kernel gradient is a sum over output
positions of (input patch) (x) (output gradient), with patches cut by one strided slice per
kernel offset (`conv_pieces`). Patches are channels-last whatever the layer's data format;
the order of parameters inside a factor does not matter to a Gram matrix.
"""

from __future__ import annotations

import itertools

import keras
import tensorflow as tf

from tfstiffness.engine import _factors
from tfstiffness.engine.rules._registry import LayerCall, batch_rows, concat_positions, register


def channels_last(layer, t: tf.Tensor) -> tf.Tensor:
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return tf.transpose(t, [0] + list(range(2, t.shape.rank)) + [1])
    return t


def conv_pieces(layer, inputs: tf.Tensor) -> list[tf.Tensor]:
    """For each kernel offset, the input values seen at every output position:
    K tensors [n, out..., C] (channels last), in the kernel's offset order.

    One slice per offset (several times faster on CPU than `tf.image.extract_patches`).
    Strided axes are first viewed as (block, phase) pairs, a free reshape, so that every
    slice is a plain window: strided slices cost twice as much here. Padding follows
    TensorFlow: SAME puts the odd one after.
    """
    inputs = channels_last(layer, inputs)
    pads = [[0, 0]]
    blocks, out_sizes = [], []
    for axis, (k, s, r) in enumerate(zip(layer.kernel_size, layer.strides, layer.dilation_rate)):
        size = inputs.shape[axis + 1]
        span = (k - 1) * r + 1
        if layer.padding == "causal":
            before, after = span - 1, 0
        elif layer.padding == "same":
            total = max((-(-size // s) - 1) * s + span - size, 0)
            before, after = total // 2, total - total // 2
        else:
            before = after = 0
        out = (size + before + after - span) // s + 1
        # Room for the last offset's window, rounded up to whole blocks of s.
        block_count = -(-max(size + before + after, (out - 1) * s + span + s - 1) // s)
        pads.append([before, block_count * s - size - before])
        blocks.append(block_count)
        out_sizes.append(out)
    padded = tf.pad(inputs, pads + [[0, 0]]) if any(p != [0, 0] for p in pads) else inputs
    phased = tf.reshape(padded, [-1, *(d for b, s in zip(blocks, layer.strides)
                                       for d in (b, s)), padded.shape[-1]])
    pieces = []
    for offsets in itertools.product(*(range(k) for k in layer.kernel_size)):
        index = [slice(None)]
        for o, r, s, out in zip(offsets, layer.dilation_rate, layer.strides, out_sizes):
            start = o * r
            index += [slice(start // s, start // s + out), start % s]
        pieces.append(phased[tuple(index)])
    return pieces


def conv_patches(layer, inputs: tf.Tensor) -> tf.Tensor:
    """Input patches seen by each output position, [n, T, K*C]: feature k*C + c."""
    return batch_rows(tf.concat(conv_pieces(layer, inputs), axis=-1))


def offset_products(pieces: list[tf.Tensor], b: tf.Tensor) -> tf.Tensor:
    """Per-example kernel gradients [n, K*C*F], `sum_t piece_k[t] (x) b[t]` for each offset k,
    with pieces K x [n, out..., C] and b [n, T, F]: one batched matmul per offset, which
    here was about twice as fast as one over concatenated patches (no [n, T, K*C] copy)."""
    per_offset = [tf.linalg.matmul(batch_rows(p), b, adjoint_a=True) for p in pieces]
    return tf.reshape(tf.stack(per_offset, 1), [-1, len(pieces) * per_offset[0].shape[1]
                                                * b.shape[-1]])


# Below this many input channels, one matmul over concatenated patches beats one per offset.
_MIN_CHANNELS_PER_OFFSET = 8


def conv_rule(layer, calls: list[LayerCall]) -> list[_factors.Factor]:
    b = concat_positions([batch_rows(channels_last(layer, c.grad)) for c in calls])
    channels = conv_channels(layer, calls[0].args[0])
    offsets = len(list(itertools.product(*(range(k) for k in layer.kernel_size))))
    d = offsets * channels // layer.groups + int(layer.use_bias)
    per_offset = channels >= _MIN_CHANNELS_PER_OFFSET and not _factors.pairwise_is_cheaper(
        b.shape[1], d, b.shape[-1] // layer.groups)
    if layer.groups == 1 and per_offset:
        g = tf.add_n([offset_products(conv_pieces(layer, c.args[0]),
                                      batch_rows(channels_last(layer, c.grad))) for c in calls])
        if layer.use_bias:
            g = tf.concat([g, tf.reduce_sum(b, 1)], 1)
        return [_factors.Materialized(g)]
    a = concat_positions([conv_patches(layer, c.args[0]) for c in calls])
    if layer.groups == 1:
        return [_factors.linear_factor(a, b, bias=layer.use_bias)]
    # Groups: independent linear maps, each from C/G input channels to F/G filters.
    groups, t, filters = layer.groups, a.shape[1], b.shape[-1]
    offsets = a.shape[-1] // conv_channels(layer, calls[0].args[0])
    a = tf.reshape(a, [-1, t, offsets, groups, a.shape[-1] // (offsets * groups)])
    b = tf.reshape(b, [-1, t, groups, filters // groups])
    d, p = offsets * a.shape[-1], b.shape[-1]
    if _factors.pairwise_is_cheaper(t, d + int(layer.use_bias), p):
        return [_factors.linear_factor(tf.reshape(a[:, :, :, g], [-1, t, d]), b[:, :, g],
                                       bias=layer.use_bias) for g in range(groups)]
    g = tf.reshape(tf.einsum("ntkgc,ntgf->ngkcf", a, b), [-1, groups * d * p])
    if layer.use_bias:
        g = tf.concat([g, tf.reshape(tf.reduce_sum(b, 1), [-1, filters])], 1)
    return [_factors.Materialized(g)]


def conv_channels(layer, inputs: tf.Tensor) -> int:
    return inputs.shape[1 if layer.data_format == "channels_first" else -1]


def depthwise_gradients(layer, inputs: tf.Tensor, grad: tf.Tensor,
                        depth_multiplier: int) -> tf.Tensor:
    """Per-example depthwise kernel gradients [n, K*C*M] from the layer's input and the
    gradient at the depthwise output (channel c*M + m), with the layer's geometry.

    A depthwise kernel has few parameters (K C M), so they are formed outright: for each
    offset, the product of the shifted input and the output gradient, summed over positions.
    """
    grad = channels_last(layer, grad)
    positions = list(range(1, grad.shape.rank - 1))
    channels = grad.shape[-1] // depth_multiplier
    grad = tf.reshape(grad, [-1, *grad.shape[1:-1], channels, depth_multiplier])
    per_offset = [tf.reduce_sum(piece[..., None] * grad, axis=positions)
                  for piece in conv_pieces(layer, inputs)]
    return tf.reshape(tf.stack(per_offset, 1), [-1, len(per_offset) * channels * depth_multiplier])


def _bias_gradients(layer, grad: tf.Tensor) -> tf.Tensor:
    grad = channels_last(layer, grad)
    return tf.reduce_sum(grad, axis=list(range(1, grad.shape.rank - 1)))


def depthwise_rule(layer, calls: list[LayerCall]) -> list[_factors.Factor]:
    g = tf.add_n([depthwise_gradients(layer, c.args[0], c.grad, layer.depth_multiplier)
                  for c in calls])
    if layer.use_bias:
        g = tf.concat([g, tf.add_n([_bias_gradients(layer, c.grad) for c in calls])], 1)
    return [_factors.Materialized(g)]


def separable_rule(layer, calls: list[LayerCall]) -> list[_factors.Factor]:
    """Depthwise then pointwise (1x1) convolution, `z = P(D(x)) + c`.

    The pointwise kernel sees the depthwise output u (recomputed here, one depthwise
    convolution), the depthwise kernel sees x with the gradient at u, `b P^T`.
    """
    pointwise = tf.reshape(layer.pointwise_kernel, [-1, layer.filters])
    depthwise, u_all, b_all = [], [], []
    for c in calls:
        u = keras.ops.depthwise_conv(c.args[0], layer.depthwise_kernel, strides=layer.strides,
                                     padding=layer.padding, data_format=layer.data_format,
                                     dilation_rate=layer.dilation_rate)
        b = channels_last(layer, c.grad)
        u_all.append(batch_rows(channels_last(layer, u)))
        b_all.append(batch_rows(b))
        # A matmul over rows, not tf.einsum("...f,cf->...c", b, pointwise): with oneDNN on,
        # TensorFlow 2.16 computes that einsum wrongly, with no error, once "..." spans
        # more than two axes (2D and 3D feature maps).
        grad_u = tf.reshape(tf.linalg.matmul(tf.reshape(b, [-1, layer.filters]), pointwise,
                                             transpose_b=True),
                            tf.concat([tf.shape(b)[:-1], [pointwise.shape[0]]], 0))
        depthwise.append(depthwise_gradients(layer, c.args[0],
                                             _back_to_format(layer, grad_u),
                                             layer.depth_multiplier))
    return [_factors.Materialized(tf.add_n(depthwise)),
            _factors.linear_factor(concat_positions(u_all), concat_positions(b_all),
                                   bias=layer.use_bias)]


def _back_to_format(layer, t: tf.Tensor) -> tf.Tensor:
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return tf.transpose(t, [0, t.shape.rank - 1] + list(range(1, t.shape.rank - 1)))
    return t


def conv_transpose_rule(layer, calls: list[LayerCall]) -> list[_factors.Factor]:
    """`z = conv^T(x, K)` is the adjoint of the convolution `conv(., K)` that maps z's shape
    to x's, so `dK_i = sum_p patch(b_i)_p (x) x_ip`: patches of the output gradient, cut with
    the layer's own geometry, at each input position p. Kernel layout [k..., F, C] matches.
    """
    x = concat_positions([batch_rows(channels_last(layer, c.args[0])) for c in calls])
    offsets = len(list(itertools.product(*(range(k) for k in layer.kernel_size))))
    if _factors.pairwise_is_cheaper(x.shape[1], offsets * layer.filters, x.shape[-1]):
        a = concat_positions([conv_patches(layer, c.grad) for c in calls])
        factors: list[_factors.Factor] = [_factors.linear_factor(a, x)]
    else:
        factors = [_factors.Materialized(tf.add_n([
            offset_products(conv_pieces(layer, c.grad),
                            batch_rows(channels_last(layer, c.args[0]))) for c in calls]))]
    if layer.use_bias:
        factors.append(_factors.Materialized(
            tf.add_n([_bias_gradients(layer, c.grad) for c in calls])))
    return factors


def _plain(layer) -> bool:
    return not getattr(layer, "lora_enabled", False) and not getattr(layer, "quantization_mode",
                                                                      None)


for _cls in (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D):
    register(_cls, conv_rule, pre_activation=True, applies=_plain)
for _cls in (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D):
    register(_cls, depthwise_rule, pre_activation=True)
for _cls in (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D):
    register(_cls, separable_rule, pre_activation=True)
for _cls in (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
             keras.layers.Conv3DTranspose):
    register(_cls, conv_transpose_rule, pre_activation=True)
