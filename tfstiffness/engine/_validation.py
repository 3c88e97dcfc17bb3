"""Checks on `gradient_gram`'s inputs before any heavy work, with errors that say what to fix.

Inputs may be one array, a list/tuple of arrays or a dict of arrays, exactly as `model.fit`
takes them; every check applies per input and names it (`x['token_ids']`, `x[1]`).
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstiffness.engine import losses, pipelines, structure
from tfstiffness.engine.layer_keys import layer_key
from tfstiffness.errors import NonFiniteWeightsError


def model_inputs(model: keras.Model) -> Any:
    """The model's `keras.Input` tensors in its input structure, or None when unknown
    (a subclassed or unbuilt model: its first forward pass checks the inputs instead)."""
    struct = getattr(model, "_inputs_struct", None)
    if struct is not None:
        return struct
    try:
        inputs = model.inputs
    except (AttributeError, ValueError, TypeError):
        return None
    return inputs[0] if inputs and len(inputs) == 1 else None


def _input_names(spec: Any) -> list[str]:
    return [t.name for t in structure.leaves(spec)]


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, tf.Tensor)) or hasattr(value, "__array__")


def _match_structure(x: Any, spec: Any, argument: str) -> Any:
    """`x` arranged as the model's inputs are, or a message saying how they differ."""
    if spec is None:
        return x
    names = _input_names(spec)
    if not structure.is_nested(spec):
        if isinstance(x, dict):
            if set(x) == {names[0]}:
                return x[names[0]]
            raise ValueError(f"{argument}: the model has one input, named {names[0]!r}; got a "
                             f"dict with key(s) {sorted(map(str, x))}. Pass one array [N, ...].")
        if isinstance(x, (list, tuple)) and x and all(map(_is_array, x)):
            if len(x) == 1:
                return x[0]
            raise ValueError(f"{argument}: the model has one input, but got a "
                             f"{type(x).__name__} of {len(x)} arrays. Pass one array [N, ...].")
        return x
    if isinstance(spec, dict):
        if isinstance(x, dict):
            _check_keys(x, list(spec), argument)
            return {key: x[key] for key in spec}
        raise ValueError(f"{argument}: the model takes a dict of inputs with keys "
                         f"{sorted(spec)}; got {_describe(x)}. Pass a dict keyed by those names.")
    if isinstance(x, dict):
        _check_keys(x, names, argument)
        return [x[name] for name in names]
    if isinstance(x, (list, tuple)) and len(x) == len(names):
        return [np.asarray(v) if isinstance(v, list) else v for v in x]
    count = len(x) if isinstance(x, (list, tuple)) else 1
    raise ValueError(f"{argument}: the model takes {len(names)} inputs {names}; got "
                     f"{_describe(x)} ({count} array(s)). Pass a list of {len(names)} arrays "
                     "or a dict keyed by those names.")


def _check_keys(x: dict, expected: list[str], argument: str) -> None:
    missing = [k for k in expected if k not in x]
    unexpected = sorted(str(k) for k in x if k not in expected)
    if missing or unexpected:
        parts = ([f"missing key(s) {missing}"] if missing else []) + (
            [f"unexpected key(s) {unexpected}"] if unexpected else [])
        raise ValueError(f"{argument}: {' and '.join(parts)}; the model's inputs are "
                         f"{sorted(expected)}.")


def _describe(x: Any) -> str:
    if isinstance(x, dict):
        return f"a dict with keys {sorted(map(str, x))}"
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of {len(x)}"
    return "one array"


def _as_leaf(name: str, value: Any) -> np.ndarray:
    """One input as a numpy array with a batch axis; NaN/inf refused; float64 -> float32."""
    array = np.asarray(value.numpy() if isinstance(value, tf.Tensor) else value)
    if array.dtype == object:
        raise TypeError(f"{name}: expected a numeric array [N, ...], got ragged or mixed data; "
                        f"pass {pipelines.ACCEPTED}.")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numbers, got {array.dtype} values; strings need a "
                        "preprocessor (tokenise them into integer ids first).")
    if array.ndim == 0:
        raise ValueError(f"{name}: expected an array with a leading batch axis, got a scalar.")
    if array.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one example, got an empty array.")
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            rows = np.unique(np.nonzero(bad.reshape(len(array), -1))[0])
            raise ValueError(
                f"{name}: contains NaN or inf in {len(rows)} example(s) (first at index "
                f"{rows[0]}); stiffness of non-finite inputs is undefined.")
        if array.dtype == np.float64:
            array = array.astype(np.float32)
    return array


def as_inputs(x: Any, argument: str, model: keras.Model | None = None) -> Any:
    """`x` as the model takes it (array, list or dict of arrays), every input checked."""
    if x is None:
        raise ValueError(f"{argument}: expected inputs, got None.")
    spec = None if model is None else model_inputs(model)
    x = _match_structure(x, spec, argument)
    if isinstance(x, (list, tuple)) and not all(map(_is_array, x)):
        try:
            x = np.asarray(x)  # a nested Python list of numbers: one array
        except ValueError:  # numpy refuses ragged nested lists
            x = np.asarray(x, dtype=object)
    x = structure.map_named(_as_leaf, x, argument)
    lengths = {name: len(leaf) for name, leaf in structure.named_leaves(x, argument)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{argument}: every input needs the same number of examples; got "
                         + ", ".join(f"{name}: {n}" for name, n in lengths.items()) + ".")
    return x


