"""Walker's neighbourhood-stiffness study on the two-arcs grid (`walker.run_neighbourhoods`).

Usage:
    python -m tfstiffness.cli.neighbourhoods --output_dir runs/neighbourhoods
    tfstiffness-neighbourhoods --radii 0.05,0.1,0.15 --epochs 30

Writes config.json, summary.json, results.npz, figures/neighbourhoods.png, stages/ and
tensorboard/ under --output_dir; a rerun with the same flags resumes after the last stage.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import app, flags

from tfstiffness import cli, walker

flags.DEFINE_list("radii", ["0.05", "0.10", "0.15"], "Neighbourhood radii (input units).")
flags.DEFINE_list("widths", ["64", "64"], "Hidden widths of the MLP.")
flags.DEFINE_enum("weighting", "uniform", ["uniform", "gaussian"], "Neighbour weights.")
flags.DEFINE_float("within", 0.1, "Distance to the true boundary that counts as 'on the "
                   "boundary' for the AUC.")

# Show the shared flags in --help too, not only under --helpfull.
flags.adopt_module_key_flags(cli)

FLAGS = flags.FLAGS


def main(argv: Sequence[str]) -> None:
    """Runs the study with the flags' settings."""
    cli.run_study(
        argv, walker.run_neighbourhoods,
        radii=[float(r) for r in FLAGS.radii],
        widths=[int(w) for w in FLAGS.widths],
        weighting=FLAGS.weighting,
        within=FLAGS.within,
        **cli.common_kwargs("neighbourhoods"),
    )


def run() -> None:
    """Console-script entry point (console scripts call it without argv)."""
    app.run(main)


if __name__ == "__main__":
    run()
