"""Class stiffness through training (`studies.run_class_stiffness`).

Usage:
    python -m tfstiffness.cli.class_stiffness --output_dir runs/class_stiffness
    tfstiffness-class-stiffness --dataset mnist --model fc --epochs 20 --eval_epochs 1,2,5,10
    tfstiffness-class-stiffness --dataset cifar10 --model resnet20 --learning_rate 1e-4

Defaults: synthetic images (``hierarchical_images`` with 10 classes, 100 examples per class
and split), the paper's fully-connected net, Adam 1e-3, batch 32, 10 epochs, probes of 50
examples per class. Real data sets (mnist, fashion_mnist, cifar10, cifar100) are downloaded by
TensorFlow Datasets into ``--data_dir``.

Writes config.json, summary.json, results.npz, figures/{curves, class_matrix,
stiffness_vs_distance}.png, stages/ and tensorboard/ under --output_dir; a rerun with the
same flags resumes after the last finished epoch; other flags are refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import app, flags

from tfstiffness import cli, studies
from tfstiffness.cli import _flags

# Show the shared flags in --help too, not only under --helpfull.
flags.adopt_module_key_flags(cli)
flags.adopt_module_key_flags(_flags)

FLAGS = flags.FLAGS


def main(argv: Sequence[str]) -> None:
    """Runs the study with the flags' settings."""
    kwargs = _flags.common_kwargs("class_stiffness")
    cli.run_study(
        argv, studies.run_class_stiffness,
        data_options=_flags.data_options(kwargs.get("dataset"), "hierarchical_images"),
        **kwargs)


def run() -> None:
    """Console-script entry point (console scripts call it without argv)."""
    app.run(main)


if __name__ == "__main__":
    run()
