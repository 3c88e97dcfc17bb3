"""Class stiffness of a small transformer text classifier, with stiffness against distance in
its pooled representation (the paper fine-tuned BERT; this trains a small transformer from
scratch).

Trains the transformer (token and position embeddings, post-LN encoder blocks, masked mean
pooling) with Adam at a constant learning rate and measures class stiffness through training
on fixed class-balanced probes, as the class_stiffness binary does, with distances between
the probes' pooled representations. Default data: synthetic token sequences (2 classes, 1,000
per split), no download. --dataset glue/sst2 or imdb_reviews reads TensorFlow Datasets text
from --data_dir.

Writes config.json, summary.json, results.npz, figures/*.png and tensorboard/ (runs stiffness,
train, validation, written live) under --output_dir. Rerunning the same command resumes after
the last finished epoch.

Example:
  python -m tfstiffness.cli.text_transformer --dataset glue/sst2 --epochs 5 \\
      --probe_per_class 250 --data_dir ~/tensorflow_datasets --output_dir runs/sst2
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from tfstiffness import cli
from tfstiffness.cli import _flags
from tfstiffness.studies import text_transformer as study

FLAGS = flags.FlagValues()
_RUN = study.run_text_transformer
_SYNTHETIC = "synthetic_text"
_flags.define_study(FLAGS, _RUN, "text_transformer", datasets=study.DATASETS,
                    dataset_help="synthetic_text (offline) or a TensorFlow Datasets text set.",
                    probe_splits="from the training and from the validation split")
flags.DEFINE_integer("synthetic_per_split", 1000, "synthetic_text: sequences per split.",
                     lower_bound=2, flag_values=FLAGS)
flags.DEFINE_integer("vocab_size", None, "Vocabulary size, padding and out-of-vocabulary ids "
                     "included; none: 100 for synthetic_text, 20000 for real text.",
                     lower_bound=3, flag_values=FLAGS)
flags.DEFINE_integer("sequence_length", None, "Padded sequence length; none: 32 for "
                     "synthetic_text, 64 for real text.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("embed_dim", study.MODEL_DEFAULTS["embed_dim"], "Transformer width.",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("num_heads", study.MODEL_DEFAULTS["num_heads"], "Attention heads.",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("num_blocks", study.MODEL_DEFAULTS["num_blocks"], "Transformer blocks.",
                     lower_bound=1, flag_values=FLAGS)


def main(argv: Sequence[str]) -> None:
    """Runs the study with the flags' settings."""
    try:
        options = _flags.synthetic_options(FLAGS, FLAGS.dataset, _SYNTHETIC,
                                           {"synthetic_per_split": "num_examples"}) or {}
    except ValueError as err:
        raise cli.CommandError(str(err)) from None
    for name in ("vocab_size", "sequence_length"):
        if FLAGS[name].value is not None:
            options[name] = FLAGS[name].value
    model_options = {name: FLAGS[name].value for name in ("embed_dim", "num_heads",
                                                          "num_blocks")}
    _RUN(**{**_flags.study_kwargs(FLAGS, _RUN), "data_options": options,
            "model_options": model_options})


def run(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (console scripts call it without argv)."""
    cli.run_binary(main, FLAGS, __doc__, argv)


if __name__ == "__main__":
    run()
