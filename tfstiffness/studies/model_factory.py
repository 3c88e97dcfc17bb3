"""The studies' model factory: a model by name, for the data's shape, and the inputs it takes.

Example:
    >>> MODELS
    ('fc', 'cnn', 'resnet20', 'transformer', 'bert_tiny')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["MODELS", "build_model", "model_inputs"]

#: Model names accepted by `build_model`.
MODELS = ("fc", "cnn", "resnet20", "transformer", "bert_tiny")


def build_model(name: str, input_shape: Sequence[int], num_classes: int,
                vocab_size: int | None = None, **options: Any):
    """One of the paper's models (`tfstiffness.models`), returning logits.

    "fc": fully connected 500-300-100; "cnn": the CNN for the data's shape, the paper's three
    3x3 convolutions (16, 32, 32) with 2x2 max-pooling for images [H, W, C], Greydanus'
    MNIST-1D CNN (three stride-2 Conv1D layers of 25 channels, `models.mnist1d_cnn`) for
    signals [L]; "resnet20": ResNet20v1 without batch normalisation; "transformer": the small
    transformer classifier (needs `vocab_size`; `options` go to it, e.g. ``embed_dim``);
    "bert_tiny": keras_hub's BERT classifier in a small configuration with random weights
    (`models.bert_tiny`; needs `vocab_size`; dict inputs, see `model_inputs`).

    Example:
        >>> build_model("cnn", (32, 32, 3), 10).count_params()
        19466
        >>> build_model("cnn", (40,), 10).name
        'mnist1d_cnn'
    """
    from tfstiffness import models

    if name == "fc":
        return models.fully_connected(input_shape, num_classes)
    if name == "cnn":
        if len(input_shape) == 3:
            return models.paper_cnn(input_shape, num_classes)
        if len(input_shape) == 1:
            return models.mnist1d_cnn(int(input_shape[0]), num_classes)
        raise ValueError(f"the cnn needs images [H, W, C] or signals [L], got inputs of shape "
                         f"{tuple(input_shape)}; use --model fc")
    if name == "resnet20":
        if len(input_shape) != 3:
            raise ValueError(f"resnet20 needs images [H, W, C], got inputs of shape "
                             f"{tuple(input_shape)}; use --model fc")
        return models.resnet20v1(input_shape, num_classes)
    if name in ("transformer", "bert_tiny"):
        if vocab_size is None:
            raise ValueError(f"the {name} needs vocab_size (a text data set)")
        if name == "transformer":
            return models.transformer_classifier(vocab_size, int(input_shape[0]), num_classes,
                                                 **options)
        return models.bert_tiny(vocab_size, int(input_shape[0]), num_classes, **options)
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")


def model_inputs(name: str, x: np.ndarray) -> Any:
    """The inputs model `name` takes for data inputs `x` (`data.LoadedData.x`).

    The data's own arrays, except for "bert_tiny", whose keras_hub classifier takes a dict:
    ``token_ids`` (the package tokenizer's ids, 0 = padding), ``padding_mask`` (1 where the
    id is not padding) and ``segment_ids`` (0: one segment).

    Example:
        >>> sorted(model_inputs("bert_tiny", np.array([[5, 3, 0]])))
        ['padding_mask', 'segment_ids', 'token_ids']
    """
    if name != "bert_tiny":
        return x
    ids = np.asarray(x).astype(np.int32)
    return {"token_ids": ids, "padding_mask": (ids != 0).astype(np.int32),
            "segment_ids": np.zeros_like(ids)}
