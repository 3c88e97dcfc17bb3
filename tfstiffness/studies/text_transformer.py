"""A transformer text classifier (the paper fine-tuned BERT; here a small transformer, or
keras_hub's BERT classifier in a small configuration, trained from scratch): class stiffness
through training, and stiffness against distance measured in the model's pooled
representation.

The class study (`class_stiffness.class_study`) with one of two models:

- ``model="transformer"``: `models.transformer_classifier` (`model_options`, default
  embed_dim 32, 2 heads, ff_dim 64, 2 blocks); its pooled representation is the layer
  ``"pooled"`` (the masked mean of the last block's outputs).
- ``model="bert_tiny"``: `bert_tiny`, keras_hub's ``BertTextClassifier`` with
  ``preprocessor=None`` on a ``BertBackbone`` of `BERT_TINY_DEFAULTS` (2 layers, 2 heads,
  hidden 64, intermediate 128), randomly initialised, its vocabulary the data's (the
  package's own tokenizer: id 0 is padding) and its sequence length the data's. It takes the
  dict inputs of keras_hub (`runner.model_inputs`: ``token_ids``, ``padding_mask`` = ids
  != 0, ``segment_ids`` = 0), which the engine handles as they are. Its pooled
  representation is the backbone's ``"pooled_output"`` (the tanh pooler on the first token,
  what the classifier's head reads). keras_hub is not a runtime dependency of the package:
  ``pip install keras-hub``.

The distances of the stiffness-vs-distance curves and xi are those between the probes'
pooled representations at each measured epoch (`pooled_representation`), for both models:
the same space as the head reads, so the two models compare. (The engine's default for
all-integer dict inputs, token overlap, would measure the text, not the model: it does not
change as the model trains.)

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

import os
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfstiffness.studies import runner
from tfstiffness.studies import seeds as seeds_lib
from tfstiffness.studies.class_stiffness import (
    BOOTSTRAP_SAMPLES,
    class_study,
    seed_headline,
    seed_tensorboard,
)

__all__ = ["BERT_TINY_DEFAULTS", "DATASETS", "MODELS", "MODEL_DEFAULTS", "bert_tiny",
           "pooled_representation", "run_text_transformer"]

#: Text data sets of `tfstiffness.data`.
DATASETS = ("synthetic_text", "glue/sst2", "imdb_reviews")
#: The models of this study.
MODELS = ("transformer", "bert_tiny")
#: The transformer's size (options of `models.transformer_classifier`).
MODEL_DEFAULTS = {"embed_dim": 32, "num_heads": 2, "ff_dim": 64, "num_blocks": 2}
#: bert_tiny's size (options of ``keras_hub.models.BertBackbone``).
BERT_TINY_DEFAULTS = {"num_layers": 2, "num_heads": 2, "hidden_dim": 64,
                      "intermediate_dim": 128}
#: What to do when keras_hub is missing.
KERAS_HUB_MISSING = ("--model bert_tiny needs keras_hub, which tfstiffness does not install: "
                     "pip install keras-hub (it installs beside TensorFlow 2.21 without "
                     "changing it), or pip install -e '.[test]' in a clone")
# model -> its encoder up to the pooled layer, built once per model.
_ENCODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _keras_hub():
    try:
        import keras_hub
    except ImportError:
        raise runner.StudyInputError(KERAS_HUB_MISSING) from None
    return keras_hub


def bert_tiny(vocab_size: int, sequence_length: int, num_classes: int, **options: Any):
    """keras_hub's BERT classifier in a small configuration, randomly initialised.

    ``BertTextClassifier(backbone=BertBackbone(...), preprocessor=None)``: it takes the dict
    inputs ``token_ids``, ``padding_mask`` and ``segment_ids`` [batch, sequence_length]
    (`runner.model_inputs`) and returns logits. Nothing is downloaded.

    Args:
        vocab_size: Vocabulary size of the data's tokenizer (id 0 is padding).
        sequence_length: The data's padded sequence length.
        num_classes: Number of output logits.
        **options: ``BertBackbone`` options over `BERT_TINY_DEFAULTS` (``num_layers``,
            ``num_heads``, ``hidden_dim``, ``intermediate_dim``, ``dropout``, ...).

    Raises:
        runner.StudyInputError: keras_hub is not installed (saying how to install it).

    Example:
        >>> model = bert_tiny(100, 16, 2)  # doctest: +SKIP
        >>> sorted(model.input)  # doctest: +SKIP
        ['padding_mask', 'segment_ids', 'token_ids']
    """
    keras_hub = _keras_hub()
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=int(vocab_size), max_sequence_length=int(sequence_length),
        **{**BERT_TINY_DEFAULTS, **options})
    return keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=int(num_classes),
                                               preprocessor=None)


def pooled_representation(model: Any, x: Any) -> np.ndarray:
    """The pooled representation of inputs `x`, in inference mode: the output of the model's
    ``"pooled"`` layer (the package's transformer), or a keras_hub classifier's backbone
    ``"pooled_output"`` (bert_tiny)."""
    import keras

    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        return np.asarray(backbone(x, training=False)["pooled_output"])
    encoder = _ENCODERS.get(model)
    if encoder is None:
        encoder = _ENCODERS[model] = keras.Model(model.input, model.get_layer("pooled").output)
    return np.asarray(encoder(x, training=False))


def run_text_transformer(
    output_dir: str,
    dataset: str = "synthetic_text",
    model: str = "transformer",
    epochs: int = 6,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    probe_per_class: int = 100,
    eval_epochs: Sequence[int] | str | None = "log",
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    data_dir: str | None = None,
    method: str = "auto",
    max_train_examples: int | None = None,
    max_val_examples: int | None = None,
    data_options: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
    bins: int = 20,
    bootstrap_samples: int = BOOTSTRAP_SAMPLES,
    verbose: bool = True,
    tensorboard_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The transformer study; arguments as `class_stiffness.run_class_stiffness`, plus
    `model` ("transformer" or "bert_tiny") and `model_options` for it (over
    `MODEL_DEFAULTS` or `BERT_TINY_DEFAULTS`).

    Returns:
        The summary (what ``summary.json`` holds).

    Raises:
        runner.StudyInputError: an unknown model, bert_tiny without keras_hub (saying how to
            install it), or as `run_class_stiffness`.
    """
    if model not in MODELS:
        raise runner.StudyInputError(f"model: expected one of {MODELS}, got {model!r}")
    if model == "bert_tiny":
        _keras_hub()  # Before anything is loaded or written.
    defaults = MODEL_DEFAULTS if model == "transformer" else BERT_TINY_DEFAULTS
    model_options = {**defaults, **dict(model_options or {})}
    data_options = dict(data_options or {})
    if dataset in ("glue/sst2", "imdb_reviews"):
        data_options.setdefault("sequence_length", 64)
    kwargs = {"dataset": dataset, "model": model, "epochs": epochs, "learning_rate": learning_rate,
              "batch_size": batch_size, "probe_per_class": probe_per_class,
              "eval_epochs": eval_epochs, "data_dir": data_dir, "method": method,
              "max_train_examples": max_train_examples, "max_val_examples": max_val_examples,
              "data_options": data_options, "model_options": model_options, "bins": bins,
              "bootstrap_samples": bootstrap_samples}
    if seeds is not None:
        return seeds_lib.run_seeds(run_text_transformer, output_dir, seeds,
                                   study="text_transformer", kwargs=kwargs,
                                   figures=_seed_figures, tensorboard=seed_tensorboard,
                                   headline=seed_headline, verbose=verbose)
    return class_study(
        "text_transformer", output_dir, **kwargs, seed=seed, distance_space="pooled",
        representation=pooled_representation, verbose=verbose,
        tensorboard_dir=tensorboard_dir)


def _seed_figures(study: str, stacked: Mapping[str, np.ndarray],
                  config: Mapping[str, Any]) -> dict[str, Any]:
    """`class_stiffness.seed_figures` with distances in the pooled representation."""
    from tfstiffness.studies.class_stiffness import seed_figures

    return seed_figures(study, stacked, {**config, "distance_space": "pooled"})
