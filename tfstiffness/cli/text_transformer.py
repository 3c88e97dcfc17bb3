"""Class stiffness of a small transformer text classifier, with stiffness against distance in
its pooled representation (the paper fine-tuned BERT; this trains a small transformer, or
keras_hub's BERT classifier in a small configuration, from scratch).

Trains the model with Adam at a constant learning rate and measures class stiffness through
training on fixed class-balanced probes, as the class_stiffness binary does, with distances
between the probes' pooled representations. --model transformer (default): token and
position embeddings, post-LN encoder blocks, masked mean pooling. --model bert_tiny:
keras_hub's BertTextClassifier (preprocessor=None) on a BertBackbone of 2 layers, 2 heads,
hidden 64, intermediate 128, random weights, fed the package tokenizer's ids as keras_hub's
dict inputs (token_ids, padding_mask, segment_ids); its pooled representation is the
backbone's pooled_output. bert_tiny needs keras_hub: pip install keras-hub. --embed_dim,
--num_heads and --num_blocks size either model (for bert_tiny: hidden_dim, num_heads,
num_layers, with intermediate 2 x hidden). Default data: synthetic token sequences (2
classes, 1,000 per split), no download. --dataset glue/sst2 or imdb_reviews reads TensorFlow
Datasets text from --data_dir.

Writes config.json, summary.json, results.npz, figures/*.png and tensorboard/ (runs stiffness,
train, validation, written live) under --output_dir. Rerunning the same command resumes after
the last finished epoch.

Example:
  python -m tfstiffness.cli.text_transformer --model bert_tiny --output_dir runs/bert_tiny
  python -m tfstiffness.cli.text_transformer --dataset glue/sst2 --epochs 5 \\
      --probe_per_class 250 --data_dir ~/tensorflow_datasets --output_dir runs/sst2
"""

from __future__ import annotations

from typing import Any

from absl import flags

from tfstiffness import cli
from tfstiffness.cli import _flags
from tfstiffness.studies import text_transformer as study

_SYNTHETIC = "synthetic_text"
# Flag -> option of each model.
_SIZE_OPTIONS = {"transformer": {"embed_dim": "embed_dim", "num_heads": "num_heads",
                                 "num_blocks": "num_blocks"},
                 "bert_tiny": {"embed_dim": "hidden_dim", "num_heads": "num_heads",
                               "num_blocks": "num_layers"}}


def _define_text_flags(fv: flags.FlagValues) -> None:
    """The data's and the models' size flags (gathered into data_options, model_options)."""
    flags.DEFINE_integer("synthetic_per_split", 1000, "synthetic_text: sequences per split.",
                         lower_bound=2, flag_values=fv)
    flags.DEFINE_integer("vocab_size", None, "Vocabulary size, padding and out-of-vocabulary "
                         "ids included; none: 100 for synthetic_text, 20000 for real text.",
                         lower_bound=3, flag_values=fv)
    flags.DEFINE_integer("sequence_length", None, "Padded sequence length; none: 32 for "
                         "synthetic_text, 64 for real text.", lower_bound=1, flag_values=fv)
    defaults, bert = study.MODEL_DEFAULTS, study.BERT_TINY_DEFAULTS
    flags.DEFINE_integer("embed_dim", None, f"Width; none: {defaults['embed_dim']} for "
                         f"transformer, {bert['hidden_dim']} for bert_tiny.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("num_heads", None, f"Attention heads; none: {defaults['num_heads']} "
                         f"for transformer, {bert['num_heads']} for bert_tiny.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("num_blocks", None, "Encoder blocks (layers); none: "
                         f"{defaults['num_blocks']} for transformer, {bert['num_layers']} for "
                         "bert_tiny.", lower_bound=1, flag_values=fv)


def _options(fv: flags.FlagValues) -> dict[str, Any]:
    """data_options and model_options from the text flags."""
    options = _flags.synthetic_options(fv, fv["dataset"].value, _SYNTHETIC,
                                       {"synthetic_per_split": "num_examples"}) or {}
    for name in ("vocab_size", "sequence_length"):
        if fv[name].value is not None:
            options[name] = fv[name].value
    model = fv["model"].value
    model_options = {option: fv[flag].value for flag, option in _SIZE_OPTIONS[model].items()
                     if fv[flag].value is not None}
    if model == "bert_tiny" and "hidden_dim" in model_options:
        model_options["intermediate_dim"] = 2 * model_options["hidden_dim"]
    return {"data_options": options, "model_options": model_options}


FLAGS, main, run = cli.study_binary(study.TextTransformerConfig, study.run_text_transformer,
                                    "text_transformer", __doc__, define=_define_text_flags,
                                    options=_options)

if __name__ == "__main__":
    run()
