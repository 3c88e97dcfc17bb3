"""The per-example loss, as `model.fit` would minimise it, and labels in the form it expects.

`loss` may be one loss (for every output, as Keras applies it), a list or dict with one loss
per output, or None for the compiled losses and `loss_weights`. A loss is a `keras.losses.Loss`,
a loss name or a callable `(y_true, y_pred) -> per-example (or per-token) values`.

An example's loss is the weighted sum over outputs of that output's loss. An output with more
than one value per example (a language model's per-token logits, per-pixel outputs) gives the
mean over its values, leaving out those masked by the model (the output's Keras mask, e.g. from
`Embedding(mask_zero=True)`) or by the labels (a loss's `ignore_class`); an example with nothing
left has loss 0. Keras' `fit` averages over all unmasked tokens of a batch instead; per example,
the mean over its own tokens is the natural unit, so that long and short examples weigh alike.

Sample weights scale an example's loss as `fit` does for a batch of that one example: with
per-example weights w [N], loss_i = w_i * l_i, so the Gram matrix is diag(w) G diag(w); with
per-token weights w [N, T] on an output with per-token losses l_it and Keras mask m_it (1 when
none), loss_i = sum_t w_it m_it l_it / max(sum_t m_it, 1) (Keras' "sum_over_batch_size":
weights do not change the divisor, so a padding mask given as weights averages over all T).
Weighted labels travel through the blocks as `weighted_labels(y, w)`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstiffness.engine import structure

_SPARSE = ("sparse_categorical_crossentropy",)
# Keys of the labels-with-weights dict that blocks carry (no user's output is named so).
_LABELS, _WEIGHTS = "__tfstiffness_labels__", "__tfstiffness_sample_weight__"
_DENSE = ("categorical_crossentropy",)


@dataclasses.dataclass(frozen=True)
class _OutputLoss:
    """The loss on one model output (`index` into the flattened outputs)."""

    index: int
    name: str  # how the user addresses the output in y: "y", "y[1]", "y['cls']"
    key: Any  # None (one output), an int (list outputs) or the output's name (dict outputs)
    fn: Callable
    weight: float
    label_kind: str  # "sparse", "one_hot" or "any"
    ignore_class: int | None
    cast_labels: bool  # Keras losses take float labels (as `Loss.__call__` converts them)
    shape: tuple  # the output's shape per example


class PerExampleLoss:
    """Callable `(y, predictions) -> [n]` per-example loss; `prepare_labels` checks y."""

    def __init__(self, terms: list[_OutputLoss], single_output: bool, description: str):
        self.terms, self.single_output, self.description = terms, single_output, description

    def __call__(self, y: Any, predictions: Any) -> tf.Tensor:
        flat = tf.nest.flatten(predictions)
        weight = None
        if isinstance(y, dict) and _WEIGHTS in y:
            y, weight = y[_LABELS], tf.cast(y[_WEIGHTS], tf.float32)
        labels = (y,) if self.single_output else tuple(y)
        total = None
        for term, y_true in zip(self.terms, labels):
            values = _per_example(term, y_true, flat[term.index], weight)
            values = values if term.weight == 1.0 else values * term.weight
            total = values if total is None else total + values
        return total

    def prepare_labels(self, y: Any, argument: str) -> Any:
        """y checked against each output and converted to what its loss expects."""
        by_term = self._labels_by_output(y, argument)
        prepared = tuple(_prepare_labels(labels, term, name)
                         for term, (name, labels) in zip(self.terms, by_term))
        return prepared[0] if self.single_output else prepared

    def prepare_sample_weight(self, weight: Any, n: int, argument: str) -> np.ndarray:
        """Per-example [n] or per-token [n, T, ...] weights, checked against every output."""
        w = np.asarray(weight.numpy() if isinstance(weight, tf.Tensor) else weight)
        if w.dtype == object or w.dtype.kind not in "biuf":
            raise TypeError(f"{argument}: expected numeric weights, per example [N] or per "
                            f"token [N, T], got {w.dtype} values.")
        if w.ndim == 0 or len(w) != n:
            raise ValueError(f"{argument}: expected weights per example [N] or per token "
                             f"[N, T] with N = {n}, got shape {list(w.shape)}.")
        if not np.isfinite(w).all():
            raise ValueError(f"{argument}: contains NaN or inf weights.")
        for term in self.terms if w.ndim > 1 else ():
            if len(term.shape) < w.ndim - 1 or not _fits(w.shape[1:], term.shape[:w.ndim - 1]):
                raise ValueError(
                    f"{argument}: per-token weights of shape {list(w.shape)} do not fit output "
                    f"{term.name}, whose loss gives values of shape "
                    f"{_text([None, *term.shape[:w.ndim - 1]])} per batch; pass per-example "
                    "weights [N] or weights shaped like the per-token loss.")
        return w.astype(np.float32)

    def _labels_by_output(self, y: Any, argument: str) -> list[tuple[str, Any]]:
        if self.single_output:  # also accepted as Keras does: [y] or {output name: y}
            if isinstance(y, dict) and len(y) == 1:
                (key, value), = y.items()
                return [(f"{argument}[{key!r}]", value)]
            if isinstance(y, (list, tuple)) and len(y) == 1 and np.ndim(y[0]) > 0:
                return [(f"{argument}[0]", y[0])]
            return [(argument, y)]
        names = [t.key for t in self.terms]
        if isinstance(y, dict):
            missing = [t.key for t in self.terms if t.key not in y]
            if missing:
                raise ValueError(f"{argument}: missing labels for output(s) {missing}; the "
                                 f"outputs with a loss are {names}.")
            return [(f"{argument}[{t.key!r}]", y[t.key]) for t in self.terms]
        if isinstance(y, (list, tuple)):
            outputs = max(t.index for t in self.terms) + 1
            if len(y) == len(self.terms):
                return [(f"{argument}[{i}]", v) for i, v in enumerate(y)]
            if len(y) >= outputs:  # one entry per output, None where an output has no loss
                return [(f"{argument}[{t.index}]", y[t.index]) for t in self.terms]
        raise ValueError(f"{argument}: the model has {len(self.terms)} outputs with a loss "
                         f"({names}); pass their labels as a list in that order or a dict "
                         "keyed by output name.")


def weighted_labels(y: Any, weight: np.ndarray | None) -> Any:
    """Labels that carry their sample weights through the blocks (y itself without weights)."""
    return y if weight is None else {_LABELS: y, _WEIGHTS: weight}


def _per_example(term: _OutputLoss, y_true: tf.Tensor, y_pred: tf.Tensor,
                 weight: tf.Tensor | None = None) -> tf.Tensor:
    y_true = tf.convert_to_tensor(y_true)
    if term.cast_labels and y_true.dtype != y_pred.dtype:
        y_true = tf.cast(y_true, y_pred.dtype)
    values = tf.convert_to_tensor(term.fn(y_true, y_pred))
    if values.shape.rank == 0:
        raise ValueError("loss: must return one value per example (use reduction=None for "
                         "Keras losses), got a scalar.")
    mask = _combined_mask(keras.src.backend.get_keras_mask(y_pred),
                          keras.src.backend.get_keras_mask(values))
    values = tf.cast(values, tf.float32)
    if weight is not None and weight.shape.rank > values.shape.rank:
        raise ValueError(f"sample_weight: per-token weights need per-token losses, but the loss "
                         f"of {term.name} gives values of shape {_text(values.shape.as_list())}; pass "
                         "per-example weights [N].")
    if weight is not None and weight.shape.rank > 1:  # per token: inside the mean
        token = weight
        while token.shape.rank < values.shape.rank:
            token = token[..., None]
        values = values * token
    elif weight is not None:
        return _mean_unmasked(values, mask) * weight
    return _mean_unmasked(values, mask)


def _mean_unmasked(values: tf.Tensor, mask: tf.Tensor | None) -> tf.Tensor:
    """[n] per example: the mean of its values, leaving out masked ones."""
    n = tf.shape(values)[0]
    if values.shape.rank == 1 and mask is None:
        return values
    flat = tf.reshape(values, [n, -1])
    if mask is None:
        return tf.reduce_mean(flat, axis=1)
    for _ in range(values.shape.rank - mask.shape.rank):  # e.g. a [n, T] mask on [n, T, k]
        mask = mask[..., None]
    weights = tf.reshape(tf.cast(tf.broadcast_to(mask, tf.shape(values)), tf.float32), [n, -1])
    return tf.reduce_sum(flat * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


def _combined_mask(*masks):
    present = [m for m in masks if m is not None]
    if not present:
        return None
    mask = tf.cast(present[0], tf.bool)
    for m in present[1:]:
        mask = tf.logical_and(mask, tf.cast(m, tf.bool))
    return mask


# --------------------------------------------------------------------------------------------
# Resolving `loss`
# --------------------------------------------------------------------------------------------


def compiled_loss(model: keras.Model) -> tuple[Any, Any]:
    """(loss, loss_weights) the model was compiled with, or (None, None)."""
    compile_loss = getattr(model, "_compile_loss", None)
    if compile_loss is not None and getattr(compile_loss, "_user_loss", None) is not None:
        return compile_loss._user_loss, compile_loss._user_loss_weights
    return getattr(model, "loss", None), None


def output_names(model: keras.Model, predictions: Any) -> list:
    """How each flattened output is addressed: None (one output), dict keys or list names."""
    flat = tf.nest.flatten(predictions)
    if not structure.is_nested(predictions):
        return [None]
    if isinstance(predictions, dict):
        return sorted(predictions)
    names = list(getattr(model, "output_names", None) or [])
    return names if len(names) == len(flat) else list(range(len(flat)))


def resolve_loss(loss: Any, model: keras.Model, predictions: Any,
                 loss_weights: Any = None) -> PerExampleLoss:
    """The per-example loss of `loss` (None: the compiled one) for outputs like `predictions`."""
    if loss is None:
        loss, compiled_weights = compiled_loss(model)
        loss_weights = compiled_weights if loss_weights is None else loss_weights
        if loss is None:
            raise ValueError(
                "loss: the model is not compiled with a loss, so one must be passed, e.g. "
                "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)."
            )
    flat = tf.nest.flatten(predictions)
    names = output_names(model, predictions)
    single = len(flat) == 1 and not structure.is_nested(predictions)
    per_output = _per_output(loss, names, "loss")
    weights = _per_output(1.0 if loss_weights is None else loss_weights, names, "loss_weights")
    terms = []
    for index, (name, item) in enumerate(zip(names, per_output)):
        if item is None:
            continue
        fn, kind, ignore, cast = _one_loss(item, "loss" if name is None else f"loss[{name!r}]")
        weight = weights[index]
        weight = 1.0 if weight is None else weight
        if not isinstance(weight, (int, float, np.number)) or not np.isfinite(weight):
            raise ValueError(f"loss_weights: expected finite numbers, got {weight!r}.")
        terms.append(_OutputLoss(
            index, "y" if name is None else f"y[{name!r}]", name, fn, float(weight), kind,
            ignore, cast, tuple(flat[index].shape[1:])))
    if not terms:
        raise ValueError("loss: every output's loss is None; give at least one output a loss.")
    single = single or (len(terms) == 1 and len(flat) == 1)
    return PerExampleLoss(terms, single, _describe(loss, loss_weights))


def _per_output(value: Any, names: list, argument: str) -> list:
    """`value` spread over the outputs: one value for all, a list in order, or a dict by name."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        if unknown:
            known = [n for n in names if n is not None]
            raise ValueError(f"{argument}: no model output named {unknown}; the model's "
                             f"outputs are {known or 'a single unnamed tensor'}.")
        return [value.get(name) for name in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"{argument}: expected {len(names)} entries, one per model output, "
                             f"got {len(value)}.")
        return list(value)
    return [value] * len(names)


