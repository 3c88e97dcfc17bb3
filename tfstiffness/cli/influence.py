"""TracIn influence: which training examples helped or hurt each test example (Pruthi et al.
2020), and finding flipped labels by self-influence.

Trains a classifier with Adam at a constant learning rate (mini-batches, reshuffled each epoch),
saving the weights after every epoch, or takes your checkpoints (--checkpoints). Then computes
TracIn over the checkpoints, exactly (per-example gradients by tfstiffness' engine): every
training example against a fixed probe of --num_test test examples, each probe example's
--top_k proponents and opponents, and each training example's self-influence with its
ranking. With --flip_labels f (default 0.1 when training), that share of training labels is
flipped before training (deterministic by --seed) and the ROC AUC of self-influence for
finding them is reported, next to the AUC of the final per-example loss.

Default: MNIST-1D (generated offline), the MLP 40-100-100-10, 50 epochs, 10 % of the labels
flipped, 100 test examples: about a minute on 2 cores. --dataset mnist, fashion_mnist, cifar10
or cifar100 reads a TensorFlow Datasets set from --data_dir.

Writes config.json, summary.json, results.npz, checkpoints/ (when training), figures/*.png and
tensorboard/ (runs train and test live, influence, figures) under --output_dir. Rerunning
the same command resumes after the last finished epoch.

Example:
  python -m tfstiffness.cli.influence --output_dir runs/influence
  python -m tfstiffness.cli.influence --model mlp --kind cosine \\
      --checkpoints runs/influence/checkpoints/epoch_025.weights.h5,runs/influence/checkpoints/epoch_050.weights.h5 \\
      --output_dir runs/influence_cosine
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from absl import flags

from tfstiffness import cli
from tfstiffness.cli import _flags
from tfstiffness.studies import influence as study

FLAGS = flags.FlagValues()
_RUN = study.run_influence


def _default(name):
    return _flags.study_default(_RUN, name)


_flags.define_output_dir(FLAGS, "influence")
_flags.define_dataset(FLAGS, _default("dataset"), study.DATASETS,
                      "mnist1d (generated offline), a TensorFlow Datasets image set, or a "
                      "synthetic set (hierarchical_images, gaussian_blobs).")
_flags.define_data_dir(FLAGS)
flags.DEFINE_enum("model", _default("model"), list(study.MODELS),
                  "mlp: fully connected 100-100; mnist1d_cnn: Greydanus' CNN for 1-D signals; "
                  "fc: fully connected 500-300-100; cnn: three 3x3 convolutions (16, 32, 32) "
                  "with max-pooling (on 1-D signals: mnist1d_cnn). With .weights.h5 "
                  "checkpoints: the architecture they were saved from.", flag_values=FLAGS)
_flags.define_epochs(FLAGS, _default("epochs"))
_flags.define_learning_rate(FLAGS, _default("learning_rate"))
_flags.define_batch_size(FLAGS, _default("batch_size"))
_flags.define_max_examples(FLAGS, validation=False)
flags.DEFINE_integer("num_test", _default("num_test"), "Test examples in the probe, drawn "
                     "from the test split by --seed.", lower_bound=1,
                     upper_bound=study.MAX_NUM_TEST, flag_values=FLAGS)
flags.DEFINE_integer("top_k", _default("top_k"), "Proponents and opponents kept per test "
                     "example (the figures draw up to 5).", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_enum("kind", _default("kind"), list(study.KINDS), "TracIn of gradient dot "
                  "products, or of their cosines.", flag_values=FLAGS)
flags.DEFINE_float("flip_labels", None, "Share of training labels to flip before training, "
                   "in [0, 1); none: 0.1 when training, 0 with --checkpoints.",
                   flag_values=FLAGS)
flags.register_validator("flip_labels", lambda v: v is None or (math.isfinite(v)
                                                                and 0 <= v < 1),
                         message="--flip_labels must be a share in [0, 1), e.g. 0.1",
                         flag_values=FLAGS)
flags.DEFINE_list("checkpoints", None, "Instead of training: comma-separated .keras files, or "
                  ".weights.h5 files of --model (the loss: a .keras model's compiled loss, "
                  "else cross-entropy on logits).", flag_values=FLAGS)
flags.DEFINE_list("checkpoint_learning_rates", None, "With --checkpoints: the learning rate "
                  "eta of each, comma-separated; none: 1 each.", flag_values=FLAGS)
flags.register_validator(
    "checkpoint_learning_rates",
    lambda v: v is None or all(_finite_non_negative(part) for part in v),
    message="--checkpoint_learning_rates must be comma-separated finite numbers >= 0",
    flag_values=FLAGS)
_flags.define_common(FLAGS, "Seed of the flipped labels, the test probe, initial weights and "
                     "batch order.")


def _finite_non_negative(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value >= 0


def main(argv: Sequence[str]) -> None:
    """Runs the study with the flags' settings."""
    kwargs = _flags.study_kwargs(FLAGS, _RUN)
    if kwargs["checkpoint_learning_rates"] is not None:
        kwargs["checkpoint_learning_rates"] = [float(v) for v in
                                               kwargs["checkpoint_learning_rates"]]
    _RUN(**kwargs)


def run(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (console scripts call it without argv)."""
    cli.run_binary(main, FLAGS, __doc__, argv)


if __name__ == "__main__":
    run()
