"""Study configurations: each study's parameters stated once, in a dataclass.

A study's config class (`ClassStiffnessConfig`, `NeighbourhoodsConfig`, ...) names every
parameter with its default and the help and flag of its binary (`parameter`). From it derive:

- the ``run_*`` function's arguments: ``run_x(output_dir, config=None, **overrides)`` builds
  the config with `StudyConfig.build` (an unknown argument is a TypeError, as for a function);
- the seed loop's arguments, `StudyConfig.seed_kwargs` (`seeds.run_seeds`);
- ``config.json``: `StudyConfig.record` (one run) and `StudyConfig.seeds_record` (a run
  over seeds), equal to what the studies wrote before these classes existed, so that a run
  directory started earlier resumes;
- the absl flags: `tfstiffness.cli._flags.define_config` reads the fields' metadata and
  `tfstiffness.cli._flags.config_kwargs` turns flag values back into arguments.

A field's metadata: ``help`` (its flag's help), ``flag`` (how the flag is defined: one of
`FLAG_KINDS`, or None for a parameter without a flag, such as ``data_options``), options
of that kind (``lower_bound``, ``upper_bound``, ``choices``, ``separator``) and
``required`` (a flag that must be given).

Example:
    >>> from tfstiffness.studies.neighbourhoods import NeighbourhoodsConfig
    >>> config = NeighbourhoodsConfig.build(grid_n=8)
    >>> config.grid_n, config.record()["study"]
    (8, 'neighbourhoods')
    >>> NeighbourhoodsConfig.build(config, epochs=2).epochs
    2
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from tfstiffness import checks
from tfstiffness.errors import StudyInputError

__all__ = ["FLAG_KINDS", "StudyConfig", "TrainingConfig", "check_arguments", "parameter"]

#: How a field's flag is defined (`tfstiffness.cli._flags.define_config`): "integer", "float"
#: and "string" as absl's (with ``lower_bound`` / ``upper_bound``); "enum" (``choices``);
#: "model" (an enum whose help describes each model); "positive_float" (finite and > 0);
#: "eval_epochs" ('log', 'all' or a list); "seeds" (distinct integers >= 0); "float_list"
#: (finite numbers > 0); "int_list" (items of positive integers joined by ``separator``);
#: "choice_list" (some of ``choices``); "list" (strings); "share" (None or a number in
#: [0, 1)); "nonnegative_float_list" (None or finite numbers >= 0).
FLAG_KINDS = ("integer", "float", "string", "enum", "model", "positive_float", "eval_epochs",
              "seeds", "float_list", "int_list", "choice_list", "list", "share",
              "nonnegative_float_list")

METHODS = ("auto", "ghost", "vmap", "jacobian")

SEEDS_HELP = ("Repeat the study for each of these seeds, e.g. 0,1,2: one resumable run per "
              "seed in <output_dir>/seed=S, then the mean with a 95% interval across seeds in "
              "<output_dir> (summary.json, figures with bands, TensorBoard runs seed=S/... and "
              "mean_over_seeds). Replaces --seed.")
DATA_DIR_HELP = ("TensorFlow Datasets directory holding the prepared real data sets; none: "
                 "~/tensorflow_datasets. Without network access, place them there first "
                 "(`tfds build <name>` on a connected machine, then copy the folder).")
EVAL_EPOCHS_HELP = ("Epochs at which to measure stiffness: a comma-separated list, 'log' (1, "
                    "2, 4, 8, ...) or 'all'; 0 (before training) and the last epoch are always "
                    "measured.")
BOOTSTRAP_HELP = ("Bootstrap resamples of the probe examples at each measurement (within "
                  "classes, from the Gram matrix already computed): 95% intervals of "
                  "within/between stiffness, the super-class contrast, both xi estimators and "
                  "m-coherence; 0: none.")
TRAIN_SPLIT_HELP = "Train on the first N training examples only; none: all."
#: Probe splits of the studies that probe both splits.
BOTH_SPLITS = "from the training and from the validation split"


def parameter(default: Any, help: str = "", *, flag: str | None = None,
              **options: Any) -> Any:
    """A config field: its default, the help of its flag and how the flag is defined.

    Args:
        default: The default (immutable: a tuple, not a list).
        help: The flag's help text.
        flag: One of `FLAG_KINDS`, or None: no flag.
        **options: Options of the flag kind (``lower_bound``, ``upper_bound``, ``choices``,
            ``separator``) and ``required``.
    """
    if flag is not None and flag not in FLAG_KINDS:
        raise ValueError(f"flag must be one of {FLAG_KINDS} or None, got {flag!r}")
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag, **options})


def _plain(value: Any) -> Any:
    """Tuples and lists (of tuples) as lists: the values the run functions passed on before."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class StudyConfig:
    """The parameters every study has; a study's config class adds its own.

    Attributes:
        seed: Seed of the study's random choices.
        method: The `gradient_gram` method.
    """

    #: The study's name: config.json's "study", the progress lines' label.
    STUDY: ClassVar[str] = ""

    seed: int = parameter(0, "Seed of the synthetic data, probes, initial weights, batch "
                          "order and bootstrap.", flag="integer", lower_bound=0)
    method: str = parameter("auto", "How gradient_gram computes the Gram matrices (all "
                            "exact).", flag="enum", choices=METHODS)

    @classmethod
    def build(cls, config: StudyConfig | None = None, **overrides: Any) -> StudyConfig:
        """`config` (default: the defaults) with `overrides`.

        Raises:
            TypeError: an argument the study does not have (as a function call would).
        """
        if config is None:
            return cls(**overrides)
        if not isinstance(config, cls):
            raise TypeError(f"config: expected a {cls.__name__}, got {type(config).__name__}")
        return dataclasses.replace(config, **overrides)

    def check(self) -> None:
        """Refuses bad values, naming them (`check_arguments`, by field name).

        Raises:
            StudyInputError: naming the parameter, the value and what was expected.
        """
        check_arguments(**self.values())

    def values(self) -> dict[str, Any]:
        """Every field by name, in field order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def seed_kwargs(self) -> dict[str, Any]:
        """The arguments every seed's run shares (all but ``seed`` and ``seeds``)."""
        return {name: _plain(value) for name, value in self.values().items()
                if name not in ("seed", "seeds")}

    def record(self) -> dict[str, Any]:
        """config.json of one run: the study's name and every parameter but ``seeds``."""
        return {"study": self.STUDY, **{name: _plain(value) for name, value in
                                        self.values().items() if name != "seeds"}}

    def seeds_record(self) -> dict[str, Any]:
        """config.json of a run over seeds (`seeds.run_seeds` writes it)."""
        return {"study": self.STUDY, "seeds": [int(s) for s in self.seeds],
                **self.seed_kwargs()}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingConfig(StudyConfig):
    """The parameters of the studies that train with Adam and measure fixed probes
    (`runner.train_measured`): the class studies and the learning-rate study.

    Attributes:
        dataset: A `tfstiffness.data` name.
        model: A name of `runner.MODELS`.
        epochs: Training epochs.
        batch_size: Mini-batch size.
        probe_per_class: Probe examples per class, from each probed split.
        eval_epochs: Epochs to measure at (0 and `epochs` are always added); None: every
            epoch; "log": 1, 2, 4, 8, ... (`training.parse_eval_epochs`).
        seeds: Repeat the study for each of these seeds (then `seed` is not used).
        data_dir: tfds data directory.
        max_train_examples: Train on the first N training examples only.
        max_val_examples: Use the first N validation examples only.
        data_options: Options of `data.load` (synthetic generator options).
        bins: Distance bins of the stiffness-vs-distance curves.
        bootstrap_samples: Bootstrap resamples of the probes per measurement (0: none).
    """

    #: Default generator options by data set (`data_options` goes over them).
    DATA_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    dataset: str = parameter("mnist1d", flag="enum")
    model: str = parameter("fc", flag="model")
    epochs: int = parameter(20, "Training epochs.", flag="integer", lower_bound=1)
    batch_size: int = parameter(32, "Mini-batch size of the Adam steps.", flag="integer",
                                lower_bound=1)
    probe_per_class: int = parameter(50, f"Probe examples per class, {BOTH_SPLITS}.",
                                     flag="integer", lower_bound=1)
    eval_epochs: Sequence[int] | str | None = parameter("log", EVAL_EPOCHS_HELP,
                                                        flag="eval_epochs")
    seeds: Sequence[int] | None = parameter(None, SEEDS_HELP, flag="seeds")
    data_dir: str | None = parameter(None, DATA_DIR_HELP, flag="string")
    max_train_examples: int | None = parameter(None, TRAIN_SPLIT_HELP, flag="integer",
                                               lower_bound=1)
    max_val_examples: int | None = parameter(
        None, "Use the first N validation examples only; none: all.", flag="integer",
        lower_bound=1)
    data_options: Mapping[str, Any] | None = parameter(None)
    bins: int = parameter(20, "Distance bins of the stiffness-vs-distance curves.",
                          flag="integer", lower_bound=1)
    bootstrap_samples: int = parameter(200, BOOTSTRAP_HELP, flag="integer", lower_bound=0)

    def merged_data_options(self) -> dict[str, Any]:
        """`data_options` over the study's `DATA_DEFAULTS` for `dataset`.

        Example:
            >>> TrainingConfig(dataset="blobs", data_options={"dim": 5}).merged_data_options()
            {'dim': 5}
        """
        return {**dict(self.DATA_DEFAULTS.get(self.dataset, {})),
                **dict(self.data_options or {})}

    def parsed_eval_epochs(self) -> list[int]:
        """The measured epochs (`training.parse_eval_epochs`).

        Raises:
            StudyInputError: `eval_epochs` cannot be parsed.
        """
        from tfstiffness import training
        from tfstiffness.errors import StudyInputError

        try:
            return training.parse_eval_epochs(self.eval_epochs, self.epochs)
        except ValueError as err:
            raise StudyInputError(f"eval_epochs: {err}") from None