def _loss_name(loss: Any) -> str:
    fn = getattr(loss, "fn", loss)  # LossFunctionWrapper keeps the plain function in `.fn`.
    return getattr(fn, "__name__", getattr(loss, "name", type(loss).__name__))


def _one_loss(loss: Any, argument: str) -> tuple[Callable, str, int | None, bool]:
    """(fn, label kind, ignore_class, cast labels) of one output's loss."""
    if isinstance(loss, str):
        try:
            got = keras.losses.get(loss)
        except ValueError as err:
            raise ValueError(f"{argument}: unknown loss name {loss!r}.") from err
        if got is None:
            raise ValueError(f"{argument}: unknown loss name {loss!r}.")
        if not isinstance(got, keras.losses.Loss):
            kind = _kind(_loss_name(got))
            return _rank_matched(got), kind, None, kind != "sparse"
        loss = got
    if isinstance(loss, keras.losses.Loss):
        fn, cast = loss.call, True
    elif callable(loss):
        fn, cast = loss, False
    else:
        raise TypeError(
            f"{argument}: expected a keras.losses.Loss, a loss name or a callable "
            f"(y_true, y_pred) -> per-example loss, got {type(loss).__name__}."
        )
    kind = _kind(_loss_name(loss))
    config = getattr(loss, "_fn_kwargs", None) or {}
    return fn, kind, config.get("ignore_class"), cast and kind != "sparse"


