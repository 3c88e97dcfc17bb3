"""Flag definitions shared by the binaries: each binary calls the definers it needs, into its
OWN `flags.FlagValues`, with its study's defaults, so its --help lists only its own flags with
their real values. Values are checked when parsed (types, ranges, choices), before anything
runs; `study_default` reads a default from the study function, the one place it is set.

Example:
    >>> from absl import flags
    >>> fv = flags.FlagValues()
    >>> define_batch_size(fv, 32)
    >>> fv(["prog", "--batch_size=-5"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    absl.flags._exceptions.IllegalFlagValueError: flag --batch_size=-5: ...
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

from absl import flags

__all__ = ["define_study", "study_default", "study_kwargs", "synthetic_options"]

FlagValues = flags.FlagValues


def study_default(function: Callable[..., Any], name: str) -> Any:
    """The default value of argument `name` of a study function.

    Example:
        >>> def run(output_dir, epochs=6): ...
        >>> study_default(run, "epochs")
        6
    """
    return inspect.signature(function).parameters[name].default


def define_output_dir(fv: FlagValues, binary: str) -> None:
    flags.DEFINE_string("output_dir", f"runs/{binary}",
                        "Output directory. Rerunning the same command resumes an interrupted "
                        "run; other flags on the same directory are refused; two runs on one "
                        "directory are refused while the first lives.", flag_values=fv)


def define_common(fv: FlagValues, seed_help: str) -> None:
    """--seed, --method, --quiet and --verbosity: every binary has them."""
    flags.DEFINE_integer("seed", 0, seed_help, lower_bound=0, flag_values=fv)
    flags.DEFINE_enum("method", "auto", ["auto", "ghost", "vmap", "jacobian"],
                      "How gradient_gram computes the Gram matrices (all exact).",
                      flag_values=fv)
    flags.DEFINE_bool("quiet", False, "Print no progress lines.", flag_values=fv)
    flags.DEFINE_integer("verbosity", 0, "1 also shows TensorFlow's start-up log and its C++ "
                         "info and warning lines (hidden at 0).", short_name="v",
                         flag_values=fv)


def define_epochs(fv: FlagValues, default: int, per: str = "") -> None:
    flags.DEFINE_integer("epochs", default, f"Training epochs{per}.", lower_bound=1,
                         flag_values=fv)


def define_batch_size(fv: FlagValues, default: int, optimizer: str = "Adam") -> None:
    flags.DEFINE_integer("batch_size", default, f"Mini-batch size of the {optimizer} steps.",
                         lower_bound=1, flag_values=fv)


def _positive_finite(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and value > 0)


def define_learning_rate(fv: FlagValues, default: float, optimizer: str = "Adam") -> None:
    flags.DEFINE_float("learning_rate", default, f"{optimizer}'s constant learning rate.",
                       flag_values=fv)
    flags.register_validator("learning_rate", _positive_finite,
                             message="--learning_rate must be a finite number > 0",
                             flag_values=fv)


def define_dataset(fv: FlagValues, default: str, choices: Sequence[str], help_text: str) -> None:
    flags.DEFINE_enum("dataset", default, list(choices), help_text, flag_values=fv)


def define_data_dir(fv: FlagValues) -> None:
    flags.DEFINE_string("data_dir", None, "TensorFlow Datasets directory holding the prepared "
                        "real data sets; none: ~/tensorflow_datasets. Without network access, "
                        "place them there first (`tfds build <name>` on a connected machine, "
                        "then copy the folder).", flag_values=fv)


_MODEL_HELP = {
    "fc": "fc: fully connected 500-300-100",
    "cnn": "cnn: the CNN for the data's shape, three 3x3 convolutions (16, 32, 32) with "
           "max-pooling for images, Greydanus' three stride-2 Conv1D layers (25 channels) for "
           "MNIST-1D signals",
    "resnet20": "resnet20: ResNet20v1 without batch norm",
    "transformer": "transformer: the package's small transformer classifier",
    "bert_tiny": "bert_tiny: keras_hub's BertTextClassifier, 2 layers, 2 heads, hidden 64, "
                 "random weights (needs `pip install keras-hub`)",
}


def define_model(fv: FlagValues, default: str, choices: Sequence[str]) -> None:
    flags.DEFINE_enum("model", default, list(choices),
                      "; ".join(_MODEL_HELP.get(name, name) for name in choices) + ".",
                      flag_values=fv)


def _seeds_ok(values: Sequence[str] | None) -> bool:
    if values is None:
        return True
    try:
        seeds = [int(v) for v in values]
    except ValueError:
        return False
    return bool(seeds) and min(seeds) >= 0 and len(set(seeds)) == len(seeds)


def define_seeds(fv: FlagValues) -> None:
    """--seeds: repeat the study over seeds (`studies.seeds.run_seeds`)."""
    flags.DEFINE_list("seeds", None, "Repeat the study for each of these seeds, e.g. 0,1,2: one "
                      "resumable run per seed in <output_dir>/seed=S, then the mean with a 95% "
                      "interval across seeds in <output_dir> (summary.json, figures with bands, "
                      "TensorBoard runs seed=S/... and mean_over_seeds). Replaces --seed.",
                      flag_values=fv)
    flags.register_validator("seeds", _seeds_ok,
                             message="--seeds must be distinct comma-separated integers >= 0",
                             flag_values=fv)


def define_bootstrap_samples(fv: FlagValues, default: int) -> None:
    flags.DEFINE_integer("bootstrap_samples", default, "Bootstrap resamples of the probe "
                         "examples at each measurement (within classes, from the Gram matrix "
                         "already computed): 95% intervals of within/between stiffness, the "
                         "super-class contrast, both xi estimators and m-coherence; 0: none.",
                         lower_bound=0, flag_values=fv)


def define_probe_per_class(fv: FlagValues, default: int, splits: str) -> None:
    flags.DEFINE_integer("probe_per_class", default, f"Probe examples per class, {splits}.",
                         lower_bound=1, flag_values=fv)


def _eval_epochs_ok(value: str) -> bool:
    if value in ("log", "all"):
        return True
    try:
        return all(int(part) >= 0 for part in value.split(","))
    except ValueError:
        return False


def define_eval_epochs(fv: FlagValues, default: str) -> None:
    flags.DEFINE_string("eval_epochs", default, "Epochs at which to measure stiffness: a "
                        "comma-separated list, 'log' (1, 2, 4, 8, ...) or 'all'; 0 (before "
                        "training) and the last epoch are always measured.", flag_values=fv)
    flags.register_validator("eval_epochs", _eval_epochs_ok,
                             message="--eval_epochs must be 'log', 'all' or comma-separated "
                                     "integers >= 0, e.g. 1,2,5", flag_values=fv)


def eval_epochs(value: str) -> str | list[int] | None:
    """The study argument of an --eval_epochs value.

    Example:
        >>> eval_epochs("1,3"), eval_epochs("all"), eval_epochs("log")
        ([1, 3], None, 'log')
    """
    if value == "all":
        return None
    if value == "log":
        return "log"
    return [int(part) for part in value.split(",")]


def define_max_examples(fv: FlagValues, validation: bool = True) -> None:
    flags.DEFINE_integer("max_train_examples", None, "Train on the first N training examples "
                         "only; none: all.", lower_bound=1, flag_values=fv)
    if validation:
        flags.DEFINE_integer("max_val_examples", None, "Use the first N validation examples "
                             "only; none: all.", lower_bound=1, flag_values=fv)


def define_bins(fv: FlagValues, default: int) -> None:
    flags.DEFINE_integer("bins", default, "Distance bins of the stiffness-vs-distance curves.",
                         lower_bound=1, flag_values=fv)


def int_list(text: Sequence[str] | str, separator: str = "-") -> list[int]:
    """``"64-8-4"`` -> ``[64, 8, 4]``; ValueError unless all are positive integers.

    Example:
        >>> int_list("64-8-4")
        [64, 8, 4]
    """
    parts = text.split(separator) if isinstance(text, str) else list(text)
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise ValueError(f"expected positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"expected positive integers, got {text!r}")
    return values


def _all_ok(check: Callable[[Any], Any]) -> Callable[[Sequence[str] | None], bool]:
    def validate(values):
        if values is None:
            return True
        try:
            return bool(values) and all(check(v) for v in values)
        except ValueError:
            return False
    return validate


def define_float_list(fv: FlagValues, name: str, default: Sequence[Any], help_text: str) -> None:
    """A comma-separated list of finite numbers > 0."""
    flags.DEFINE_list(name, [f"{v:g}" for v in default], help_text, flag_values=fv)
    flags.register_validator(name, _all_ok(lambda v: _positive_finite(float(v))),
                             message=f"--{name} must be comma-separated finite numbers > 0",
                             flag_values=fv)


def define_int_list(fv: FlagValues, name: str, default: Sequence[Any], help_text: str,
                    separator: str = "-") -> None:
    """A comma-separated list of items, each positive integers joined by `separator` (or a
    single positive integer when `separator` is None)."""
    flags.DEFINE_list(name, [str(v) for v in default], help_text, flag_values=fv)
    check = (lambda v: int_list(v, separator)) if separator else (lambda v: int(v) >= 1)
    flags.register_validator(name, _all_ok(check),
                             message=f"--{name} must be comma-separated positive integers"
                                     + (f" joined by {separator!r}" if separator else ""),
                             flag_values=fv)


def define_study(fv: FlagValues, run: Callable[..., Any], binary: str, *,
                 datasets: Sequence[str], dataset_help: str, models: Sequence[str] = (),
                 probe_splits: str = "", optimizer: str = "Adam", seed_help: str = "") -> None:
    """The flags of a training study, for the arguments `run` has, with `run`'s defaults."""
    params = inspect.signature(run).parameters
    define_output_dir(fv, binary)
    define_dataset(fv, study_default(run, "dataset"), datasets, dataset_help)
    if "data_dir" in params:
        define_data_dir(fv)
    if models:
        define_model(fv, study_default(run, "model"), models)
    define_epochs(fv, study_default(run, "epochs"))
    if "learning_rate" in params:
        define_learning_rate(fv, study_default(run, "learning_rate"), optimizer)
    define_batch_size(fv, study_default(run, "batch_size"), optimizer)
    define_probe_per_class(fv, study_default(run, "probe_per_class"), probe_splits)
    if "eval_epochs" in params:
        default = study_default(run, "eval_epochs")
        define_eval_epochs(fv, "all" if default is None else default)
    if "max_train_examples" in params:
        define_max_examples(fv, validation="max_val_examples" in params)
    if "bins" in params:
        define_bins(fv, study_default(run, "bins"))
    if "bootstrap_samples" in params:
        define_bootstrap_samples(fv, study_default(run, "bootstrap_samples"))
    define_common(fv, seed_help or "Seed of the synthetic data, probes, initial weights, "
                  "batch order and bootstrap.")
    if "seeds" in params:
        define_seeds(fv)


