"""A transformer text classifier (the paper fine-tuned BERT; here a small transformer, or
keras_hub's BERT classifier in a small configuration, trained from scratch): class stiffness
through training, and stiffness against distance measured in the model's pooled
representation.

The class study (`class_stiffness.class_study`) with one of two models:

- ``model="transformer"``: `models.transformer_classifier` (`model_options`, default
  embed_dim 32, 2 heads, ff_dim 64, 2 blocks); its pooled representation is the layer
  ``"pooled"`` (the masked mean of the last block's outputs).
- ``model="bert_tiny"``: `models.bert_tiny`, keras_hub's ``BertTextClassifier`` with
  ``preprocessor=None`` on a ``BertBackbone`` of `BERT_TINY_DEFAULTS` (2 layers, 2 heads,
  hidden 64, intermediate 128), randomly initialised, its vocabulary the data's (the
  package's own tokenizer: id 0 is padding) and its sequence length the data's. It takes the
  dict inputs of keras_hub (`model_factory.model_inputs`: ``token_ids``, ``padding_mask`` = ids
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

import dataclasses
import os
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from tfstiffness.errors import StudyInputError
from tfstiffness.studies import seeds as seeds_lib
from tfstiffness.studies.class_stiffness import (
    ClassStiffnessConfig,
    class_study,
    seed_figures,
    seed_headline,
    seed_tensorboard,
)
from tfstiffness.studies.config import BOTH_SPLITS, parameter

__all__ = ["BERT_TINY_DEFAULTS", "DATASETS", "MODELS", "MODEL_DEFAULTS", "TextTransformerConfig",
           "pooled_representation", "run_text_transformer"]

#: Text data sets of `tfstiffness.data`.
DATASETS = ("synthetic_text", "glue/sst2", "imdb_reviews")
#: The models of this study.
MODELS = ("transformer", "bert_tiny")
#: The transformer's size (options of `models.transformer_classifier`).
MODEL_DEFAULTS = {"embed_dim": 32, "num_heads": 2, "ff_dim": 64, "num_blocks": 2}
#: bert_tiny's size (options of `models.bert_tiny`, keras_hub's ``BertBackbone``).
BERT_TINY_DEFAULTS = {"num_layers": 2, "num_heads": 2, "hidden_dim": 64,
                      "intermediate_dim": 128}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TextTransformerConfig(ClassStiffnessConfig):
    """The transformer study's parameters: the class study's with its own defaults, plus
    `model_options` (over `MODEL_DEFAULTS` or `BERT_TINY_DEFAULTS`). Distances are
    measured in the pooled representation; real text is cut to 64 tokens unless
    ``data_options`` say otherwise."""

    STUDY = "text_transformer"
    DATA_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    DISTANCE_SPACE = "pooled"

    dataset: str = parameter("synthetic_text", "synthetic_text (offline) or a TensorFlow "
                             "Datasets text set.", flag="enum", choices=DATASETS)
    model: str = parameter("transformer", flag="model", choices=MODELS)
    epochs: int = parameter(6, "Training epochs.", flag="integer", lower_bound=1)
    probe_per_class: int = parameter(100, f"Probe examples per class, {BOTH_SPLITS}.",
                                     flag="integer", lower_bound=1)
    model_options: Mapping[str, Any] | None = parameter(None)

    def check(self) -> None:
        if self.model not in MODELS:
            raise StudyInputError(f"model: expected one of {MODELS}, got {self.model!r}")
        if self.model == "bert_tiny":
            from tfstiffness import models

            models.keras_hub_module()  # Before anything is loaded or written.
        super().check()

    def merged_data_options(self) -> dict[str, Any]:
        options = super().merged_data_options()
        if self.dataset in ("glue/sst2", "imdb_reviews"):
            options.setdefault("sequence_length", 64)
        return options

    def merged_model_options(self) -> dict[str, Any]:
        defaults = MODEL_DEFAULTS if self.model == "transformer" else BERT_TINY_DEFAULTS
        return {**defaults, **dict(self.model_options or {})}

    def seed_kwargs(self) -> dict[str, Any]:
        return {**super().seed_kwargs(), "data_options": self.merged_data_options(),
                "model_options": self.merged_model_options()}


# model -> its encoder up to the pooled layer, built once per model.
_ENCODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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


def _seed_figures(study: str, stacked: Mapping[str, np.ndarray],
                  config: Mapping[str, Any]) -> dict[str, Any]:
    """`class_stiffness.seed_figures` with distances in the pooled representation."""
    return seed_figures(study, stacked, {**config, "distance_space": "pooled"})


def _run_once(output_dir: str, config: TextTransformerConfig, *, verbose: bool,
              tensorboard_dir: str | os.PathLike | None) -> dict[str, Any]:
    """The class study of one seed, distances in the pooled representation."""
    return class_study(output_dir, config, representation=pooled_representation,
                       verbose=verbose, tensorboard_dir=tensorboard_dir)


# The entry point, from the config.
run_text_transformer = seeds_lib.study_function(
    TextTransformerConfig, _run_once, name="run_text_transformer",
    description="""The transformer study (see the module docstring): the class study with
    the fields of `TextTransformerConfig`: `model` "transformer" or "bert_tiny" (which needs
    keras_hub: without it the study is refused, saying how to install it) and
    `model_options` for it (over `MODEL_DEFAULTS` or `BERT_TINY_DEFAULTS`).""",
    figures=_seed_figures, tensorboard=seed_tensorboard, headline=seed_headline)
