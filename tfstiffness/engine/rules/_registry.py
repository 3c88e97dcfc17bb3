"""The registry of structured ("ghost") rules: layer class -> how to get its Gram factors.

A rule is found through the layer's class hierarchy: the nearest registered class applies
when the layer inherits that class's `call` unchanged (a subclass that overrides `call` may
compute something else, so it gets no rule unless it is registered itself).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from tfstiffness.engine import _factors


@dataclass
class LayerCall:
    """One call of a ruled layer, recorded during the block's forward and backward pass.

    Attributes:
        args: the positional arguments `call` received (tensors have the batch first).
        kwargs: the keyword arguments `call` received (e.g. `training`, `mask`).
        output: the tensor the rule watches: the layer's output, or its pre-activation
            output when the rule was registered with `pre_activation=True`.
        grad: `d(sum of the block's per-example losses) / d output`, same shape as
            `output` (zeros where the output does not reach the loss). Examples do not
            interact in inference mode, so row i is example i's own output gradient.
    """

    args: tuple
    kwargs: dict
    output: Any
    grad: Any = None


RuleFunction = Callable[[Any, list[LayerCall]], Sequence[_factors.Factor]]
# (layer, call, args, kwargs) -> (what the layer returns, what the rule watches)
WatchFunction = Callable[[Any, Callable, tuple, dict], tuple[Any, Any]]


def _watch_output(layer, call, args, kwargs):
    output = call(*args, **kwargs)
    return output, output


def _watch_pre_activation(layer, call, args, kwargs):
    activation, layer.activation = layer.activation, None
    try:
        z = call(*args, **kwargs)
    finally:
        layer.activation = activation
    return (z if activation is None else activation(z)), z


@dataclass(frozen=True)
class Rule:
    build: RuleFunction
    watch: WatchFunction = _watch_output
    applies: Callable[[Any], bool] | None = None


RULES: dict[type, Rule] = {}
# Modules of optional packages whose rules are registered once the package is imported.
_OPTIONAL: dict[str, str] = {"keras_hub": "tfstiffness.engine.rules._keras_hub"}
_loaded_optional: set[str] = set()


def register_rule(layer_class: type, rule: RuleFunction, *, pre_activation: bool = False,
                  applies: Callable[[Any], bool] | None = None) -> None:
    """Registers a structured ("ghost") rule, so that a layer's Gram blocks skip the generic
    per-example path.

    The ghost path runs one batched forward and one backward pass per block of examples.
    Every call of a ruled layer is recorded as a `LayerCall` (its arguments, the watched
    output and the gradient of the summed loss at that output); after the backward pass
    `rule(layer, calls)` returns *factors*: compact forms of the per-example gradients of
    all the layer's trainable variables on this block, whose Gram matrices sum to the
    layer's block of the Gram matrix. Use `Materialized(g)` with `g` [n, P] the per-example
    gradients themselves, or `Outer(a, b)` for `g_i = sum_t a_it (x) b_it` (a linear map
    over positions; `linear_factor` picks the cheaper of the two forms).

    On the first block, every ruled layer is checked against the batch gradient
    (`sum_ij G_ij = |sum_i g_i|^2`); a layer that fails (a wrong rule, or weights also used
    outside the layer's own calls) moves to the generic path, with a warning.

    Args:
        layer_class: the layer class; subclasses that do not override `call` use the rule
            too. Registering a class again replaces its rule.
        rule: `(layer, calls: list[LayerCall]) -> list of factors`, built from TensorFlow
            ops (it runs inside a `tf.function`). The factors must have as many rows as
            the block, and the same forms and shapes on every block of the same size.
        pre_activation: watch the output before `layer.activation` (the rule then sees
            `z` of `activation(z)`); the layer must have an `activation` attribute.
        applies: optional `layer -> bool`; layers for which it is False get no rule.

    Example:
        >>> import keras, tensorflow as tf, tfstiffness as tfs
        >>> class Scale(keras.layers.Layer):  # y = x * w, one weight per feature
        ...     def build(self, shape):
        ...         self.w = self.add_weight(shape=(shape[-1],), initializer="ones")
        ...     def call(self, x):
        ...         return x * self.w
        >>> def scale_rule(layer, calls):  # dL/dw_i = sum over positions of x_i * grad_i
        ...     g = tf.add_n([tf.reshape(c.args[0] * c.grad, [tf.shape(c.grad)[0], -1,
        ...                                                    c.grad.shape[-1]])
        ...                   for c in calls])
        ...     return [tfs.rules.Materialized(tf.reduce_sum(g, axis=1))]
        >>> tfs.register_rule(Scale, scale_rule)
    """
    if not isinstance(layer_class, type):
        raise TypeError(f"layer_class: expected a class, got {type(layer_class).__name__}.")
    if not callable(rule):
        raise TypeError(f"rule: expected a callable (layer, calls) -> factors, got "
                        f"{type(rule).__name__}.")
    if applies is not None and not callable(applies):
        raise TypeError(f"applies: expected a callable layer -> bool or None, got "
                        f"{type(applies).__name__}.")
    watch = _watch_pre_activation if pre_activation else _watch_output
    RULES[layer_class] = Rule(rule, watch, applies)


def register(layer_class: type, build: RuleFunction, *, pre_activation: bool = False,
             applies: Callable[[Any], bool] | None = None,
             watch: WatchFunction | None = None) -> None:
    """The package's own registration: `register_rule` plus a custom `watch`."""
    if watch is None:
        watch = _watch_pre_activation if pre_activation else _watch_output
    RULES[layer_class] = Rule(build, watch, applies)


def _load_optional() -> None:
    # Rules for layers of optional packages (keras_hub takes seconds to import): loaded once
    # the package is in use, which it is whenever a model holds one of its layers.
    for package, module in _OPTIONAL.items():
        if package not in _loaded_optional and package in sys.modules:
            _loaded_optional.add(package)
            __import__(module)


def rule_for(layer) -> Rule | None:
    """The rule that applies to `layer`, or None."""
    _load_optional()
    call = type(layer).call
    for cls in type(layer).__mro__:
        rule = RULES.get(cls)
        if rule is not None:
            if getattr(cls, "call", None) is not call:
                return None  # `call` overridden below the ruled class
            return rule if rule.applies is None or rule.applies(layer) else None
    return None


def batch_rows(t: tf.Tensor) -> tf.Tensor:
    """[n, ..., k] -> [n, T, k]: every axis between batch and features is a position."""
    return tf.reshape(t, [tf.shape(t)[0], -1, t.shape[-1]])


def concat_positions(parts: Sequence[tf.Tensor]) -> tf.Tensor:
    """Several calls of one layer: their positions side by side (exact for sums over t)."""
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)