def study_kwargs(fv: FlagValues, run: Callable[..., Any]) -> dict[str, Any]:
    """`run`'s keyword arguments from the flags of the same names (``verbose``: not --quiet;
    ``eval_epochs`` converted by `eval_epochs`; ``seeds`` as integers).

    Raises:
        cli.CommandError: --seed and --seeds both given.
    """
    kwargs: dict[str, Any] = {}
    for name in inspect.signature(run).parameters:
        if name == "verbose":
            kwargs[name] = not fv["quiet"].value
        elif name == "eval_epochs" and name in fv:
            kwargs[name] = eval_epochs(fv[name].value)
        elif name == "seeds" and name in fv:
            kwargs[name] = None if fv[name].value is None else [int(v) for v in fv[name].value]
        elif name in fv:
            kwargs[name] = fv[name].value
    if kwargs.get("seeds") is not None and "seed" in fv and fv["seed"].present:
        from tfstiffness.cli import CommandError

        raise CommandError("--seed and --seeds: give one (--seeds runs the study once per "
                           "seed)")
    return kwargs


def synthetic_options(fv: FlagValues, dataset: str, synthetic: str,
                      names: dict[str, str]) -> dict[str, Any] | None:
    """Generator options of `synthetic` from flags (flag name -> option name); None for
    another data set.

    Raises:
        ValueError: a flag of `names` given on the command line with another data set.
    """
    if dataset != synthetic:
        given = [f"--{flag}" for flag in names if fv[flag].present]
        if given:
            raise ValueError(f"{', '.join(given)} apply to --dataset {synthetic} only")
        return None
    return {option: fv[flag].value for flag, option in names.items()}
