"""The stiffness summary of your own saved Keras model, on one process or a cluster.

Loads a model saved as .keras (custom layers: --custom_objects module:Name), a data set
(--dataset and --split, or --inputs file.npz with arrays x, y and optionally x2, y2,
fine_to_coarse, class_names) and the model's compiled loss (or --loss), then measures every
pair of examples block by block without forming the N x N Gram matrix: sign and cosine class
matrices, within/between class stiffness, the super-class contrast when the data has a
fine-to-coarse table, stiffness vs input distance with the critical length xi by both
estimators (crossing and linear fit), the gradient-alignment family, and with --radius each
example's neighbourhood stiffness.

--strategy multi_worker runs on the tf.distribute cluster described by TF_CONFIG: run the
same command on every machine, each with its own TF_CONFIG; worker 0 (the chief) alone writes
--output_dir. On one machine, `python -m tfstiffness.cli.summary_local_cluster --workers 2 --
<these flags>` starts the workers. --strategy tpu is accepted but has not been run here.

Writes config.json, summary.json, results.npz, figures/{class_matrix_cosine,
class_matrix_sign, stiffness_vs_distance}.png and tensorboard/ under --output_dir. A
checkpoint in stages/ is saved every --checkpoint_every seconds: rerunning the same command
resumes (on a cluster: the whole cluster, from the chief's checkpoint).

Example:
  python -m tfstiffness.cli.summary --model my_model.keras --inputs data.npz \\
      --output_dir runs/my_summary --custom_objects my_layers:Scale --radius 0.5
  tfstiffness-summary --model cifar_cnn.keras --dataset cifar100 --split test
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import flags

from tfstiffness import cli
from tfstiffness.cli import _flags
from tfstiffness.studies import saved_model as study

FLAGS = flags.FlagValues()
_RUN = study.run_summary
_flags.define_output_dir(FLAGS, "summary")
flags.DEFINE_string("model", None, "The model, saved with model.save('path.keras').",
                    flag_values=FLAGS)
flags.mark_flag_as_required("model", flag_values=FLAGS)
flags.DEFINE_list("custom_objects", [], "Custom layers, losses or functions the model needs, "
                  "as module:name (comma-separated); a bare module is imported for its "
                  "registered classes.", flag_values=FLAGS)
flags.DEFINE_string("dataset", None, "A data set of tfstiffness.data (e.g. mnist, cifar10, "
                    "cifar100, hierarchical_images); or give --inputs.", flag_values=FLAGS)
flags.DEFINE_string("split", "train", "The split of --dataset.", flag_values=FLAGS)
_flags.define_data_dir(FLAGS)
flags.DEFINE_string("inputs", None, "An .npz file with arrays x, y (class labels) and "
                    "optionally x2, y2 (a second set: cross-set stiffness), fine_to_coarse, "
                    "class_names.", flag_values=FLAGS)
flags.DEFINE_integer("max_examples", None, "Use the first N examples (of each set) only; "
                     "none: all.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_string("loss", None, "The loss: a Keras loss name, a Keras loss config as JSON "
                    "(e.g. '{\"class_name\": \"SparseCategoricalCrossentropy\", \"config\": "
                    "{\"from_logits\": true}}') or module:name; none: the model's compiled "
                    "loss.", flag_values=FLAGS)
flags.DEFINE_integer("block_size", None, "Examples per Gram block (memory grows with its "
                     "square); none: the engine's default.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_enum("strategy", "none", list(study.STRATEGIES), "none: one device; mirrored: "
                  "every local GPU; multi_worker: the cluster of TF_CONFIG (run the same "
                  "command on every worker); tpu: TPUStrategy (not run here).",
                  flag_values=FLAGS)
flags.DEFINE_float("radius", None, "Neighbourhood radius in input units (one set only); "
                   "none: no neighbourhood stiffness.", flag_values=FLAGS)
flags.register_validator("radius", lambda r: r is None or (r > 0 and r != float("inf")),
                         message="--radius must be a finite number > 0", flag_values=FLAGS)
_flags.define_bins(FLAGS, _flags.study_default(_RUN, "bins"))
flags.DEFINE_enum("pairs", _flags.study_default(_RUN, "pairs"), list(study.PAIRS),
                  "Pairs binned by distance: within class, between classes or all.",
                  flag_values=FLAGS)
flags.DEFINE_float("checkpoint_every", _flags.study_default(_RUN, "checkpoint_every"),
                   "Seconds between checkpoints.", lower_bound=0.0, flag_values=FLAGS)
_flags.define_common(FLAGS, "Seed of a synthetic --dataset.")


def main(argv: Sequence[str]) -> None:
    """Runs the summary with the flags' settings."""
    from tfstiffness.distributed import cluster

    kwargs = _flags.study_kwargs(FLAGS, _RUN)
    kwargs["custom_objects"] = list(FLAGS.custom_objects)
    try:
        _RUN(**kwargs)
    except cluster.WorkerLostError as err:  # one line, as the package's other refusals
        sys.stderr.write(f"summary: error: {err}\n")
        sys.exit(1)


def run(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (console scripts call it without argv)."""
    cli.run_binary(main, FLAGS, __doc__, argv)


if __name__ == "__main__":
    run()
