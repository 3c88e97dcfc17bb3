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
_flags.define_config(FLAGS, study.SummaryConfig, "summary")


def main(argv: Sequence[str]) -> None:
    """Runs the summary with the flags' settings."""
    from tfstiffness.distributed import cluster

    try:
        study.run_summary(**_flags.config_kwargs(FLAGS, study.SummaryConfig))
    except cluster.WorkerLostError as err:  # one line, as the package's other refusals
        sys.stderr.write(f"summary: error: {err}\n")
        sys.exit(1)


def run(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (console scripts call it without argv)."""
    cli.run_binary(main, FLAGS, __doc__, argv)


if __name__ == "__main__":
    run()
