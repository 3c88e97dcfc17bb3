"""Command-line binaries of the experiments (absl): flags in, one library call, files out.

The flags shared by every binary are defined here, once, so that several binaries can be
imported into one process (tests, notebooks) without clashing flag definitions. A flag left at
None takes the study's own default (see `tfstiffness.walker`), so defaults live in one place.

Console scripts point at ``tfstiffness.cli.<name>:run``; ``python -m tfstiffness.cli.<name>``
and ``python experiments/<name>.py`` run the same binary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from absl import app, flags

from tfstiffness import experiment

__all__ = ["common_kwargs", "parse_int_list"]

flags.DEFINE_string("output_dir", None, "Output directory (default: runs/<binary name>). "
                    "Rerunning with the same flags resumes; different flags are refused.")
flags.DEFINE_integer("epochs", None, "Training epochs (default: the study's).")
flags.DEFINE_float("learning_rate", None, "SGD learning rate (default: the study's).")
flags.DEFINE_integer("batch_size", None, "SGD mini-batch size (default: the study's).")
flags.DEFINE_integer("seed", 0, "Seed of initial weights, batch order and probe sample.")
flags.DEFINE_enum("method", "auto", ["auto", "ghost", "vmap", "jacobian"],
                  "gradient_gram method.")
flags.DEFINE_integer("grid_n", None, "Two-arcs grid points per side (default: the study's).")
flags.DEFINE_bool("quiet", False, "Do not print progress lines.")

FLAGS = flags.FLAGS


def common_kwargs(binary: str) -> dict[str, Any]:
    """Keyword arguments of a study from the shared flags; unset (None) flags are left out.

    Example:
        >>> from absl import flags
        >>> flags.FLAGS.mark_as_parsed()
        >>> common_kwargs("demo")["output_dir"]
        'runs/demo'
    """
    kwargs: dict[str, Any] = {
        "output_dir": FLAGS.output_dir or f"runs/{binary}",
        "seed": FLAGS.seed,
        "method": FLAGS.method,
        "verbose": not FLAGS.quiet,
    }
    for name in ("epochs", "learning_rate", "batch_size", "grid_n"):
        if FLAGS[name].value is not None:
            kwargs[name] = FLAGS[name].value
    return kwargs


def parse_int_list(text: str, separator: str = "-") -> list[int]:
    """``"64-8-4"`` -> ``[64, 8, 4]``.

    Example:
        >>> parse_int_list("64-8-4")
        [64, 8, 4]
    """
    try:
        values = [int(part) for part in text.split(separator)]
    except ValueError:
        raise ValueError(f"expected integers separated by {separator!r}, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"expected positive integers, got {text!r}")
    return values


def run_study(argv: Sequence[str], study: Callable[..., Any], **kwargs: Any) -> Any:
    """Runs `study(**kwargs)` for a binary's `main`: stray arguments and an output directory
    reused with other flags become usage errors (a message), not tracebacks."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        return study(**kwargs)
    except experiment.ConfigMismatchError as err:
        raise app.UsageError(str(err)) from None
