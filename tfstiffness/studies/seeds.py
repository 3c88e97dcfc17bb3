"""A study repeated over seeds: one resumable run per seed, the mean and an interval across seeds.

`run_seeds` runs a study function once per seed, each in its own output directory
``<output_dir>/seed=S`` (its own lock, config, checkpoints and files, so each seed resumes
after an interruption on its own), with its TensorBoard runs under
``<output_dir>/tensorboard/seed=S/`` so that one ``tensorboard --logdir <output_dir>/tensorboard``
overlays the seeds. Then, in ``<output_dir>``:

- ``summary.json``: ``results.per_seed`` (each seed's results, as its own summary.json holds
  them) and ``results.across_seeds``: the same tree, where every number measured differently
  across seeds becomes ``{"mean", "std", "low", "high", "n", "values"}`` (`across_seeds`):
  the mean over the seeds that define it and a Student-t interval for that mean
  (`t_interval`); every value equal in all seeds stays as it is.
- ``results.npz``: every array of the seeds' results.npz, stacked on a leading seed axis,
  and ``seeds``.
- ``figures/``: the study's figures of the mean over seeds, the band being the interval across
  seeds (`mean_with_interval`), and TensorBoard run ``figures``; optionally scalars of the
  mean in TensorBoard runs of the study's choice (e.g. ``mean_over_seeds/stiffness``).

The interval across seeds says how much the result depends on the seed (initial weights,
batch order, probe draw), which the bootstrap intervals of one run (over probe examples) do
not cover.

Example:
    >>> round(student_t_quantile(0.95, 2), 3)
    4.303
    >>> t_interval([1.0, 2.0, 3.0])["low"] < 2.0 < t_interval([1.0, 2.0, 3.0])["high"]
    True
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfstiffness import checks
from tfstiffness.outputs import run_directory
from tfstiffness.studies import config as config_lib
from tfstiffness.studies import runner
from tfstiffness.studies.config import StudyConfig

__all__ = ["across_seeds", "band_note", "mean_with_interval", "run_seeds",
           "student_t_quantile", "t_interval"]

#: Coverage of the intervals across seeds.
CONFIDENCE = 0.95


# --------------------------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------------------------


def _t_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with an integer number of degrees of freedom (the finite
    series of Abramowitz and Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2 == 1:
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 3) // 2 + 1):
            term *= cos2 * (2 * k) / (2 * k + 1)
            total += term
        return 2.0 / math.pi * (theta + (math.sin(theta) * math.cos(theta) * total
                                         if df > 1 else 0.0))
    term, total = 1.0, 1.0
    for k in range(1, (df - 2) // 2 + 1):
        term *= cos2 * (2 * k - 1) / (2 * k)
        total += term
    return math.sin(theta) * total


def student_t_quantile(confidence: float, df: int) -> float:
    """The t with ``P(|T| <= t) = confidence`` for Student's t with `df` degrees of freedom.

    Exact for integer `df` (bisection on the closed-form distribution function).

    Args:
        confidence: Two-sided coverage in (0, 1), e.g. 0.95.
        df: Degrees of freedom, an integer >= 1.

    Example:
        >>> round(student_t_quantile(0.95, 1), 2), round(student_t_quantile(0.95, 30), 3)
        (12.71, 2.042)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if not checks.is_int(df) or df < 1:
        raise ValueError(f"df must be an integer >= 1, got {df!r}")
    low, high = 0.0, 1.0
    while _t_two_sided(high, int(df)) < confidence:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if _t_two_sided(middle, int(df)) < confidence:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Mean of `values` and the Student-t interval for it: ``mean +- t * std / sqrt(n)``.

    NaN values (a measure a seed did not define) are left out; ``n`` counts the rest. With
    one value there is no spread: ``std``, ``low`` and ``high`` are None.

    Returns:
        {"mean", "std" (n - 1 in the denominator), "low", "high", "n", "values"}.

    Example:
        >>> t_interval([0.2, 0.4])["n"], t_interval([0.2, float("nan")])["low"]
        (2, None)
    """
    all_values = [float(v) for v in values]
    kept = np.array([v for v in all_values if math.isfinite(v)])
    out: dict[str, Any] = {"mean": None, "std": None, "low": None, "high": None,
                           "n": int(kept.size),
                           "values": [v if math.isfinite(v) else None for v in all_values]}
    if kept.size:
        out["mean"] = float(kept.mean())
    if kept.size > 1:
        std = float(kept.std(ddof=1))
        half = student_t_quantile(confidence, kept.size - 1) * std / math.sqrt(kept.size)
        out.update(std=std, low=out["mean"] - half, high=out["mean"] + half)
    return out


def band_note(num_seeds: int, confidence: float = CONFIDENCE) -> str:
    """The legend text of a band across seeds.

    Example:
        >>> band_note(3)
        '95% t-interval of the mean over 3 seeds'
    """
    return f"{confidence:.0%} t-interval of the mean over {num_seeds} seeds"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def across_seeds(values: Sequence[Any]) -> Any:
    """One summary tree from the same tree of each seed.

    Dicts with the same keys and lists of the same length are combined item by item; a leaf
    equal in every seed stays as it is; numbers that differ (None for a seed that did not
    define one) become `t_interval`; any other leaves that differ become ``{"values": [...]}``.

    Example:
        >>> across_seeds([{"epoch": 2, "within": 0.1}, {"epoch": 2, "within": 0.3}])["epoch"]
        2
        >>> round(across_seeds([{"within": 0.1}, {"within": 0.3}])["within"]["mean"], 3)
        0.2
    """
    first = values[0]
    if all(isinstance(v, Mapping) for v in values) and all(
            set(v) == set(first) for v in values):
        return {key: across_seeds([v[key] for v in values]) for key in first}
    if all(isinstance(v, list) for v in values) and all(len(v) == len(first) for v in values):
        return [across_seeds(items) for items in zip(*values)]
    if all(v == first for v in values):
        return first
    if all(_is_number(v) or v is None for v in values) and any(_is_number(v) for v in values):
        return t_interval([math.nan if v is None else v for v in values])
    return {"values": list(values)}


def mean_with_interval(stacked: Mapping[str, np.ndarray],
                       confidence: float = CONFIDENCE) -> dict[str, np.ndarray]:
    """Arrays of several seeds (leading seed axis) as one run's: the mean over seeds of every
    floating-point array (NaN where any seed is NaN: a mean only where every seed defines the
    value), with ``KEY_ci_low`` / ``KEY_ci_high``, the `t_interval` across seeds, for every
    series (one number per measured epoch); other arrays (labels, statuses, names) are the
    first seed's. Bootstrap intervals of the single runs (``..._ci_...`` keys) are replaced.

    Example:
        >>> out = mean_with_interval({"seeds": np.array([0, 1]),
        ...                           "within": np.array([[0.1, 0.2], [0.3, 0.4]])})
        >>> out["within"].round(2).tolist(), bool(out["within_ci_low"][0] < 0.1)
        ([0.2, 0.3], True)
    """
    seeds = np.asarray(stacked["seeds"])
    count = seeds.size
    out: dict[str, np.ndarray] = {}
    for key, value in stacked.items():
        if key == "seeds" or key.endswith(("_ci_low", "_ci_high")):
            continue
        value = np.asarray(value)
        if value.dtype.kind != "f":
            out[key] = value[0]
            continue
        out[key] = value.mean(axis=0)
        if value.ndim == 2 and count > 1:
            std = value.std(axis=0, ddof=1)
            half = student_t_quantile(confidence, count - 1) * std / math.sqrt(count)
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = out[key] - half, out[key] + half
    return out


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------

#: ``figures(study, stacked, kwargs)`` -> name -> figure of a run over seeds (`run_seeds`).
FiguresFn = Callable[[str, Mapping[str, np.ndarray], Mapping[str, Any]], Mapping[str, Any]]
#: ``tensorboard(averaged)`` -> run name -> (steps, tag -> series) of the mean over seeds.
TensorBoardFn = Callable[[Mapping[str, np.ndarray]],
                         Mapping[str, tuple[Sequence[int], Mapping[str, np.ndarray]]]]
#: ``headline(summary results)`` -> the closing lines of a run over seeds.
HeadlineFn = Callable[[Mapping[str, Any]], Sequence[str]]


def _stacked_results(paths: Sequence[Path], seeds: Sequence[int]) -> dict[str, np.ndarray]:
    """Every array found with one shape and dtype kind in all the seeds' results.npz, stacked
    on a leading seed axis, and ``seeds``."""
    loaded = []
    for path in paths:
        with np.load(path / "results.npz", allow_pickle=False) as data:
            loaded.append({key: data[key] for key in data.files})
    stacked: dict[str, np.ndarray] = {"seeds": np.asarray(seeds, np.int64)}
    for key, first in loaded[0].items():
        parts = [arrays.get(key) for arrays in loaded]
        if all(p is not None and p.shape == first.shape and p.dtype.kind == first.dtype.kind
               for p in parts):
            stacked[key] = np.stack(parts)
    return stacked


def scalar_series(averaged: Mapping[str, np.ndarray], keys: Sequence[str], prefix: str,
                  length: int) -> dict[str, np.ndarray]:
    """``{prefix + KEY-without-prefix: [E] series}`` of the averaged float series among `keys`
    starting with `prefix` (the bootstrap interval ends left out); for TensorBoard runs of
    the mean over seeds."""
    return {key[len(prefix):]: np.asarray(averaged[key]) for key in keys
            if key.startswith(prefix) and not key.endswith(("_ci_low", "_ci_high"))
            and np.asarray(averaged[key]).shape == (length,)
            and np.asarray(averaged[key]).dtype.kind == "f"}


def run_seeds(
    function: Callable[..., dict[str, Any]],
    output_dir: str | os.PathLike,
    config: StudyConfig,
    *,
    figures: FiguresFn,
    tensorboard: TensorBoardFn | None = None,
    headline: HeadlineFn | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Runs ``function(output_dir/seed=S, seed=S, **config.seed_kwargs())`` for each seed of
    `config` and combines them.

    Args:
        function: The study function (its own checks, resume and files per seed); called
            with ``seed``, ``verbose`` and ``tensorboard_dir`` besides the config's other
            parameters (`StudyConfig.seed_kwargs`).
        output_dir: The combined run's directory; each seed's run is ``seed=S`` inside it.
        config: The study's parameters; ``config.seeds``: distinct seeds (integers >= 0), in
            the order run. Its `StudyConfig.seeds_record` is the combined run's config.json.
        figures: ``figures(study, stacked, kwargs)`` -> name -> figure of the combined run,
            from the seeds' results.npz arrays stacked on a leading seed axis (`kwargs`: the
            seeds' shared parameters).
        tensorboard: Optional ``tensorboard(averaged)`` -> run name -> (steps, tag ->
            series): scalars of the mean over seeds (`mean_with_interval`), written at
            those steps.
        headline: Optional ``headline(summary results)`` -> lines printed at the end.
        verbose: Print progress lines.

    Returns:
        The combined summary (what ``output_dir/summary.json`` holds).

    Raises:
        StudyInputError: bad seeds; what the study raises for its arguments, before
            anything is written; `run_directory.ConfigMismatchError` when ``output_dir`` holds
            a combined run of other arguments.
    """
    started = time.monotonic()
    config_lib.check_arguments(seeds=config.seeds)
    seeds = [int(s) for s in config.seeds]
    study, kwargs = config.STUDY, config.seed_kwargs()
    record = config.seeds_record()
    output_dir = Path(output_dir)
    run_directory.check_output_dir(output_dir)
    # Refused before a seed runs; the combined directory is opened (locked, config written)
    # once every seed is done, so that a seed's refusal leaves nothing behind.
    run_directory.check_config(output_dir, record)
    tensorboard_root = output_dir / "tensorboard"
    summaries = {}
    for index, seed in enumerate(seeds):
        if verbose:
            print(f"[{study}] seed {seed} ({index + 1} of {len(seeds)}): "
                  f"{output_dir / f'seed={seed}'}", flush=True)
        summaries[seed] = function(str(output_dir / f"seed={seed}"), seed=seed,
                                   verbose=verbose, tensorboard_dir=tensorboard_root
                                   / f"seed={seed}", **kwargs)
    out = run_directory.OutputDir(output_dir, record, name=study, verbose=verbose,
                                  started=started)
    stacked = _stacked_results([output_dir / f"seed={seed}" for seed in seeds], seeds)
    per_seed = {f"seed={seed}": summaries[seed]["results"] for seed in seeds}
    results = {"seeds": seeds,
               "across_seeds_note": (
                   f"across_seeds: each number that differs across seeds is the mean over the "
                   f"seeds that define it with a {CONFIDENCE:.0%} Student-t interval of that "
                   "mean (low, high), its standard deviation and the values per seed"),
               "across_seeds": across_seeds([per_seed[f"seed={s}"] for s in seeds]),
               "per_seed": per_seed}
    if tensorboard is not None:
        from tfstiffness.outputs import tensorboard as summary_lib

        averaged = mean_with_interval(stacked)
        for run, (steps, series) in tensorboard(averaged).items():
            for e, step in enumerate(steps):
                with out.step_events(run, int(step)) as writer:
                    summary_lib.write_scalars(
                        writer, {tag: values[e] for tag, values in series.items()}, int(step),
                        prefix="")
    run_info = {"seeds": {f"seed={seed}": summaries[seed]["run"] for seed in seeds}}
    lines = list(headline(results)) if headline is not None else []
    return runner.finish(out, results, stacked, figures(study, stacked, kwargs), run_info,
                         headline=lines)


