"""Walker's neighbourhood stiffness (2023) on the two-arcs grid.

Measures an MLP 2-64-64-2 at initialisation and after training with plain SGD (mini-batches,
reshuffled each epoch) on all points of a 50 x 50 grid on [-1, 1]^2 labelled by two
interlocking arcs: each point's mean cosine stiffness to its neighbours within each radius,
and how well low values pick out the points near the true class boundary (ROC AUC). Offline,
about half a minute on 2 CPU cores.

Writes config.json, summary.json, results.npz, figures/neighbourhoods.png, stages/ and
tensorboard/ (runs stiffness, train, figures) under --output_dir. Rerunning the same command
resumes after the last finished stage.

Example:
  python -m tfstiffness.cli.neighbourhoods --radii 0.05,0.1,0.15 --epochs 30 \\
      --output_dir runs/neighbourhoods_30
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from tfstiffness import cli
from tfstiffness.cli import _flags
from tfstiffness.studies import neighbourhoods as study

FLAGS = flags.FlagValues()
_RUN = study.run_neighbourhoods
_flags.define_output_dir(FLAGS, "neighbourhoods")
flags.DEFINE_integer("grid_n", _flags.study_default(_RUN, "grid_n"), "Grid points per side.",
                     lower_bound=2, flag_values=FLAGS)
_flags.define_int_list(FLAGS, "widths", _flags.study_default(_RUN, "widths"),
                       "Hidden widths of the MLP.", separator=None)
_flags.define_epochs(FLAGS, _flags.study_default(_RUN, "epochs"))
_flags.define_learning_rate(FLAGS, _flags.study_default(_RUN, "learning_rate"), "SGD")
_flags.define_batch_size(FLAGS, _flags.study_default(_RUN, "batch_size"), "SGD")
_flags.define_float_list(FLAGS, "radii", _flags.study_default(_RUN, "radii"),
                         "Neighbourhood radii, in input units (the grid step is "
                         "2 / (grid_n - 1)).")
flags.DEFINE_enum("weighting", _flags.study_default(_RUN, "weighting"), list(study.WEIGHTINGS),
                  "Neighbour weights: uniform, or gaussian in the distance.", flag_values=FLAGS)
flags.DEFINE_float("within", _flags.study_default(_RUN, "within"), "Distance to the true "
                   "boundary that counts as 'on the boundary' for the AUC.", lower_bound=0,
                   flag_values=FLAGS)
_flags.define_common(FLAGS, "Seed of the initial weights and batch order.")
_flags.define_seeds(FLAGS)


def main(argv: Sequence[str]) -> None:
    """Runs the study with the flags' settings."""
    kwargs = _flags.study_kwargs(FLAGS, _RUN)
    kwargs["radii"] = [float(r) for r in FLAGS.radii]
    kwargs["widths"] = [int(w) for w in FLAGS.widths]
    _RUN(**kwargs)


def run(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (console scripts call it without argv)."""
    cli.run_binary(main, FLAGS, __doc__, argv)


if __name__ == "__main__":
    run()
