"""A transformer text classifier (the paper fine-tuned BERT; here a small transformer trained
from scratch): class stiffness through training, and stiffness against distance measured in
the model's pooled representation.

The class study (`class_stiffness.class_study`) with `models.transformer_classifier`
(`model_options`, default embed_dim 32, 2 heads, ff_dim 64, 2 blocks). The distances of the
stiffness-vs-distance curves and xi are those between the probes' pooled representations
(layer ``"pooled"``: the masked mean of the last block's outputs) at each measured epoch,
since distances between token-id vectors mean little (`pooled_representation`).

Default data: ``synthetic_text`` (2 classes, 1,000 sequences per split, vocabulary 100,
length 32). ``glue/sst2`` and ``imdb_reviews`` come from tfds; their vocabulary
(`data_options` ``vocab_size``, default 20000) is adapted on the training split, and their
sequences are cut to 64 tokens to keep attention cheap on a CPU.

Example:
    >>> import tempfile
    >>> s = run_text_transformer(tempfile.mkdtemp(), epochs=1, probe_per_class=4,
    ...                          eval_epochs=(), data_options={"num_examples": 40},
    ...                          model_options={"embed_dim": 8, "num_heads": 2,
    ...                                         "ff_dim": 8, "num_blocks": 1},
    ...                          verbose=False)
    >>> s["results"]["distance_space"]
    'pooled'
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfstiffness.studies.class_stiffness import class_study

__all__ = ["DATASETS", "MODEL_DEFAULTS", "pooled_representation", "run_text_transformer"]

#: Text data sets of `tfstiffness.data`.
DATASETS = ("synthetic_text", "glue/sst2", "imdb_reviews")
#: The transformer's size (options of `models.transformer_classifier`).
MODEL_DEFAULTS = {"embed_dim": 32, "num_heads": 2, "ff_dim": 64, "num_blocks": 2}
# model -> its encoder up to the pooled layer, built once per model.
_ENCODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def pooled_representation(model: Any, x: np.ndarray) -> np.ndarray:
    """The output of the model's ``"pooled"`` layer for inputs `x`, in inference mode."""
    import keras

    encoder = _ENCODERS.get(model)
    if encoder is None:
        encoder = _ENCODERS[model] = keras.Model(model.input, model.get_layer("pooled").output)
    return np.asarray(encoder(x, training=False))


def run_text_transformer(
    output_dir: str,
    dataset: str = "synthetic_text",
    epochs: int = 6,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    probe_per_class: int = 100,
    eval_epochs: Sequence[int] | str | None = "log",
    seed: int = 0,
    data_dir: str | None = None,
    method: str = "auto",
    max_train_examples: int | None = None,
    max_val_examples: int | None = None,
    data_options: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
    bins: int = 20,
    verbose: bool = True,
) -> dict[str, Any]:
    """The transformer study; arguments as `class_stiffness.run_class_stiffness`, plus
    `model_options` for the transformer (over `MODEL_DEFAULTS`).

    Returns:
        The summary (what ``summary.json`` holds).
    """
    model_options = {**MODEL_DEFAULTS, **dict(model_options or {})}
    data_options = dict(data_options or {})
    if dataset in ("glue/sst2", "imdb_reviews"):
        data_options.setdefault("sequence_length", 64)
    return class_study(
        "text_transformer", output_dir, dataset=dataset, model="transformer", epochs=epochs,
        learning_rate=learning_rate, batch_size=batch_size, probe_per_class=probe_per_class,
        eval_epochs=eval_epochs, seed=seed, data_dir=data_dir, method=method,
        max_train_examples=max_train_examples, max_val_examples=max_val_examples,
        data_options=data_options, model_options=model_options, bins=bins,
        distance_space="pooled", representation=pooled_representation, verbose=verbose)
