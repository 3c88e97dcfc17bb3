"""Stiffness and the critical length xi across learning rates
(`studies.run_learning_rate_study`).

Usage:
    python -m tfstiffness.cli.learning_rate_study --output_dir runs/learning_rate_study
    tfstiffness-learning-rate-study --learning_rates 1e-4,1e-3,1e-2 --epochs 20
    tfstiffness-learning-rate-study --dataset mnist --model fc --max_train_examples 10000 \
        --eval_epochs 1,2,3,5,10,20 --epochs 20

The learning rates are given as a list with ``--learning_rates`` (``--learning_rate``, the
shared single-value flag of the other binaries, runs a study of that one rate).

Defaults: synthetic ``gaussian_blobs`` (5 overlapping classes in 20 dimensions, 100 examples
per class and split), the paper's fully-connected net, learning rates 1e-4, 1e-3, 1e-2, 10 epochs,
measured every epoch, a training probe of 50 examples per class.

Writes config.json, summary.json, results.npz, figures/{by_epoch, by_train_loss,
stiffness_vs_distance}.png, stages/ and tensorboard/ (one HParams run per learning rate)
under --output_dir; a rerun with the same flags resumes after the last finished epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import app, flags

from tfstiffness import cli, studies
from tfstiffness.cli import _flags

flags.DEFINE_list("learning_rates", None, "Adam learning rates, one run each "
                  "(default 1e-4,1e-3,1e-2).")
flags.DEFINE_integer("loss_levels", None, "Common training-loss levels of the equal-loss "
                     "comparison (default 8).")

# Show the shared flags in --help too, not only under --helpfull.
flags.adopt_module_key_flags(cli)
flags.adopt_module_key_flags(_flags)

FLAGS = flags.FLAGS


def main(argv: Sequence[str]) -> None:
    """Runs the study with the flags' settings."""
    kwargs = _flags.common_kwargs("learning_rate_study")
    if _flags.value("learning_rates") is not None and FLAGS.learning_rate is not None:
        raise app.UsageError("give either --learning_rates or --learning_rate, not both")
    try:
        if _flags.value("learning_rates") is not None:
            kwargs["learning_rates"] = [float(lr) for lr in _flags.value("learning_rates")]
        elif FLAGS.learning_rate is not None:
            kwargs["learning_rates"] = [FLAGS.learning_rate]
    except ValueError as err:
        raise app.UsageError(f"--learning_rates: {err}") from None
    kwargs.pop("learning_rate", None)
    if _flags.value("loss_levels") is not None:
        kwargs["loss_levels"] = _flags.value("loss_levels")
    cli.run_study(
        argv, studies.run_learning_rate_study,
        data_options=_flags.data_options(kwargs.get("dataset"), "gaussian_blobs"),
        **kwargs)


def run() -> None:
    """Console-script entry point (console scripts call it without argv)."""
    app.run(main)


if __name__ == "__main__":
    run()
