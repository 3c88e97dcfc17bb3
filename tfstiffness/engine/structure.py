"""Nested inputs and labels as Keras takes them: one array, a list/tuple of arrays, or a dict.

Every helper here treats numpy arrays and tensors as leaves and keeps the container types, so
a block of a dict of inputs is a dict of blocks. Leaves are named the way a user wrote them
(`x`, `x[1]`, `x['token_ids']`), so that error messages point at the offending input.
Leaves come in `tf.nest`'s order (dict keys sorted). Pure Python and numpy: the measures use
it without importing TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def is_nested(x: Any) -> bool:
    return isinstance(x, (dict, list, tuple))


def named_leaves(x: Any, name: str) -> list[tuple[str, Any]]:
    """[(name, leaf)] in a fixed order (dict keys sorted, as `tf.nest` flattens)."""
    if isinstance(x, dict):
        return [pair for key in sorted(x) for pair in named_leaves(x[key], f"{name}[{key!r}]")]
    if isinstance(x, (list, tuple)):
        return [pair for i, item in enumerate(x) for pair in named_leaves(item, f"{name}[{i}]")]
    return [(name, x)]


def map_named(fn: Callable[[str, Any], Any], x: Any, name: str) -> Any:
    """`fn(leaf_name, leaf)` on every leaf, keeping the structure."""
    if isinstance(x, dict):
        return {key: map_named(fn, value, f"{name}[{key!r}]") for key, value in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(map_named(fn, item, f"{name}[{i}]") for i, item in enumerate(x))
    return fn(name, x)


def leaves(x: Any) -> list[Any]:
    return [leaf for _, leaf in named_leaves(x, "")]


def map_structure(fn: Callable, x: Any, *others: Any) -> Any:
    """`fn(leaf, *other_leaves)` on every leaf of structures with x's layout."""
    if isinstance(x, dict):
        return {key: map_structure(fn, x[key], *(o[key] for o in others)) for key in x}
    if isinstance(x, (list, tuple)):
        return type(x)(map_structure(fn, *items) for items in zip(x, *others))
    return fn(x, *others)


def num_examples(x: Any) -> int:
    return len(leaves(x)[0])


def take(x: Any, index: slice | np.ndarray) -> Any:
    """Rows `index` of every leaf."""
    return map_structure(lambda leaf: leaf[index], x)


def pad_rows(x: Any, n: int) -> Any:
    """Every leaf padded to `n` rows by repeating its first row (blocks keep one shape)."""
    def pad(leaf):
        missing = n - len(leaf)
        if missing <= 0:
            return leaf
        if not isinstance(leaf, np.ndarray):  # a tensor inside a traced (distributed) block
            import tensorflow as tf

            return tf.concat([leaf, tf.repeat(leaf[:1], missing, 0)], 0)
        return np.concatenate([leaf, np.repeat(leaf[:1], missing, 0)])
    return map_structure(pad, x)


def concat(parts: list[Any]) -> Any:
    """Leaf-wise concatenation of structures along the example axis."""
    return map_structure(lambda *leaf: np.concatenate(leaf), *parts)


def shapes_key(x: Any) -> tuple:
    """Hashable description of a structure: container layout and each leaf's shape[1:]/dtype."""
    flat = [(tuple(leaf.shape[1:]), np.dtype(leaf.dtype).str) for leaf in leaves(x)]
    layout = map_structure(lambda _: None, x)
    return repr(layout), tuple(flat)


def contiguous_bytes(x: Any) -> list[bytes]:
    return [np.ascontiguousarray(leaf).tobytes() for leaf in leaves(x)]