def _kind(name: str) -> str:
    return "sparse" if name in _SPARSE else "one_hot" if name in _DENSE else "any"


def _rank_matched(fn: Callable) -> Callable:
    """A loss function given by name, with labels squeezed or expanded to the predictions'
    rank as Keras' loss wrappers do (`binary_crossentropy` of labels [N] and outputs [N, 1])."""
    def call(y_true, y_pred):
        if y_true.shape.rank == y_pred.shape.rank - 1 and y_pred.shape[-1] == 1:
            y_true = y_true[..., None]
        elif y_true.shape.rank == y_pred.shape.rank + 1 and y_true.shape[-1] == 1:
            y_true = y_true[..., 0]
        return fn(y_true, y_pred)
    call.__name__ = fn.__name__
    return call


def _describe(loss: Any, loss_weights: Any) -> str:
    """A stable text identifying the loss (and weights), for caches and checkpoints."""
    def one(item):
        if item is None or isinstance(item, (str, int, float)):
            return item
        if isinstance(item, dict):
            return {str(k): one(v) for k, v in sorted(item.items(), key=lambda kv: str(kv[0]))}
        if isinstance(item, (list, tuple)):
            return [one(v) for v in item]
        if isinstance(item, keras.losses.Loss):
            try:
                config = item.get_config()
            except (NotImplementedError, TypeError):
                config = None
            fn = getattr(item, "fn", None)
            return {"class": f"{type(item).__module__}.{type(item).__qualname__}",
                    "fn": None if fn is None else _callable_name(fn), "config": config}
        return {"callable": _callable_name(item)}

    return json.dumps([one(loss), one(loss_weights)], sort_keys=True, default=repr)


