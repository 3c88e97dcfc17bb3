"""The structured ("ghost") path: Gram factors from one batched forward and one backward pass.

For a linear layer `z = a W + c` and the loss gradient `b = dL/dz` of the *summed* loss
(exact per example because inference-mode examples do not interact), example i's gradient
is `dW_i = sum_t a_it (x) b_it`, `dc_i = sum_t b_it`; `_factors` turns these into Gram blocks
without forming dW_i when that is cheaper. To see `a` and `z`, each ruled layer's `call` is
wrapped, on the instance and only while the model is traced, by a recorder that runs the
layer's own code with its activation split off. A rule is a small function from a layer's
recorded calls to its factors; `RULES` maps layer classes to rules. Variables of any other
layer go through the generic per-example path in the same call.
"""

from __future__ import annotations

import contextlib
import itertools
import string
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from tfstiffness import _factors
from tfstiffness._generic import PerExampleGradients, layer_key
from tfstiffness._losses import PerExampleLoss


@dataclass
class _Call:
    """One recorded call of a ruled layer: its inputs and the tensor whose gradient we need."""

    args: tuple
    kwargs: dict
    z: tf.Tensor  # pre-activation output (linear layers) or output (others)
    b: tf.Tensor | None = None  # dL/dz, filled after the backward pass


def _seq(t: tf.Tensor) -> tf.Tensor:
    """[n, ..., k] -> [n, T, k]: every axis between batch and features is a position."""
    return tf.reshape(t, [tf.shape(t)[0], -1, t.shape[-1]])


def _concat_calls(parts: Sequence[tf.Tensor]) -> tf.Tensor:
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)


# ----------------------------------------------------------------------------- rules


def _dense_rule(layer, calls: list[_Call]) -> list[_factors.Factor]:
    a = _concat_calls([_seq(c.args[0]) for c in calls])
    b = _concat_calls([_seq(c.b) for c in calls])
    return [_factors.linear_factor(a, b, bias=layer.bias is not None)]


@dataclass(frozen=True)
class _EinsumLayout:
    inp: str
    out: str
    rows: str  # input axes kept in the output (batch first): positions
    contracted: str  # input axes summed against the kernel: the "d" of a
    kernel_free: str  # kernel axes kept in the output: the "p" of b


def _einsum_layout(equation: str, input_rank: int) -> _EinsumLayout | None:
    """Reads `inp,ker->out` as a Dense map over positions, or None if it is not one."""
    lhs, out = equation.split("->")
    inp, ker = lhs.split(",")
    if "..." in inp:
        spare = [c for c in string.ascii_letters if c not in equation]
        ellipsis = "".join(spare[: input_rank - (len(inp) - 3)])
        inp, out = inp.replace("...", ellipsis), out.replace("...", ellipsis)
    if "." in ker or "." in out or len(inp) != input_rank:
        return None
    batch = inp[0]
    rows = "".join(c for c in inp if c not in ker and c in out)
    contracted = "".join(c for c in inp if c in ker and c not in out)
    kernel_free = "".join(c for c in ker if c not in inp and c in out)
    covers = sorted(rows + contracted) == sorted(inp) and sorted(contracted + kernel_free) == \
        sorted(ker) and sorted(rows + kernel_free) == sorted(out)
    if not covers or batch in ker or not rows.startswith(batch):
        return None
    return _EinsumLayout(inp, out, rows, contracted, kernel_free)


def _transpose_to(t: tf.Tensor, source: str, target: str) -> tf.Tensor:
    return tf.transpose(t, [source.index(c) for c in target])


