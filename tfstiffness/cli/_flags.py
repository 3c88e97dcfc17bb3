"""Flags shared by the paper's study binaries (class_stiffness, cifar100_superclass,
learning_rate_study, text_transformer), on top of those of `tfstiffness.cli`.

Every flag here defaults to None and each binary fills in its own default (shown in its
--help text), so the binaries can share one definition. `cli.layerwise` defines
``--dataset``, ``--data_dir``, ``--probe_per_class`` and ``--max_train_examples`` too, with
its own default; so that both can be imported into one process, a flag already defined is
not defined again, and `value` reads a flag as None unless it was set (on the command line or
by assignment), whichever module's default it carries.
"""

from __future__ import annotations

from typing import Any

from absl import flags

from tfstiffness import cli

__all__ = ["common_kwargs", "value"]

FLAGS = flags.FLAGS


def _define(define, name: str, help_text: str, **kwargs: Any) -> None:
    if name not in FLAGS:
        # allow_override: a module defining the same flag later (cli.layerwise) replaces it.
        define(name, None, help_text, allow_override=True, **kwargs)


_define(flags.DEFINE_string, "dataset", "Data set: mnist, fashion_mnist, cifar10, cifar100, "
        "glue/sst2, imdb_reviews (downloaded by tfds) or a synthetic set "
        "(hierarchical_images, gaussian_blobs, synthetic_text). Default: the binary's.")
_define(flags.DEFINE_string, "data_dir", "TensorFlow Datasets data directory.")
_define(flags.DEFINE_integer, "probe_per_class", "Probe examples per class, from the "
        "training and from the validation split (default: the binary's).")
_define(flags.DEFINE_integer, "max_train_examples", "Train on the first N examples only.")
_define(flags.DEFINE_integer, "max_val_examples", "Use the first N validation examples only.")
if "model" not in FLAGS:
    flags.DEFINE_enum("model", None, ["fc", "cnn", "resnet20", "transformer"],
                      "Model (default: the binary's).", allow_override=True)
_define(flags.DEFINE_list, "eval_epochs", "Epochs at which to measure stiffness; 0 (before "
        "training) and the last epoch are always measured (default: the binary's).")
_define(flags.DEFINE_integer, "bins", "Distance bins of stiffness vs distance (default 20).")
_define(flags.DEFINE_integer, "synthetic_per_class", "Synthetic data: examples per class "
        "and split (default: the binary's).")
_define(flags.DEFINE_float, "synthetic_noise", "Synthetic images: per-pixel noise std; "
        "Gaussian blobs: spread (default: the generator's).")
_define(flags.DEFINE_float, "synthetic_class_scale", "hierarchical_images: std of the "
        "class patterns relative to the super-class prototypes (default: the binary's).")


def value(name: str) -> Any:
    """The flag's value if it was set, else None (the binary's default then applies)."""
    flag = FLAGS[name]
    return None if flag.using_default_value else flag.value


def common_kwargs(binary: str) -> dict[str, Any]:
    """Keyword arguments of a `tfstiffness.studies` function from the flags that are set.

    Example:
        >>> from absl import flags
        >>> flags.FLAGS.mark_as_parsed()
        >>> sorted(common_kwargs("demo"))
        ['method', 'output_dir', 'seed', 'verbose']
    """
    kwargs = cli.common_kwargs(binary)
    kwargs.pop("grid_n", None)  # The two-arcs grid is not used by these studies.
    for name in ("dataset", "data_dir", "probe_per_class", "max_train_examples",
                 "max_val_examples", "model", "bins"):
        if value(name) is not None:
            kwargs[name] = value(name)
    if value("eval_epochs") is not None:
        kwargs["eval_epochs"] = [int(e) for e in value("eval_epochs")]
    return kwargs


def data_options(dataset: str | None, default_dataset: str) -> dict[str, Any] | None:
    """Synthetic generator options from the ``--synthetic_*`` flags (None: none set).

    Example:
        >>> from absl import flags
        >>> flags.FLAGS.mark_as_parsed()
        >>> data_options(None, "gaussian_blobs") is None
        True
    """
    name = dataset or default_dataset
    options: dict[str, Any] = {}
    if value("synthetic_per_class") is not None:
        key = "num_examples" if name == "synthetic_text" else "num_per_class"
        per_class = value("synthetic_per_class")
        options[key] = per_class * 2 if name == "synthetic_text" else per_class
    if value("synthetic_noise") is not None:
        options["spread" if name == "gaussian_blobs" else "noise"] = value("synthetic_noise")
    if value("synthetic_class_scale") is not None:
        options["class_scale"] = value("synthetic_class_scale")
    return options or None
