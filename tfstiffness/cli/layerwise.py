"""Walker's layer-wise stiffness study (`walker.run_layerwise`).

Usage:
    python -m tfstiffness.cli.layerwise --output_dir runs/layerwise
    tfstiffness-layerwise --hidden_widths 64-8-4,8-64-8 --activations tanh,leaky_relu
    tfstiffness-layerwise --dataset mnist --max_train_examples 10000 --probe_per_class 50

Writes config.json, summary.json, results.npz, figures/layerwise.png, stages/ and
tensorboard/ under --output_dir; a rerun with the same flags resumes after the last model.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import app, flags

from tfstiffness import cli, walker

flags.DEFINE_string("dataset", "two_arcs", "'two_arcs' or a TensorFlow Datasets image set "
                    "(mnist, fashion_mnist, cifar10, ...).")
flags.DEFINE_string("data_dir", None, "TensorFlow Datasets data directory.")
flags.DEFINE_list("hidden_widths", ["64-8-4", "8-64-8", "64-8-64"],
                  "Hidden widths of each MLP, widths joined by '-'.")
flags.DEFINE_list("activations", ["relu", "tanh", "leaky_relu"], "Hidden activations.")
flags.DEFINE_integer("probe_per_class", None, "Probe examples per class (default: the study's).")
flags.DEFINE_integer("max_train_examples", None, "Train on the first N examples only.")

# Show the shared flags in --help too, not only under --helpfull.
flags.adopt_module_key_flags(cli)

FLAGS = flags.FLAGS


def main(argv: Sequence[str]) -> None:
    """Runs the study with the flags' settings."""
    kwargs = cli.common_kwargs("layerwise")
    if FLAGS.probe_per_class is not None:
        kwargs["probe_per_class"] = FLAGS.probe_per_class
    cli.run_study(
        argv, walker.run_layerwise,
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        hidden_widths=[cli.parse_int_list(w) for w in FLAGS.hidden_widths],
        activations=list(FLAGS.activations),
        max_train_examples=FLAGS.max_train_examples,
        **kwargs,
    )


def run() -> None:
    """Console-script entry point (console scripts call it without argv)."""
    app.run(main)


if __name__ == "__main__":
    run()