def check_lengths(x: Any, y: Any, x_name: str, y_name: str) -> None:
    if y is None:
        raise ValueError(f"{y_name}: labels are required with {x_name}: pass {y_name}=, or "
                         f"{x_name} as a dataset or generator yielding (x, y) or "
                         "(x, y, sample_weight).")
    n = structure.num_examples(x)
    for name, leaf in structure.named_leaves(y, y_name):
        if leaf is None:
            continue
        length = len(leaf) if np.ndim(leaf) else None
        if length != n:
            raise ValueError(
                f"{x_name} and {name} must have the same number of examples: "
                f"got {n} inputs and {length} labels."
            )


def check_input_shape(model: keras.Model, x: Any, argument: str) -> None:
    spec = model_inputs(model)
    if spec is None:
        return
    for (name, leaf), expected in zip(structure.named_leaves(x, argument),
                                      structure.leaves(spec)):
        want = tuple(expected.shape[1:])
        got = leaf.shape[1:]
        if len(got) != len(want) or any(e is not None and e != g for e, g in zip(want, got)):
            raise ValueError(
                f"{name}: each example has shape {tuple(got)}, but the model expects "
                f"{want} (None = any size)."
            )


def probe_model(model: keras.Model, x: Any, argument: str) -> Any:
    """Runs one example forward (building the model); returns its output structure."""
    try:
        out = model(structure.take(x, slice(0, 1)), training=False)
    except Exception as err:
        shapes = {name: tuple(leaf.shape[1:]) for name, leaf in
                  structure.named_leaves(x, argument)}
        raise ValueError(f"{argument}: examples of shape "
                         f"{next(iter(shapes.values())) if len(shapes) == 1 else shapes} "
                         f"do not fit the model: {err}") from err
    if not model.trainable_variables:
        raise ValueError("model: has no trainable variables, so every gradient is zero; "
                         "set some layers trainable.")
    return out


def check_finite_variables(model: keras.Model) -> None:
    """Refuses NaN or inf in any model variable (weights, moving statistics, ...)."""
    for v in model.weights:
        values = np.asarray(v.value if hasattr(v, "value") else v)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = int(np.size(values) - np.isfinite(values).sum())
            raise NonFiniteWeightsError(
                f"model: variable {v.path!r} holds {bad} NaN or inf value(s), so the loss and "
                "its gradients are undefined; restore finite weights (e.g. an earlier "
                "checkpoint) before measuring.")


def check_not_float8(model: keras.Model) -> None:
    """Refuses layers quantized to float8 (`model.quantize("float8")`).

    Keras' float8 layers define their gradient only inside its training step: a plain
    `tape.gradient` through them fails in TensorFlow 2.21, and their scale and amax-history
    variables are trainable but overwritten from each batch's statistics, not trained by
    gradients. There is no per-example gradient to measure.
    """
    float8 = [layer.name for layer in model._flatten_layers(include_self=False, recursive=True)
              if getattr(getattr(layer, "dtype_policy", None), "quantization_mode", None)
              == "float8"]
    if float8:
        raise ValueError(
            f"model: layer(s) {float8} are quantized to float8 (model.quantize('float8')); "
            "Keras defines their gradient only inside its own training step (its scale and "
            "amax-history variables are trainable=True but set from each batch, not trained "
            "by gradients), so per-example gradients are undefined. Measure the model before "
            "quantizing it, or quantize with 'int8' or 'int4' (exact here).")


def check_connected(model: keras.Model, loss_fn: losses.PerExampleLoss, x: Any, y: Any) -> None:
    """Raises naming every layer whose variables never receive a gradient from the loss.

    Layers that reach only outputs whose loss is None (a head compiled with `loss=None`) get
    zero gradient, as in `model.fit`, which trains the rest: they are named in one warning.
    """
    variables = model.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        predictions = model(structure.take(x, slice(0, 2)), training=False)
        loss = tf.reduce_sum(loss_fn(structure.take(y, slice(0, 2)), predictions))
        with_loss = {term.index for term in loss_fn.terms}
        flat = tf.nest.flatten(predictions)
        lossless = [i for i, p in enumerate(flat) if i not in with_loss]
        reach = tf.add_n([tf.reduce_sum(tf.cast(flat[i], tf.float32)) for i in lossless
                          if flat[i].dtype.is_floating] or [tf.constant(0.0)])
    dead = [v for v, g in zip(variables, tape.gradient(loss, variables)) if g is None]
    to_heads = tape.gradient(reach, dead) if dead else []
    del tape
    refused = sorted({layer_key(v) for v, g in zip(dead, to_heads) if g is None})
    if refused:
        raise ValueError(
            "model: the loss does not depend on the trainable variables of layer(s) "
            f"{', '.join(repr(d) for d in refused)} (gradient None for every example); make "
            "them non-trainable (layer.trainable = False) or connect them to the output."
        )
    if dead:
        names = losses.output_names(model, predictions)
        heads = [repr(names[i]) if names[i] is not None else "the output" for i in lossless]
        zero = sorted({layer_key(v) for v in dead})
        warnings.warn(
            f"model: layer(s) {', '.join(map(repr, zero))} feed only output(s) "
            f"{', '.join(heads)} whose loss is None, so their gradient is zero (as in "
            "model.fit, which trains the rest); they add nothing to the Gram matrix.",
            UserWarning, stacklevel=4)
