"""Layer-wise stiffness: stiffness of the gradients w.r.t. one layer's parameters at a time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfstiffness import measures


@dataclass(frozen=True)
class LayerStiffness:
    """Stiffness restricted to one layer's parameters.

    Attributes:
        S: [N, M] stiffness matrix of that layer's gradients.
        class_matrix: [K, K] class stiffness matrix.
        within, between: within- and between-class stiffness.
    """

    S: np.ndarray
    class_matrix: np.ndarray
    within: float
    between: float


def layerwise_stiffness(gram, labels, labels2=None, kind: str = "cosine",
                        num_classes: int | None = None) -> dict[str, LayerStiffness]:
    """Per-layer stiffness from a Gram computed with `by_layer=True`, in layer order.

    Cosine stiffness uses each layer's own gradient norms, so it measures how aligned the
    examples' gradients are *within that layer's parameters* (Walker 2023, chapter 4).

    Args:
        gram: a `GradientGram` with `by_layer` filled.
        labels: class of each row example; labels2: of each column example (two sets).
        kind: "cosine" or "sign".
        num_classes: number of classes (default: largest label + 1).

    Returns:
        Ordered dict: layer name -> `LayerStiffness`.

    Example:
        >>> import keras, numpy as np, tfstiffness as tfs
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="h"),
        ...                           keras.layers.Dense(2, name="out")])
        >>> x, y = np.random.rand(6, 3).astype("float32"), np.arange(6) % 2
        >>> loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        >>> gram = tfs.gradient_gram(model, x, y, loss=loss, by_layer=True)
        >>> list(tfs.layerwise_stiffness(gram, y))
        ['h', 'out']
    """
    if not getattr(gram, "by_layer", None):
        raise ValueError("gram: has no per-layer blocks; compute it with "
                         "gradient_gram(..., by_layer=True).")
    result = {}
    for name, block in gram.by_layer.items():
        S = measures.stiffness_matrix(
            block, kind=kind, sq_norms=gram.layer_sq_norms[name],
            sq_norms2=gram.layer_sq_norms2[name] if gram.cross else None)
        C = measures.class_stiffness(S, labels, labels2, num_classes=num_classes)
        result[name] = LayerStiffness(S, C, *measures.within_between(C))
    return result