def _einsum_dense_rule(layer, calls: list[_Call]) -> list[_factors.Factor]:
    layout = _einsum_layout(layer.equation, len(calls[0].args[0].shape))
    d = len(layout.contracted)
    p = len(layout.kernel_free)

    def as_matrix(t, source, target, k):
        t = _transpose_to(t, source, target)
        return tf.reshape(t, [tf.shape(t)[0], -1, int(tf.reduce_prod(t.shape[-k:]))])

    a = _concat_calls([as_matrix(c.args[0], layout.inp, layout.rows + layout.contracted, d)
                       for c in calls])
    b = _concat_calls([as_matrix(c.b, layout.out, layout.rows + layout.kernel_free, p)
                       for c in calls])
    factors: list[_factors.Factor] = [_factors.linear_factor(a, b)]
    if layer.bias is not None:
        # The bias spans `bias_axes` and broadcasts over the rest: sum b over the rest.
        summed = [i for i, c in enumerate(layout.out) if i > 0 and c not in layer.bias_axes]
        per_call = [tf.reshape(tf.reduce_sum(c.b, axis=summed), [tf.shape(c.b)[0], -1])
                    for c in calls]
        factors.append(_factors.Materialized(tf.add_n(per_call)))
    return factors


def _conv_patches(layer, inputs: tf.Tensor) -> tf.Tensor:
    """Input patches seen by each output position, [n, T, k*k*C] (channels last).

    Built from one strided slice per kernel offset: plain copies, several times faster on CPU
    than `tf.image.extract_patches`. Any consistent order of patch features will do, since a
    Gram matrix does not depend on how the parameters are ordered.
    """
    if layer.data_format == "channels_first":
        inputs = tf.transpose(inputs, [0] + list(range(2, inputs.shape.rank)) + [1])
    pads = [[0, 0]]
    out_sizes = []
    for axis, (k, s, r) in enumerate(zip(layer.kernel_size, layer.strides, layer.dilation_rate)):
        size = inputs.shape[axis + 1]
        span = (k - 1) * r + 1
        if layer.padding == "causal":
            before, after = span - 1, 0
        elif layer.padding == "same":  # as TensorFlow's SAME: the extra one goes after
            total = max((-(-size // s) - 1) * s + span - size, 0)
            before, after = total // 2, total - total // 2
        else:
            before = after = 0
        pads.append([before, after])
        out_sizes.append((size + before + after - span) // s + 1)
    padded = tf.pad(inputs, pads + [[0, 0]])
    pieces = []
    for offsets in itertools.product(*(range(k) for k in layer.kernel_size)):
        begin = [0] + [o * r for o, r in zip(offsets, layer.dilation_rate)] + [0]
        end = [0] + [b + (n - 1) * s + 1 for b, n, s in zip(begin[1:], out_sizes,
                                                             layer.strides)] + [0]
        pieces.append(tf.strided_slice(padded, begin, end, [1, *layer.strides, 1],
                                       begin_mask=1 | (1 << (layer.rank + 1)),
                                       end_mask=1 | (1 << (layer.rank + 1))))
    return _seq(tf.concat(pieces, axis=-1))


def _conv_rule(layer, calls: list[_Call]) -> list[_factors.Factor]:
    def outputs(z):
        if layer.data_format == "channels_first":
            z = tf.transpose(z, [0] + list(range(2, z.shape.rank)) + [1])
        return _seq(z)

    a = _concat_calls([_conv_patches(layer, c.args[0]) for c in calls])
    b = _concat_calls([outputs(c.b) for c in calls])
    return [_factors.linear_factor(a, b, bias=layer.use_bias)]


def _embedding_rule(layer, calls: list[_Call]) -> list[_factors.Factor]:
    tokens = _concat_calls([tf.reshape(c.args[0], [tf.shape(c.args[0])[0], -1]) for c in calls])
    b = _concat_calls([_seq(c.b) for c in calls])
    return [_factors.embedding_factor(tokens, b, layer.input_dim)]


def _local_vjp_rule(layer, calls: list[_Call], call_fn) -> list[_factors.Factor]:
    """Few-parameter layers: per-example gradients by a VJP through this layer alone.

    With the layer's input a and output gradient b recorded, example i's gradient is the
    VJP of `layer(a_i)` with `b_i`: exact, and vectorised over examples, so it costs about
    one more pass through the layer. (A Jacobian over the batch would cost O(block^2).)
    """
    variables = layer.trainable_variables
    total = None
    for c in calls:
        batched = {k: v for k, v in c.kwargs.items() if tf.is_tensor(v)}
        fixed = {k: v for k, v in c.kwargs.items() if not tf.is_tensor(v)}

        def one_example(args, fixed=fixed):
            a, b, kw = args
            with tf.GradientTape() as tape:
                out = call_fn(a[None], **fixed, **{k: v[None] for k, v in kw.items()})
            grads = tape.gradient(out, variables, output_gradients=b[None],
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return tf.concat([tf.reshape(g, [-1]) for g in grads], 0)

        flat = tf.vectorized_map(one_example, (c.args[0], c.b, batched))
        total = flat if total is None else total + flat
    return [_factors.Materialized(total)]


@dataclass(frozen=True)
class _Rule:
    build: Callable[..., list[_factors.Factor]]
    linear: bool  # record the pre-activation (activation split off) rather than the output
    applies: Callable[[Any], bool] = lambda layer: True


def _plain(layer) -> bool:
    return not getattr(layer, "lora_enabled", False) and not getattr(layer, "quantization_mode",
                                                                      None)


def _ungrouped(layer) -> bool:
    return layer.groups == 1


RULES: dict[type, _Rule] = {
    keras.layers.Dense: _Rule(_dense_rule, linear=True, applies=_plain),
    keras.layers.EinsumDense: _Rule(_einsum_dense_rule, linear=True, applies=_plain),
    keras.layers.Conv1D: _Rule(_conv_rule, linear=True, applies=_ungrouped),
    keras.layers.Conv2D: _Rule(_conv_rule, linear=True, applies=_ungrouped),
    keras.layers.Embedding: _Rule(_embedding_rule, linear=False, applies=_plain),
    keras.layers.LayerNormalization: _Rule(None, linear=False),
    keras.layers.BatchNormalization: _Rule(None, linear=False),
}


def _rule_for(layer) -> _Rule | None:
    # Exact type: a subclass may override `call`, and then the rule's algebra need not hold.
    rule = RULES.get(type(layer))
    return rule if rule is not None and rule.applies(layer) else None


# ----------------------------------------------------------------------------- recording


@contextlib.contextmanager
def _recording(layers: Sequence, records: dict[int, list[_Call]]):
    """Wraps each layer's `call` on the instance to record its calls; restores on exit."""

    def make_recorder(layer, original, linear):
        def recorder(*args, **kwargs):
            if linear:
                activation, layer.activation = layer.activation, None
                try:
                    z = original(*args, **kwargs)
                finally:
                    layer.activation = activation
            else:
                z = original(*args, **kwargs)
            records.setdefault(id(layer), []).append(_Call(args, kwargs, z))
            return activation(z) if linear and activation is not None else z

        return recorder

    try:
        for layer in layers:
            layer.call = make_recorder(layer, type(layer).call.__get__(layer),
                                       _rule_for(layer).linear)
        yield
    finally:
        for layer in layers:
            layer.__dict__.pop("call", None)


class GhostFactors:
    """Callable `(x_block, y_block) -> {layer key: [factors]}` for all trainable variables.

    On its first block it checks every ruled layer against the batch gradient: summed over
    all pairs, a layer's Gram must equal the squared norm of the summed gradient,
    `sum_ij G_ij = |sum_i g_i|^2`. A layer whose variables are also used outside its own calls
    (weight tying) fails that check; it is then moved to the generic path, with a warning.
    """

    def __init__(self, model: keras.Model, loss_fn: PerExampleLoss, generic_method: str):
        self.model, self.loss_fn, self.generic_method = model, loss_fn, generic_method
        self._checked = False
        self._configure(excluded=set())

    def _configure(self, excluded: set[int]) -> None:
        model = self.model
        trainable = {id(v) for v in model.trainable_variables}
        self.layers = [
            layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if _rule_for(layer) is not None and id(layer) not in excluded
            and any(id(v) in trainable for v in layer.trainable_variables)
        ]
        covered = {id(v) for layer in self.layers for v in layer.trainable_variables}
        rest = [v for v in model.trainable_variables if id(v) not in covered]
        self.fallback_layers = tuple(dict.fromkeys(layer_key(v) for v in rest))
        self._generic = (PerExampleGradients(model, self.loss_fn, rest, self.generic_method)
                         if rest else None)
        self._order = list(dict.fromkeys(layer_key(v) for v in model.trainable_variables))
        self._layout: list[tuple[str, type, int]] = []  # (key, factor type, tensor count)
        self._fn = tf.function(self._traced)

    def _traced(self, x, y):
        records: dict[int, list[_Call]] = {}
        with tf.GradientTape() as tape:
            with _recording(self.layers, records):
                predictions = self.model(x, training=False)
            loss = tf.reduce_sum(self.loss_fn(y, predictions))
        calls = [c for layer in self.layers for c in records.get(id(layer), [])]
        for c, b in zip(calls, tape.gradient(loss, [c.z for c in calls])):
            c.b = tf.zeros_like(c.z) if b is None else tf.convert_to_tensor(b)
        self._layout, tensors = [], []
        for layer in self.layers:
            if id(layer) not in records:
                continue
            rule = _rule_for(layer)
            if rule.build is None:
                factors = _local_vjp_rule(layer, records[id(layer)],
                                          type(layer).call.__get__(layer))
            else:
                factors = rule.build(layer, records[id(layer)])
            for f in factors:
                parts = list(vars(f).values())
                self._layout.append((layer_key(layer.trainable_variables[0]), type(f),
                                     len(parts)))
                tensors.extend(parts)
        return tensors

    def _factors(self, x, y) -> dict[str, list[_factors.Factor]]:
        tensors = iter(self._fn(x, y))
        found: dict[str, list[_factors.Factor]] = {}
        for key, kind, count in self._layout:
            found.setdefault(key, []).append(kind(*(next(tensors) for _ in range(count))))
        if self._generic is not None:
            for key, f in self._generic(x, y).items():
                found.setdefault(key, []).append(f)
        return {key: found[key] for key in self._order if key in found}

    def _inconsistent_layers(self, x, y, factors) -> list:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(self.loss_fn(y, self.model(x, training=False)))
        variables = [v for layer in self.layers for v in layer.trainable_variables]
        grads = dict(zip(map(id, variables), tape.gradient(loss, variables)))
        bad = []
        for layer in self.layers:
            key = layer_key(layer.trainable_variables[0])
            summed = sum(float(tf.reduce_sum(tf.square(tf.convert_to_tensor(grads[id(v)]))))
                         for v in layer.trainable_variables if grads[id(v)] is not None)
            fs = factors.get(key, [])
            pairs = sum(float(tf.reduce_sum(_factors.gram(f, f))) for f in fs)
            # Round-off scale: sum_ij |G_ij| <= (sum_i |g_i|)^2.
            scale = sum(float(tf.reduce_sum(tf.sqrt(_factors.sq_norms(f)))) for f in fs) ** 2
            if abs(summed - pairs) > 1e-3 * max(scale, summed) + 1e-30:
                bad.append(layer)
        return bad

    def __call__(self, x, y) -> dict[str, list[_factors.Factor]]:
        factors = self._factors(x, y)
        if not self._checked:
            self._checked = True
            bad = self._inconsistent_layers(x, y, factors)
            if bad:
                warnings.warn(
                    f"ghost: the variables of layer(s) {[layer.name for layer in bad]} are "
                    "also used outside their own calls (e.g. tied weights); they go through "
                    "the generic per-example path instead.", UserWarning, stacklevel=2)
                self._configure(excluded={id(layer) for layer in bad})
                factors = self._factors(x, y)
        return factors
