"""Class stiffness of a small transformer text classifier, with stiffness vs distance in
its pooled representation (`studies.run_text_transformer`).

Usage:
    python -m tfstiffness.cli.text_transformer --output_dir runs/text_transformer
    tfstiffness-text-transformer --dataset glue/sst2 --epochs 5 --probe_per_class 250
    tfstiffness-text-transformer --dataset imdb_reviews --max_train_examples 10000

Defaults: ``synthetic_text`` (2 classes, 1,000 sequences per split), a transformer of 2
blocks, width 32, 2 heads; Adam 1e-3, batch 32, 6 epochs, probes of 100 per class.
``glue/sst2`` and ``imdb_reviews`` are downloaded by TensorFlow Datasets into --data_dir.

Writes config.json, summary.json, results.npz, figures/{curves, class_matrix,
stiffness_vs_distance}.png, stages/ and tensorboard/ under --output_dir; a rerun with the
same flags resumes after the last finished epoch; other flags are refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import app, flags

from tfstiffness import cli, studies
from tfstiffness.cli import _flags

flags.DEFINE_integer("embed_dim", None, "Transformer width (default 32).")
flags.DEFINE_integer("num_blocks", None, "Transformer blocks (default 2).")
flags.DEFINE_integer("vocab_size", None, "Text vocabulary size, padding and out-of-vocabulary "
                     "ids included (default: 100 synthetic, 20000 real).")
flags.DEFINE_integer("sequence_length", None, "Padded sequence length (default: 32 synthetic, "
                     "64 real).")

# Show the shared flags in --help too, not only under --helpfull.
flags.adopt_module_key_flags(cli)
flags.adopt_module_key_flags(_flags)

FLAGS = flags.FLAGS


def main(argv: Sequence[str]) -> None:
    """Runs the study with the flags' settings."""
    kwargs = _flags.common_kwargs("text_transformer")
    if kwargs.pop("model", "transformer") != "transformer":
        raise app.UsageError("text_transformer trains the transformer; --model must be unset")
    model_options = {name: _flags.value(name) for name in ("embed_dim", "num_blocks")
                     if _flags.value(name) is not None}
    data_options = _flags.data_options(kwargs.get("dataset"), "synthetic_text") or {}
    for name in ("vocab_size", "sequence_length"):
        if _flags.value(name) is not None:
            data_options[name] = _flags.value(name)
    cli.run_study(argv, studies.run_text_transformer, data_options=data_options,
                  model_options=model_options, **kwargs)


def run() -> None:
    """Console-script entry point (console scripts call it without argv)."""
    app.run(main)


if __name__ == "__main__":
    run()
