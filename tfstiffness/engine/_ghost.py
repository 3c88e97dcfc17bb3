"""The structured ("ghost") path: Gram factors from one batched forward and one backward pass.

For a linear layer `z = a W + c` and the loss gradient `b = dL/dz` of the *summed* loss
(exact per example because inference-mode examples do not interact), example i's gradient
is `dW_i = sum_t a_it (x) b_it`, `dc_i = sum_t b_it`; `_factors` turns these into Gram blocks
without forming dW_i when that is cheaper. To see `a` and `z`, each ruled layer's `call` is
wrapped, on the instance and only while the model is traced, by a recorder that runs the
layer's own code (with its activation split off where the rule asks for the pre-activation).
A rule is a small function from a layer's recorded calls to its factors; `tfstiffness.engine.rules`
holds the registry. Variables of any other layer go through the generic per-example path in
the same call.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Sequence

import keras
import tensorflow as tf

from tfstiffness.engine import _factors
from tfstiffness.engine._generic import PerExampleGradients
from tfstiffness.engine.layer_keys import layer_key
from tfstiffness.engine.losses import PerExampleLoss
from tfstiffness.engine.rules import LayerCall, rule_for
from tfstiffness.engine.rules._registry import Rule


@contextlib.contextmanager
def _recording(layers: Sequence, rules: dict[int, Rule], records: dict[int, list[LayerCall]]):
    """Wraps each layer's `call` on the instance to record its calls; restores on exit."""

    def make_recorder(layer, original, watch):
        def recorder(*args, **kwargs):
            output, watched = watch(layer, original, args, kwargs)
            records.setdefault(id(layer), []).append(LayerCall(args, kwargs, watched))
            return output

        return recorder

    try:
        for layer in layers:
            layer.call = make_recorder(layer, type(layer).call.__get__(layer),
                                       rules[id(layer)].watch)
        yield
    finally:
        for layer in layers:
            layer.__dict__.pop("call", None)


def _dense_gradient(gradient, output: tf.Tensor) -> tf.Tensor:
    return tf.zeros_like(output) if gradient is None else tf.convert_to_tensor(gradient)


class GhostFactors:
    """Callable `(x_block, y_block) -> {layer key: [factors]}` for all trainable variables.

    On its first block it checks every ruled layer against the batch gradient: summed over
    all pairs, a layer's Gram must equal the squared norm of the summed gradient,
    `sum_ij G_ij = |sum_i g_i|^2`. A layer whose variables are also used outside its own calls
    (weights tied to another layer), or whose rule does not match it, fails that check; it is
    then moved to the generic path, with a warning.
    """

    def __init__(self, model: keras.Model, loss_fn: PerExampleLoss, generic_method: str):
        self.model, self.loss_fn, self.generic_method = model, loss_fn, generic_method
        self._checked = False
        self._configure(excluded=set())

    def _configure(self, excluded: set[int]) -> None:
        model = self.model
        trainable = {id(v) for v in model.trainable_variables}
        # Outer layers come first: a ruled layer inside a ruled layer is the outer rule's.
        self.layers, self._rules, covered = [], {}, set()
        for layer in model._flatten_layers(include_self=False, recursive=True):
            rule = rule_for(layer)
            ids = {id(v) for v in layer.trainable_variables}
            if rule is None or id(layer) in excluded or not ids & trainable or ids & covered:
                continue
            self.layers.append(layer)
            self._rules[id(layer)] = rule
            covered |= ids
        rest = [v for v in model.trainable_variables if id(v) not in covered]
        self.fallback_layers = tuple(dict.fromkeys(layer_key(v) for v in rest))
        self._generic = (PerExampleGradients(model, self.loss_fn, rest, self.generic_method)
                         if rest else None)
        self._order = list(dict.fromkeys(layer_key(v) for v in model.trainable_variables))
        self._layout: list[tuple[str, type, int]] = []  # (key, factor type, tensor count)
        # A partial: TensorFlow counts retracing per code object, and each model's ghost
        # function is traced once; measuring several models must not look like retracing.
        self._fn = tf.function(functools.partial(GhostFactors._traced, self))

    def _traced(self, x, y):
        records: dict[int, list[LayerCall]] = {}
        with tf.GradientTape() as tape:
            with _recording(self.layers, self._rules, records):
                predictions = self.model(x, training=False)
            loss = tf.reduce_sum(self.loss_fn(y, predictions))
        calls = [c for layer in self.layers for c in records.get(id(layer), [])]
        for c, grad in zip(calls, tape.gradient(loss, [c.output for c in calls])):
            c.grad = tf.nest.map_structure(_dense_gradient, grad, c.output)
        self._layout, tensors = [], []
        for layer in self.layers:
            if id(layer) not in records:
                continue
            for f in self._rules[id(layer)].build(layer, records[id(layer)]):
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
                    "also used outside their own calls (e.g. tied weights), or their rule "
                    "does not match them; they go through the generic per-example path "
                    "instead.", UserWarning, stacklevel=2)
                self._configure(excluded={id(layer) for layer in bad})
                factors = self._factors(x, y)
        return factors
