"""Flag definitions shared by the binaries, derived from the studies' config dataclasses.

Each binary defines its study's flags into its OWN `flags.FlagValues` with `define_config`,
which reads the study's config class (`tfstiffness.studies.config`): one flag per field that
has one, with the field's default, help, kind and bounds, so a parameter is stated once and
--help lists only the binary's own flags with their real values. Values are checked when
parsed (types, ranges, choices), before anything runs; `config_kwargs` turns them back into
the study's arguments.

Example:
    >>> from absl import flags
    >>> from tfstiffness.studies.neighbourhoods import NeighbourhoodsConfig
    >>> fv = flags.FlagValues()
    >>> define_config(fv, NeighbourhoodsConfig, "neighbourhoods")
    >>> fv(["prog", "--batch_size=-5"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    absl.flags._exceptions.IllegalFlagValueError: flag --batch_size=-5: ...
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from absl import flags

__all__ = ["HIERARCHY_FLAGS", "config_kwargs", "data_options",
           "define_config", "define_hierarchy_flags", "synthetic_options"]

FlagValues = flags.FlagValues


def define_output_dir(fv: FlagValues, binary: str) -> None:
    flags.DEFINE_string("output_dir", f"runs/{binary}",
                        "Output directory. Rerunning the same command resumes an interrupted "
                        "run; other flags on the same directory are refused; two runs on one "
                        "directory are refused while the first lives.", flag_values=fv)


def define_run_flags(fv: FlagValues) -> None:
    """--quiet and --verbosity: how every binary runs, not what it computes."""
    flags.DEFINE_bool("quiet", False, "Print no progress lines.", flag_values=fv)
    flags.DEFINE_integer("verbosity", 0, "1 also shows TensorFlow's start-up log and its C++ "
                         "info and warning lines (hidden at 0).", short_name="v",
                         flag_values=fv)


def _positive_finite(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and value > 0)


def define_positive_float(fv: FlagValues, name: str, default: float, help_text: str) -> None:
    """A finite number > 0 (e.g. --learning_rate)."""
    flags.DEFINE_float(name, default, help_text, flag_values=fv)
    flags.register_validator(name, _positive_finite,
                             message=f"--{name} must be a finite number > 0", flag_values=fv)


def define_share(fv: FlagValues, name: str, default: float | None, help_text: str) -> None:
    """None or a share in [0, 1) (e.g. --flip_labels)."""
    flags.DEFINE_float(name, default, help_text, flag_values=fv)
    flags.register_validator(name, lambda v: v is None or (math.isfinite(v) and 0 <= v < 1),
                             message=f"--{name} must be a share in [0, 1), e.g. 0.1",
                             flag_values=fv)


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


def define_seeds(fv: FlagValues, help_text: str) -> None:
    """--seeds: repeat the study over seeds (`studies.seeds.run_seeds`)."""
    flags.DEFINE_list("seeds", None, help_text, flag_values=fv)
    flags.register_validator("seeds", _seeds_ok,
                             message="--seeds must be distinct comma-separated integers >= 0",
                             flag_values=fv)


def _eval_epochs_ok(value: str) -> bool:
    if value in ("log", "all"):
        return True
    try:
        return all(int(part) >= 0 for part in value.split(","))
    except ValueError:
        return False


def define_eval_epochs(fv: FlagValues, default: str, help_text: str) -> None:
    flags.DEFINE_string("eval_epochs", default, help_text, flag_values=fv)
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


def _finite_non_negative(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value >= 0


def define_nonnegative_float_list(fv: FlagValues, name: str, default: Sequence[Any] | None,
                                  help_text: str) -> None:
    """None or a comma-separated list of finite numbers >= 0."""
    flags.DEFINE_list(name, default, help_text, flag_values=fv)
    flags.register_validator(
        name, lambda v: v is None or all(_finite_non_negative(part) for part in v),
        message=f"--{name} must be comma-separated finite numbers >= 0", flag_values=fv)


def define_int_list(fv: FlagValues, name: str, default: Sequence[Any], help_text: str,
                    separator: str | None = "-") -> None:
    """A comma-separated list of items, each positive integers joined by `separator` (or a
    single positive integer when `separator` is None)."""
    flags.DEFINE_list(name, [str(v) for v in default], help_text, flag_values=fv)
    check = (lambda v: int_list(v, separator)) if separator else (lambda v: int(v) >= 1)
    flags.register_validator(name, _all_ok(check),
                             message=f"--{name} must be comma-separated positive integers"
                                     + (f" joined by {separator!r}" if separator else ""),
                             flag_values=fv)


def define_choice_list(fv: FlagValues, name: str, default: Sequence[str],
                       choices: Sequence[str], help_text: str) -> None:
    """A comma-separated list of some of `choices`."""
    flags.DEFINE_list(name, list(default), help_text, flag_values=fv)
    flags.register_validator(name, lambda v: bool(v) and set(v) <= set(choices),
                             message=f"--{name} must be some of {tuple(choices)}",
                             flag_values=fv)


def _defaults_text(default: Sequence[Any], separator: str | None) -> list[str]:
    """A list flag's default items: ``(64, 8)`` -> ``"64-8"`` for a list of widths."""
    if separator:
        return [separator.join(str(v) for v in item) if isinstance(item, (list, tuple))
                else str(item) for item in default]
    return [str(v) for v in default]