def check_arguments(**values: Any) -> None:
    """Refuses bad study arguments, naming them. Rules by name:

    ``epochs`` an integer >= 1; ``batch_size``, ``probe_per_class``, ``bins``,
    ``loss_levels``, ``grid_n`` integers >= 1; ``max_train_examples``, ``max_val_examples``
    None or integers >= 1; ``learning_rate`` and each of ``learning_rates`` a finite number
    > 0; ``seed`` and ``bootstrap_samples`` integers >= 0; ``seeds`` None or distinct
    integers >= 0; ``method`` a `gradient_gram` method. Others are not checked here.

    Raises:
        StudyInputError: naming the argument, the value and what was expected.

    Example:
        >>> check_arguments(batch_size=-5)
        Traceback (most recent call last):
        ...
        tfstiffness.errors.StudyInputError: batch_size: expected an integer >= 1, got -5
    """
    for name, value in values.items():
        if name in ("epochs", "batch_size", "probe_per_class", "bins", "loss_levels",
                    "grid_n") or (name.startswith("max_") and value is not None):
            _check_int(name, value, 1)
        elif name in ("seed", "bootstrap_samples"):
            _check_int(name, value, 0)
        elif name == "seeds" and value is not None:
            seeds = list(value)
            if not seeds:
                raise StudyInputError("seeds: expected at least one seed")
            for seed in seeds:
                _check_int("seeds", seed, 0)
            if len(set(seeds)) != len(seeds):
                raise StudyInputError(f"seeds: expected distinct values, got {seeds}")
        elif name in ("learning_rate", "learning_rates"):
            rates = list(value) if name == "learning_rates" else [value]
            if not rates:
                raise StudyInputError(f"{name}: expected at least one learning rate")
            for rate in rates:
                if (isinstance(rate, bool) or not isinstance(rate, (int, float, np.number))
                        or not math.isfinite(rate) or rate <= 0):
                    raise StudyInputError(f"{name}: expected a finite number > 0, got {rate!r}")
            if len(set(rates)) != len(rates):
                raise StudyInputError(f"{name}: expected distinct values, got {rates}")
        elif name == "method" and value not in METHODS:
            raise StudyInputError(f"method: expected one of {METHODS}, got {value!r}")


def _check_int(name: str, value: Any, low: int) -> None:
    if not checks.is_int(value) or value < low:
        raise StudyInputError(f"{name}: expected an integer >= {low}, got {value!r}")
