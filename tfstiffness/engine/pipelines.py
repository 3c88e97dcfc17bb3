"""Data as `model.fit` takes it, read once into arrays: datasets, PyDatasets and generators.

`x` may be arrays (one, a list or a dict of them), a `tf.data.Dataset` (batched or not), a
`keras.utils.PyDataset` or a generator; the last three yield `x`, `(x,)`, `(x, y)` or
`(x, y, sample_weight)`, as for `fit`, and then `y` and `sample_weight` are not passed
separately. The examples are read once, batch by batch, into arrays.
"""

from __future__ import annotations

import collections.abc
import functools
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstiffness import checks
from tfstiffness.engine import structure

ACCEPTED = ("arrays (one, a list or a dict of them, as model.fit takes), a tf.data.Dataset "
            "(batched or not), a keras.utils.PyDataset, or a generator yielding (x,), (x, y) "
            "or (x, y, sample_weight) batches")


def is_pipeline(x: Any) -> bool:
    """True for a dataset, a PyDataset or an iterator (a generator): data to be read."""
    return isinstance(x, (tf.data.Dataset, keras.utils.PyDataset)) or (
        isinstance(x, collections.abc.Iterator) and not isinstance(x, (np.ndarray, tf.Tensor)))


def examples(model: keras.Model, x: Any, y: Any, sample_weight: Any, argument: str,
             num_examples: int | None = None) -> tuple[Any, Any, Any]:
    """(x, y, sample_weight) read (`read_examples`), then preprocessed (`preprocess`)."""
    x, y, sample_weight = read_examples(x, y, sample_weight, argument, model, num_examples)
    return preprocess(model, x, y, sample_weight, argument)


def read_examples(x: Any, y: Any, sample_weight: Any, argument: str, model: keras.Model | None,
                  num_examples: int | None = None) -> tuple[Any, Any, Any]:
    """(x, y, sample_weight) as arrays; arrays pass through unchanged.

    Args:
        x: the data (see the module docstring).
        y, sample_weight: given separately; must be None when `x` yields them.
        argument: what the caller calls `x` (its `y` and `sample_weight` names follow).
        model: the model, whose input ranks tell a batched dataset from an unbatched one
            (None: a dataset whose leading size is unknown is batched).
        num_examples: read at most this many examples (needed for an endless source).

    Raises:
        ValueError, TypeError: naming the argument and the accepted forms.
    """
    checks.positive_int(num_examples, "num_examples", allow_none=True)
    if not is_pipeline(x):
        return x, y, sample_weight
    names = {"x2": ("y2", "sample_weight2"), "x_test": ("y_test", "sample_weight")}.get(
        argument, ("y", "sample_weight"))
    for given, name in zip((y, sample_weight), names):
        if given is not None:
            raise ValueError(f"{name}: {argument} is a {_kind(x)}, which yields its own "
                             f"labels and weights as (x, y) or (x, y, sample_weight); pass "
                             f"{name}=None, or pass {argument} as arrays.")
    batches = _batches(x, argument, model, num_examples)
    parts, count = [], 0
    for batch in batches:
        if isinstance(batch, (tuple, list)) and not 1 <= len(batch) <= 3:
            raise ValueError(f"{argument}: a batch is a {type(batch).__name__} of {len(batch)}; "
                             f"expected x, (x,), (x, y) or (x, y, sample_weight). Pass "
                             f"{ACCEPTED}.")
        item = keras.utils.unpack_x_y_sample_weight(_numpy(batch, argument))
        parts.append(item)
        count += structure.num_examples(item[0])
        if num_examples is not None and count >= num_examples:
            break
    if not parts:
        raise ValueError(f"{argument}: the {_kind(x)} yielded no examples; pass "
                         f"{ACCEPTED}.")
    xs, ys, ws = zip(*parts)
    joined = []
    for part, name in zip((xs, ys, ws), (argument, *names)):
        if all(p is None for p in part):
            joined.append(None)
            continue
        if any(p is None for p in part):
            raise ValueError(f"{argument}: some batches carry {name} and some do not; every "
                             "batch must be (x, y) or every one (x, y, sample_weight).")
        whole = structure.concat(list(part))
        joined.append(whole if num_examples is None else structure.take(
            whole, slice(0, num_examples)))
    return tuple(joined)