_RUN_DOC = """

    Args:
        output_dir: Output directory (a `run_directory.OutputDir`: locked while running;
            rerunning with the same arguments resumes, other arguments are refused).
        config: The study's parameters, a `{config}` (default: its defaults); each field is
            also a keyword argument (`overrides`), and ``seeds`` repeats the study over seeds
            (`run_seeds`: one resumable run per seed in ``output_dir/seed=S``, and the mean
            with an interval across seeds in ``output_dir``).
        verbose: Print progress lines.
        tensorboard_dir: Where the TensorBoard runs go (default ``output_dir/tensorboard``).
        **overrides: Fields of `{config}` replacing those of `config`.

    Returns:
        The summary (what ``summary.json`` holds).

    Raises:
        TypeError: an argument that is not a field of `{config}`.
        StudyInputError: a bad argument, or data or a model that cannot be used;
            `run_directory.OutputDirError`, `run_directory.ConfigMismatchError`,
            `data.DatasetUnavailableError`: all before anything is written.
    """


def study_function(
    config_class: type[StudyConfig],
    run_once: Callable[..., dict[str, Any]],
    *,
    name: str,
    description: str,
    figures: FiguresFn,
    tensorboard: TensorBoardFn | None = None,
    headline: HeadlineFn | None = None,
) -> Callable[..., dict[str, Any]]:
    """A study's ``run_*`` function, from its config class: the one entry point of every study.

    The function made, ``run(output_dir, config=None, *, verbose=True, tensorboard_dir=None,
    **overrides)``, builds the config (`StudyConfig.build`), checks it (`StudyConfig.check`)
    and runs ``run_once(output_dir, config, verbose=..., tensorboard_dir=...)`` once, or, when
    ``config.seeds`` is set, once per seed through `run_seeds` with `figures`, `tensorboard`
    and `headline`.

    Args:
        config_class: The study's config dataclass.
        run_once: Runs the study for one seed with a checked config.
        name: The function's name (``run_class_stiffness``, ...).
        description: The first paragraphs of its docstring; the arguments are documented
            after them, the same for every study.
        figures, tensorboard, headline: As `run_seeds`.
    """

    def run(output_dir: str, config: StudyConfig | None = None, *, verbose: bool = True,
            tensorboard_dir: str | os.PathLike | None = None,
            **overrides: Any) -> dict[str, Any]:
        config = config_class.build(config, **overrides)
        config.check()
        if config.seeds is not None:
            return run_seeds(run, output_dir, config, figures=figures, tensorboard=tensorboard,
                             headline=headline, verbose=verbose)
        return run_once(output_dir, config, verbose=verbose, tensorboard_dir=tensorboard_dir)

    run.__name__ = run.__qualname__ = name
    run.__module__ = config_class.__module__
    run.__doc__ = description.rstrip() + _RUN_DOC.format(config=config_class.__name__)
    return run