def _define_field(fv: FlagValues, field: dataclasses.Field) -> None:
    """The flag of one config field, as its metadata says (`studies.config.FLAG_KINDS`)."""
    name, default, meta = field.name, field.default, field.metadata
    kind, help_text = meta["flag"], meta["help"]
    bounds = {key: meta[key] for key in ("lower_bound", "upper_bound") if key in meta}
    if kind == "integer":
        flags.DEFINE_integer(name, default, help_text, flag_values=fv, **bounds)
    elif kind == "float":
        flags.DEFINE_float(name, default, help_text, flag_values=fv, **bounds)
    elif kind == "string":
        flags.DEFINE_string(name, default, help_text, flag_values=fv)
    elif kind == "enum":
        flags.DEFINE_enum(name, default, list(meta["choices"]), help_text, flag_values=fv)
    elif kind == "model":
        define_model(fv, default, meta["choices"])
    elif kind == "positive_float":
        define_positive_float(fv, name, default, help_text)
    elif kind == "eval_epochs":
        define_eval_epochs(fv, "all" if default is None else default, help_text)
    elif kind == "seeds":
        define_seeds(fv, help_text)
    elif kind == "float_list":
        define_float_list(fv, name, default, help_text)
    elif kind == "int_list":
        separator = meta.get("separator")
        define_int_list(fv, name, _defaults_text(default, separator), help_text, separator)
    elif kind == "choice_list":
        define_choice_list(fv, name, default, meta["choices"], help_text)
    elif kind == "list":
        flags.DEFINE_list(name, None if default is None else list(default), help_text,
                          flag_values=fv)
    elif kind == "share":
        define_share(fv, name, default, help_text)
    elif kind == "nonnegative_float_list":
        define_nonnegative_float_list(fv, name, default, help_text)
    else:
        raise ValueError(f"{name}: unknown flag kind {kind!r}")
    if meta.get("required"):
        flags.mark_flag_as_required(name, flag_values=fv)


def flag_fields(config_class: type) -> list[dataclasses.Field]:
    """The fields of a study config class that have a flag."""
    return [f for f in dataclasses.fields(config_class) if f.metadata.get("flag")]


def define_config(fv: FlagValues, config_class: type, binary: str) -> None:
    """The flags of a study: --output_dir, one flag per field of `config_class` that has one
    (its kind, default, help and bounds from the field, `studies.config.parameter`), --quiet
    and --verbosity."""
    define_output_dir(fv, binary)
    for field in flag_fields(config_class):
        _define_field(fv, field)
    define_run_flags(fv)


def _flag_value(fv: FlagValues, field: dataclasses.Field) -> Any:
    """The argument of a field from its flag's value."""
    value, meta = fv[field.name].value, field.metadata
    kind = meta["flag"]
    if value is None:
        return None
    if kind == "eval_epochs":
        return eval_epochs(value)
    if kind == "seeds":
        return [int(v) for v in value]
    if kind in ("float_list", "nonnegative_float_list"):
        return [float(v) for v in value]
    if kind == "int_list":
        separator = meta.get("separator")
        return [int_list(v, separator) for v in value] if separator else [int(v)
                                                                           for v in value]
    if kind in ("choice_list", "list"):
        return list(value)
    return value


def config_kwargs(fv: FlagValues, config_class: type) -> dict[str, Any]:
    """The study's keyword arguments from its flags: ``output_dir``, every field of
    `config_class` with a flag, converted back (lists, ``eval_epochs`` by `eval_epochs`,
    ``seeds`` as integers), and ``verbose`` (not --quiet).

    Raises:
        cli.CommandError: --seed and --seeds both given.
    """
    kwargs = {field.name: _flag_value(fv, field) for field in flag_fields(config_class)}
    if kwargs.get("seeds") is not None and "seed" in fv and fv["seed"].present:
        from tfstiffness.errors import CommandError

        raise CommandError("--seed and --seeds: give one (--seeds runs the study once per "
                           "seed)")
    return {"output_dir": fv["output_dir"].value, **kwargs, "verbose": not fv["quiet"].value}


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


#: Flags of the synthetic image hierarchy -> its generator options.
HIERARCHY_FLAGS = {"synthetic_per_class": "num_per_class", "synthetic_noise": "noise",
                   "synthetic_class_scale": "class_scale"}


def define_hierarchy_flags(fv: FlagValues, defaults: Mapping[str, Any], noise_help: str) -> None:
    """The `HIERARCHY_FLAGS` of ``hierarchical_images``, with a study's generator defaults."""
    flags.DEFINE_integer("synthetic_per_class", defaults["num_per_class"],
                         "hierarchical_images: images per class and split.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_float("synthetic_noise", defaults["noise"], "hierarchical_images: per-pixel "
                       f"noise std ({noise_help}).", lower_bound=0, flag_values=fv)
    flags.DEFINE_float("synthetic_class_scale", 0.5, "hierarchical_images: std of each "
                       "class's pattern relative to its super-class prototype.", lower_bound=0,
                       flag_values=fv)


def data_options(synthetic: str, names: dict[str, str]
                 ) -> Callable[[FlagValues], dict[str, Any]]:
    """The `cli.study_binary` options of a synthetic generator's flags: ``data_options``
    from the flags `names` (flag -> option) with ``--dataset`` `synthetic`
    (`synthetic_options`)."""

    def options(fv: FlagValues) -> dict[str, Any]:
        return {"data_options": synthetic_options(fv, fv["dataset"].value, synthetic, names)}

    return options