def preprocess(model: keras.Model, x: Any, y: Any, sample_weight: Any,
               argument: str) -> tuple[Any, Any, Any]:
    """(x, y, sample_weight) through the model's preprocessor (a keras_hub task's), as `fit`
    applies it; unchanged without one, or when x already has the model's dict of inputs.

    The preprocessor runs outside the gradient (it has no trainable variables). Labels it
    makes (a causal LM's next tokens, when y is None) and its sample weights (a causal LM's
    padding mask) are used unless `y` or `sample_weight` is given.
    """
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None or x is None or _has_input_keys(model, x):
        return x, y, sample_weight
    if isinstance(x, np.ndarray) and x.ndim == 1 and x.dtype.kind in "USO":
        # Text as a list of str: some tokenizers (byte-pair) refuse numpy arrays and bytes.
        x = [v.decode() if isinstance(v, bytes) else v for v in x.tolist()]
    try:
        out = preprocessor(x, y, sample_weight) if y is not None else preprocessor(x)
    except Exception as err:
        raise ValueError(f"{argument}: the model's preprocessor ({type(preprocessor).__name__}) "
                         f"failed on it: {err}. Pass raw inputs it takes (e.g. strings), or the "
                         "model's dict of inputs.") from err
    # Without y, a preprocessor may make the labels (a causal LM's next tokens) and weights.
    px, py, pw = keras.utils.unpack_x_y_sample_weight(out)
    numpy = functools.partial(tf.nest.map_structure, _to_numpy)
    return numpy(px), None if py is None else numpy(py), (
        sample_weight if sample_weight is not None or pw is None else _to_numpy(pw))


def _to_numpy(value: Any) -> np.ndarray:
    return value.numpy() if isinstance(value, tf.Tensor) else np.asarray(value)


def _has_input_keys(model: keras.Model, x: Any) -> bool:
    try:
        names = {t.name for t in tf.nest.flatten(model.inputs)}
    except (AttributeError, ValueError, TypeError):
        return False
    return isinstance(x, dict) and set(x) == names


def _kind(x: Any) -> str:
    if isinstance(x, tf.data.Dataset):
        return "tf.data.Dataset"
    if isinstance(x, keras.utils.PyDataset):
        return f"PyDataset ({type(x).__name__})"
    return "generator" if isinstance(x, collections.abc.Generator) else "iterator"


def _batches(x: Any, argument: str, model: keras.Model, limit: int | None):
    if isinstance(x, keras.utils.PyDataset):
        return (x[i] for i in range(_pydataset_length(x, argument, limit)))
    if isinstance(x, tf.data.Dataset):
        if x.cardinality() == tf.data.INFINITE_CARDINALITY and limit is None:
            raise ValueError(f"{argument}: the dataset is endless (repeat()); pass num_examples= "
                             "to say how many examples to read, or dataset.take(k).")
        return iter(x if _is_batched(x, model) else x.batch(256))
    return x  # a generator: read until it ends, or until `limit` examples


def _pydataset_length(x: keras.utils.PyDataset, argument: str, limit: int | None) -> int:
    length = x.num_batches
    if length is None:
        if limit is None:
            raise ValueError(f"{argument}: the PyDataset is endless (num_batches is None); pass "
                             "num_examples= to say how many examples to read.")
        return np.iinfo(np.int64).max
    return length


def _is_batched(dataset: tf.data.Dataset, model: keras.Model) -> bool:
    """A dataset's elements are batches when their inputs have the model's input rank (with
    the batch axis); without known model inputs, when their leading size is unknown."""
    x_spec = keras.utils.unpack_x_y_sample_weight(dataset.element_spec)[0]
    leaves = tf.nest.flatten(x_spec)
    try:
        inputs = tf.nest.flatten(model.inputs)
    except (AttributeError, ValueError, TypeError):
        inputs = []
    ranks = sorted(-1 if leaf.shape.rank is None else leaf.shape.rank for leaf in leaves)
    if inputs and len(inputs) == len(leaves):
        wanted = sorted(len(t.shape) for t in inputs)
        if ranks == wanted or [r + 1 for r in ranks] == wanted:
            return ranks == wanted
    return leaves[0].shape.rank is not None and leaves[0].shape.rank > 0 and (
        leaves[0].shape[0] is None)


def _numpy(batch: Any, argument: str) -> Any:
    """A batch with numpy leaves (tuples kept: they separate x, y and sample_weight)."""
    def leaf(value):
        try:
            value = value.numpy() if isinstance(value, tf.Tensor) else np.asarray(value)
        except ValueError:  # numpy refuses ragged nested lists
            value = np.asarray(value, dtype=object)
        if value.dtype == object and value.ndim and isinstance(value.flat[0], (bytes, str)):
            return value  # text, for a model's preprocessor
        if value.dtype == object or value.ndim == 0:
            held = (f"{value.dtype} data of shape {list(value.shape)}" if value.ndim else
                    "a scalar (a nested Python list?)")
            raise TypeError(f"{argument}: a batch holds {held}; expected numeric arrays "
                            f"[batch, ...]. Pass {ACCEPTED}.")
        return value
    return tf.nest.map_structure(leaf, batch)
