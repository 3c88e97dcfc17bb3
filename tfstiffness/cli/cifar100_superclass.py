"""CIFAR-100 super-class stiffness through training (`studies.run_cifar100_superclass`).

Usage:
    python -m tfstiffness.cli.cifar100_superclass --output_dir runs/cifar100_superclass
    tfstiffness-cifar100-superclass --dataset cifar100 --epochs 30 --eval_epochs 1,2,5,10,20

Defaults: the synthetic hierarchy (``hierarchical_images``: 100 classes in 20 super-classes,
CIFAR-100's label convention, 50 examples per class and split), the paper's CNN, Adam 1e-3,
batch 32, 6 epochs, a probe of 30 examples per class (3,000). ``--dataset cifar100``
downloads CIFAR-100 through TensorFlow Datasets (into ``--data_dir``).

Writes config.json, summary.json, results.npz, figures/{class_matrix, superclass_matrix,
curves, stiffness_vs_distance}.png, stages/ and tensorboard/ under --output_dir; a rerun with
the same flags resumes after the last finished epoch; other flags are refused.
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
    kwargs = _flags.common_kwargs("cifar100_superclass")
    cli.run_study(
        argv, studies.run_cifar100_superclass,
        data_options=_flags.data_options(kwargs.get("dataset"), "hierarchical_images"),
        **kwargs)


def run() -> None:
    """Console-script entry point (console scripts call it without argv)."""
    app.run(main)


if __name__ == "__main__":
    run()