def _callable_name(fn: Any) -> str:
    code = getattr(fn, "__code__", None)
    body = "" if code is None else f"#{_code_digest(code)}"
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}{body}"


def _code_digest(code: types.CodeType) -> str:
    """The same in every process (Python's `hash` of bytes and text is not, and a nested code
    object's repr holds its address): checkpoints are compared across processes."""
    digest = hashlib.blake2b(digest_size=4)

    def feed(c: types.CodeType) -> None:
        digest.update(c.co_code)
        for const in c.co_consts:
            if isinstance(const, types.CodeType):
                feed(const)
            else:
                digest.update(repr(const).encode())

    feed(code)
    return digest.hexdigest()


def cache_key(loss: Any, loss_weights: Any) -> Any:
    """Hashable key of a loss argument: its description, and callables themselves (a lambda's
    description cannot tell two apart; holding the object also keeps its id from being reused)."""
    objects = tuple(item for item in structure.leaves([loss, loss_weights])
                    if callable(item) and not isinstance(item, keras.losses.Loss))
    return _describe(loss, loss_weights), objects


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def _prepare_labels(y: Any, term: _OutputLoss, argument: str) -> np.ndarray:
    """Checks labels against one output and its loss; converts integer <-> one-hot."""
    y = np.asarray(y.numpy() if isinstance(y, tf.Tensor) else y)
    if y.dtype == object or y.dtype.kind not in "biuf":
        raise TypeError(f"{argument}: expected numeric labels, got {y.dtype} values; map class "
                        "names to integer ids first.")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{argument}: contains NaN or inf labels.")
    shape = term.shape
    classes = shape[-1] if shape and shape[-1] is not None else None
    per_class = shape[:-1]
    whole = y.dtype.kind in "biu" or bool(np.all(np.equal(np.mod(y, 1), 0)))
    as_indices = classes is not None and classes > 1 and whole and (
        _fits(y.shape[1:], per_class) or _fits(y.shape[1:], per_class + (1,)))
    if term.label_kind == "any":
        if as_indices:  # integer labels against a K-wide output are class indices: in range?
            _check_range(y, classes, term.ignore_class, argument)
        return y.astype(np.float32) if y.dtype == np.float64 else y
    if classes is None:
        return y
    if as_indices:
        indices = y.reshape(y.shape[:1] + tuple(y.shape[1:1 + len(per_class)])).astype(np.int64)
        _check_range(indices, classes, term.ignore_class, argument)
        if term.label_kind == "sparse":
            return indices
        return np.eye(classes, dtype=np.float32)[indices]
    if _fits(y.shape[1:], shape):
        return y.argmax(-1).astype(np.int64) if term.label_kind == "sparse" else y.astype(
            np.float32)
    if y.dtype.kind == "f" and not whole and _fits(y.shape[1:], per_class):
        raise ValueError(f"{argument}: expected integer class labels, got {y.dtype} values.")
    raise ValueError(
        f"{argument}: expected integer labels of shape {_text([None, *per_class])} or one-hot "
        f"labels of shape {_text([None, *shape])}, got shape {list(y.shape)}."
    )


def _fits(got: tuple, want: tuple) -> bool:
    return len(got) == len(want) and all(w is None or w == g for g, w in zip(got, want))


def _text(shape: list) -> str:
    return "[" + ", ".join("N" if i == 0 else str(s) for i, s in enumerate(shape)) + "]"


def _check_range(y: np.ndarray, classes: int, ignore: int | None, argument: str) -> None:
    values = y if ignore is None else y[y != ignore]
    if values.size and (values.min() < 0 or values.max() >= classes):
        raise ValueError(
            f"{argument}: labels must lie in [0, {classes}) for a model with {classes} "
            f"outputs; got values in [{values.min():g}, {values.max():g}]."
        )
