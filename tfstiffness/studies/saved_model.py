"""The stiffness summary of a user's saved Keras model, on one process or a tf.distribute cluster.

`run_summary` loads a ``.keras`` model (custom layers through ``custom_objects``), a data set
(a `tfstiffness.data` name and split, or an ``.npz`` file of arrays) and an optional loss,
runs `streaming.stiffness_summary` over every pair of examples (never forming the N x N
Gram matrix; resumable from its checkpoint in ``stages/``) and writes:

- ``summary.json``: within/between class stiffness and the super-class contrast (sign and
  cosine), the critical length xi by both estimators (``crossing`` and ``linear_fit``), the
  alignment family (m-coherence, gradient diversity, gradient confusion), zero-gradient
  examples, and who computed how many Gram blocks;
- ``results.npz``: the class matrices, stiffness-vs-distance histograms, squared gradient
  norms, neighbourhood stiffness (with a radius) and the alignment statistics;
- ``figures/class_matrix_{cosine,sign}.png`` and ``figures/stiffness_vs_distance.png``
  (both kinds, both xi); TensorBoard (run ``summary``: the scalars; run ``figures``).

Under a multi-worker strategy every worker runs the same call; the chief (worker 0) alone
opens, locks and writes the output directory, the others compute their share of the blocks
and write nothing (see `tfstiffness.distributed.cluster`).

Example:
    >>> import tempfile, keras, numpy as np
    >>> root = tempfile.mkdtemp()
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> model.save(f"{root}/model.keras")
    >>> np.savez(f"{root}/data.npz", x=np.random.rand(20, 3).astype("float32"),
    ...          y=np.arange(20) % 2)
    >>> s = run_summary(f"{root}/out", f"{root}/model.keras", inputs=f"{root}/data.npz",
    ...                 verbose=False)
    >>> s["results"]["examples"], sorted(s["results"]["stiffness"])
    (20, ['cosine', 'sign'])
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tfstiffness.outputs import run_directory
from tfstiffness.studies import runner

__all__ = ["PAIRS", "STRATEGIES", "SummaryData", "load_inputs", "parse_custom_objects",
           "run_summary", "stiffness_vs_distance_figure"]

STRATEGIES = ("none", "mirrored", "multi_worker", "tpu")  # as `cluster.STRATEGIES`
PAIRS = ("within", "between", "all")
KINDS = ("sign", "cosine")
XI_METHODS = ("crossing", "linear_fit")
CHECKPOINT = "summary_state"  # stages/summary_state.npz


@dataclass
class SummaryData:
    """The examples measured: inputs and class labels, an optional second set, and what the
    data says about its classes."""

    x: Any
    y: np.ndarray
    x2: Any = None
    y2: np.ndarray | None = None
    fine_to_coarse: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    coarse_names: tuple[str, ...] | None = None
    source: str = ""

    @property
    def num_classes(self) -> int | None:
        """K from what the data says about its classes (None: from the labels)."""
        for known in (self.fine_to_coarse, self.class_names):
            if known is not None:
                return len(known)
        return None


# --------------------------------------------------------------------------------------------
# Arguments: everything checked before anything is loaded or written
# --------------------------------------------------------------------------------------------


def parse_custom_objects(spec: str | Sequence[str] | None) -> dict[str, Any]:
    """``"module:Name,other.module:fn"`` -> {"Name": object, "fn": object}.

    An entry without ``:`` only imports its module (for classes registered there with
    `keras.saving.register_keras_serializable`).

    Raises:
        runner.StudyInputError: an entry that cannot be imported, naming it.

    Example:
        >>> sorted(parse_custom_objects("collections:OrderedDict,json"))
        ['OrderedDict']
    """
    if spec is None:
        return {}
    entries = [e.strip() for e in (spec.split(",") if isinstance(spec, str) else spec)]
    objects: dict[str, Any] = {}
    for entry in filter(None, entries):
        module_name, _, name = entry.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise runner.StudyInputError(
                f"custom_objects: cannot import module {module_name!r} of {entry!r} ({err}); "
                "give module:name entries importable here (PYTHONPATH).") from None
        if name:
            if not hasattr(module, name):
                raise runner.StudyInputError(f"custom_objects: module {module_name!r} has no "
                                             f"{name!r} (entry {entry!r}).")
            objects[name] = getattr(module, name)
    return objects


def _resolve_loss(loss: str | None, custom_objects: dict[str, Any]) -> Any:
    """None (the model's compiled loss), or the loss `loss` names: a Keras loss name, a
    Keras loss config as JSON, or ``module:name`` (a loss object, class or function)."""
    if loss is None:
        return None
    import keras

    text = loss.strip()
    try:
        if text.startswith("{"):
            return keras.losses.get(json.loads(text))
        if ":" in text:
            found = parse_custom_objects(text)
            item = next(iter(found.values()))
            return item() if isinstance(item, type) else item
        if text in custom_objects:
            item = custom_objects[text]
            return item() if isinstance(item, type) else item
        return keras.losses.get(text)
    except runner.StudyInputError:
        raise
    except (ValueError, TypeError, json.JSONDecodeError) as err:
        raise runner.StudyInputError(
            f"loss: cannot make a loss of {loss!r} ({err}). Give a Keras loss name (e.g. "
            "sparse_categorical_crossentropy), a config such as "
            '\'{"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": '
            "true}}', or module:name; or none for the model's compiled loss.") from None


def _check(output_dir, model, dataset, inputs, split, max_examples, block_size, strategy,
           radius, bins, pairs, method, checkpoint_every) -> None:
    """Refuses bad arguments, naming them (`runner.StudyInputError`)."""
    runner.check_arguments(bins=bins, method=method, max_examples=max_examples)
    if not str(output_dir):
        raise runner.StudyInputError("output_dir: expected a directory path")
    if not os.path.isfile(model):
        raise runner.StudyInputError(f"model: {model} is not a file; give a model saved with "
                                     "model.save('path.keras')")
    if not str(model).endswith(".keras"):
        raise runner.StudyInputError(f"model: expected a .keras file (Keras 3's format, "
                                     f"model.save('path.keras')), got {model}")
    if (dataset is None) == (inputs is None):
        raise runner.StudyInputError("dataset, inputs: give exactly one: a data set name "
                                     "(with its split) or an .npz file of arrays x, y")
    if inputs is not None and not os.path.isfile(inputs):
        raise runner.StudyInputError(f"inputs: {inputs} is not a file; give an .npz file "
                                     "holding arrays x and y (and optionally x2, y2)")
    if inputs is not None and split != "train":
        raise runner.StudyInputError("split: applies to --dataset only; an --inputs file "
                                     "holds its own arrays")
    if block_size is not None and (isinstance(block_size, bool) or not isinstance(
            block_size, (int, np.integer)) or block_size < 1):
        raise runner.StudyInputError(f"block_size: expected an integer >= 1 or none, got "
                                     f"{block_size!r}")
    if isinstance(strategy, str) and strategy not in STRATEGIES:
        raise runner.StudyInputError(f"strategy: expected one of {STRATEGIES}, got "
                                     f"{strategy!r}")
    if radius is not None and not (math.isfinite(radius) and radius > 0):
        raise runner.StudyInputError(f"radius: expected a finite number > 0, got {radius!r}")
    if pairs not in PAIRS:
        raise runner.StudyInputError(f"pairs: expected one of {PAIRS}, got {pairs!r}")
    if not (math.isfinite(checkpoint_every) and checkpoint_every >= 0):
        raise runner.StudyInputError(f"checkpoint_every: expected seconds >= 0, got "
                                     f"{checkpoint_every!r}")


# --------------------------------------------------------------------------------------------
# Data and model
# --------------------------------------------------------------------------------------------


def load_inputs(path: str | os.PathLike, max_examples: int | None = None) -> SummaryData:
    """The arrays of an ``.npz`` file: ``x`` (or ``x/<input name>`` entries for a model with
    several inputs), ``y`` (class labels: integers or one-hot), optionally a second set
    ``x2``/``y2``, ``fine_to_coarse`` [K] and ``class_names`` [K].

    Raises:
        runner.StudyInputError: a missing or malformed entry, named.

    Example:
        >>> import tempfile
        >>> p = tempfile.mkdtemp() + "/d.npz"
        >>> np.savez(p, x=np.zeros((4, 2)), y=np.arange(4))
        >>> load_inputs(p, max_examples=3).x.shape
        (3, 2)
    """
    keep = slice(None, max_examples)
    try:
        with np.load(path, allow_pickle=False) as f:
            entries = {key: f[key] for key in f.files}
    except (OSError, ValueError) as err:
        raise runner.StudyInputError(f"inputs: {path} is not a readable .npz file ({err})")

    def inputs(name: str) -> Any:
        if name in entries:
            return entries[name][keep]
        named = {key.split("/", 1)[1]: v[keep] for key, v in entries.items()
                 if key.startswith(f"{name}/")}
        return named or None

    x, x2 = inputs("x"), inputs("x2")
    if x is None or "y" not in entries:
        raise runner.StudyInputError(f"inputs: {path} must hold arrays 'x' (or 'x/<input "
                                     f"name>' entries) and 'y'; it holds {sorted(entries)}")
    if (x2 is None) != ("y2" not in entries):
        raise runner.StudyInputError(f"inputs: {path} holds {'x2' if x2 is not None else 'y2'}"
                                     " without its partner; give both x2 and y2 or neither")
    names = entries.get("class_names")
    return SummaryData(
        x=x, y=entries["y"][keep], x2=x2, y2=None if x2 is None else entries["y2"][keep],
        fine_to_coarse=entries.get("fine_to_coarse"),
        class_names=None if names is None else tuple(str(n) for n in names),
        source=str(path))


def _load_dataset(dataset: str, split: str, data_dir: str | None,
                  max_examples: int | None, seed: int) -> SummaryData:
    from tfstiffness import data

    try:
        loaded = data.load(dataset, split, data_dir=data_dir, max_examples=max_examples,
                           seed=seed)
    except data.DatasetUnavailableError:
        raise
    except ValueError as err:
        raise runner.StudyInputError(f"dataset {dataset!r}, split {split!r}: {err}") from None
    return SummaryData(x=loaded.x, y=loaded.y, fine_to_coarse=loaded.fine_to_coarse,
                       class_names=tuple(loaded.class_names),
                       coarse_names=loaded.coarse_names, source=f"{dataset}:{split}")


def _load_model(path: str, custom_objects: dict[str, Any]):
    import keras

    try:
        with warnings.catch_warnings():  # a compiled model saved before any training step
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            return keras.saving.load_model(path, custom_objects=custom_objects or None)
    except Exception as err:  # noqa: BLE001 - Keras raises many kinds; all mean "cannot load"
        hint = (" A custom layer, loss or function must be named in --custom_objects "
                "(module:name)." if "custom" in str(err).lower() or "unknown" in
                str(err).lower() or "could not locate" in str(err).lower() else "")
        raise runner.StudyInputError(f"model: cannot load {path}: {type(err).__name__}: "
                                     f"{str(err).splitlines()[0]}{hint}") from None


def _file_digest(path: str) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _validate(model, data: SummaryData, loss, method: str, block_size, radius) -> None:
    """Everything `stiffness_summary` would refuse, refused before the output directory is
    touched: the engine's checks of model, inputs, labels and loss (cheap: one or two
    examples go through the model), class labels, and a radius on integer inputs."""
    from tfstiffness import streaming
    from tfstiffness.engine import gram

    try:
        streaming.summary_labels(data.y, data.y2, data.num_classes)
        gram._setup(model, data.x, data.y, loss, data.x2, data.y2, method, block_size, None,
                    batch_size_name="block_size")
    except (ValueError, TypeError) as err:
        message = str(err)
        if message.startswith("loss: the model is not compiled"):
            message = ("loss: the model was saved without a compiled loss; give --loss (e.g. "
                       "sparse_categorical_crossentropy, or a Keras loss config as JSON)")
        raise runner.StudyInputError(message) from None
    if radius is not None:
        if data.x2 is not None:
            raise runner.StudyInputError("radius: neighbourhoods need one set of examples; "
                                         "this data holds two (x2, y2): drop --radius")
        leaves = list(data.x.values()) if isinstance(data.x, dict) else [data.x]
        if not any(np.asarray(leaf).dtype.kind == "f" for leaf in leaves):
            raise runner.StudyInputError("radius: neighbourhoods are measured in the space of "
                                         "float inputs, and these inputs are all integer ids; "
                                         "drop --radius")


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def run_summary(
    output_dir: str,
    model: str,
    *,
    custom_objects: str | Sequence[str] | None = None,
    dataset: str | None = None,
    split: str = "train",
    data_dir: str | None = None,
    max_examples: int | None = None,
    inputs: str | None = None,
    loss: str | None = None,
    block_size: int | None = None,
    strategy: Any = "none",
    radius: float | None = None,
    bins: int = 20,
    pairs: str = "within",
    method: str = "auto",
    checkpoint_every: float = 60.0,
    seed: int = 0,
    verbose: bool = True,
) -> dict[str, Any]:
    """Measures a saved model's stiffness over every pair of examples (module docstring).

    Args:
        output_dir: Output directory (an `run_directory.OutputDir`; the chief's only).
        model: A model saved as ``.keras``.
        custom_objects: ``module:name`` entries (comma-separated text or a list) of custom
            layers, losses or functions the model needs; ``module`` alone imports it.
        dataset: A `tfstiffness.data` name (with `split`, `data_dir`); or give `inputs`.
        split: The split of `dataset`.
        data_dir: tfds data directory.
        max_examples: Keep the first N examples (of each set) only.
        inputs: An ``.npz`` file (see `load_inputs`).
        loss: None (the model's compiled loss), a Keras loss name, a Keras loss config as
            JSON, or ``module:name``.
        block_size: Examples per Gram block (default: the engine's).
        strategy: "none", "mirrored" (every local device), "multi_worker" (the cluster of
            `TF_CONFIG`; every worker runs the same call), "tpu" (not run in this project's
            tests), or a `tf.distribute.Strategy`. Created first, before other TensorFlow
            work.
        radius: Neighbourhood radius (input units) for neighbourhood stiffness; None skips.
        bins: Equal distance bins on [0, 2] for stiffness vs distance.
        pairs: Pairs binned by distance: "within" class, "between" or "all".
        method: `gradient_gram` method.
        checkpoint_every: Seconds between checkpoints (each one, on a cluster, a reduction
            over the workers).
        seed: Seed of a synthetic data set.
        verbose: Print progress lines.

    Returns:
        The summary (what ``summary.json`` holds); on a non-chief worker, the same results
        without writing them.

    Raises:
        runner.StudyInputError: bad arguments, model, data or loss, before anything is
            written. `cluster.WorkerLostError`: another worker of the cluster stopped.
    """
    from tfstiffness.distributed import cluster

    _check(output_dir, model, dataset, inputs, split, max_examples, block_size, strategy,
           radius, bins, pairs, method, checkpoint_every)
    if isinstance(strategy, str):
        try:
            strategy_name, strategy = strategy, cluster.make_strategy(strategy)
        except ValueError as err:
            raise runner.StudyInputError(str(err)) from None
    else:
        strategy_name = type(strategy).__name__
    chief = cluster.is_chief(strategy)
    if chief:
        run_directory.check_output_dir(output_dir)
    objects = parse_custom_objects(custom_objects)
    loss_object = _resolve_loss(loss, objects)
    data = (load_inputs(inputs, max_examples) if inputs is not None else
            _load_dataset(dataset, split, data_dir, max_examples, seed))
    keras_model = _load_model(model, objects)
    _validate(keras_model, data, loss_object, method, block_size, radius)

    config = {"study": "summary", "model": os.path.abspath(model),
              "model_digest": _file_digest(model), "custom_objects": sorted(objects),
              "dataset": dataset, "split": split if dataset else None,
              "max_examples": max_examples, "seed": seed if dataset else None,
              "inputs": None if inputs is None else os.path.abspath(inputs),
              "inputs_digest": None if inputs is None else _file_digest(inputs),
              "loss": loss, "block_size": block_size, "radius": radius, "bins": bins,
              "pairs": pairs, "method": method}
    out = (run_directory.OutputDir(output_dir, config, name="summary", verbose=verbose)
           if chief else None)
    say = out.progress if out is not None else (lambda line: None)
    workers = cluster.num_workers(strategy)
    checkpoint = (out.stages_dir / f"{CHECKPOINT}.npz") if out is not None else \
        Path(output_dir) / "stages" / f"{CHECKPOINT}.npz"  # ignored off the chief
    n = len(data.y)
    say(f"{type(keras_model).__name__} {keras_model.name!r} "
        f"({keras_model.count_params():,} parameters) on {n:,} examples of {data.source}"
        + (f" x {len(data.y2):,}" if data.y2 is not None else "")
        + (f"; {strategy_name} over {strategy.num_replicas_in_sync} replicas"
           f"{f' on {workers} workers' if workers > 1 else ''}" if strategy is not None
           else "")
        + ("; resuming from the checkpoint in stages/" if checkpoint.exists() else ""))

    from tfstiffness import streaming

    start = time.monotonic()
    edges = np.linspace(0.0, 2.0, bins + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zero gradients: counted and reported
        result = streaming.stiffness_summary(
            keras_model, data.x, data.y, loss=loss_object, x2=data.x2, y2=data.y2,
            num_classes=data.num_classes, fine_to_coarse=data.fine_to_coarse, distance_edges=edges, pairs=pairs,
            radius=radius, block_size=block_size, method=method, strategy=strategy,
            checkpoint=checkpoint, checkpoint_every=checkpoint_every,
            verbose=None if verbose and chief else False)
    seconds = time.monotonic() - start
    results, arrays = _results(result, data, pairs)
    results["loss"] = loss or "compiled"
    results["strategy"] = {"name": strategy_name, "workers": workers,
                           "replicas": 1 if strategy is None else
                           strategy.num_replicas_in_sync}
    if out is None:
        if verbose:
            resolver = getattr(strategy, "cluster_resolver", None)
            who = f"{resolver.task_type}:{resolver.task_id}" if resolver else "worker"
            print(f"[summary {who}] done: Gram blocks computed by worker "
                  f"{list(result.blocks_by_worker)} of {result.blocks_total}; the chief "
                  f"writes {output_dir}", flush=True)
        return {"config": config, "results": results}
    figures = {f"class_matrix_{kind}": _class_matrix_figure(result, data, kind)
               for kind in ("cosine", "sign")}
    if result.distance_curve:
        figures["stiffness_vs_distance"] = stiffness_vs_distance_figure(result)
    from tfstiffness.outputs import tensorboard

    with out.step_events("summary", 0) as writer:
        tensorboard.write_scalars(writer, _scalars(results), 0, prefix="summary")
    headline = [f"{kind}: within {runner.format_number(results['stiffness'][kind]['within'])}"
                f", between {runner.format_number(results['stiffness'][kind]['between'])}"
                + (f", super-class contrast "
                   f"{runner.format_number(results['stiffness'][kind]['superclass_contrast'])}"
                   if "superclass_contrast" in results["stiffness"][kind] else "")
                for kind in ("cosine", "sign")]
    run_info = {"summary_seconds": seconds, "blocks_resumed": result.blocks_resumed}
    return runner.finish(out, results, arrays, figures, run_info, headline=headline)


def _xi(curve, method: str) -> dict[str, Any]:
    from tfstiffness import measures

    critical = measures.critical_length(curve, method=method)
    entry = {"xi": critical.xi, "status": critical.status, "bound": critical.bound,
             "text": str(critical)}
    if method == "linear_fit":
        entry.update(slope=critical.slope, intercept=critical.intercept,
                     r_squared=critical.r_squared, extrapolated=critical.extrapolated)
    return entry


def _results(result, data: SummaryData, pairs: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """summary.json's results and results.npz's arrays of a `StiffnessSummary`."""
    stiffness: dict[str, Any] = {}
    arrays: dict[str, Any] = {"y": data.y, "sq_norms": result.sq_norms,
                              "blocks_by_worker": np.asarray(result.blocks_by_worker)}
    if data.y2 is not None:
        arrays.update(y2=data.y2, sq_norms2=result.sq_norms2)
    for kind in KINDS:
        entry: dict[str, Any] = {"within": result.within[kind],
                                 "between": result.between[kind]}
        if kind in result.superclass_contrast:
            entry["superclass_contrast"] = result.superclass_contrast[kind]
        arrays[f"class_matrix_{kind}"] = result.class_matrix[kind]
        curve = result.distance_curve.get(kind)
        if curve is not None:
            entry["xi"] = {method: _xi(curve, method) for method in XI_METHODS}
            arrays[f"curve_means_{kind}"] = curve.means
            arrays["curve_edges"], arrays["curve_counts"] = curve.edges, curve.counts
        if kind in result.neighbourhood:
            values = result.neighbourhood[kind]
            finite = values[np.isfinite(values)]
            entry["neighbourhood_mean"] = float(finite.mean()) if finite.size else None
            arrays[f"neighbourhood_{kind}"] = values
        stiffness[kind] = entry
    if result.neighbour_counts is not None:
        arrays["neighbour_counts"] = result.neighbour_counts
    stats = result.alignment
    alignment: dict[str, Any] = {"gradient_confusion": {k: stats.gradient_confusion(k)
                                                        for k in ("gram", "cosine")}}
    if stats.one_set:
        alignment.update(m_coherence=stats.m_coherence(),
                         gradient_diversity=stats.gradient_diversity(),
                         class_m_coherence=stats.class_m_coherence().tolist())
    for name in ("block_sums", "traces", "min_off_diagonal", "min_off_diagonal_cosine"):
        arrays[f"alignment_{name}"] = getattr(stats, name)
    results = {"examples": len(data.y), "examples2": None if data.y2 is None else len(data.y2),
               "num_classes": int(result.class_matrix["cosine"].shape[0]), "pairs": pairs,
               "stiffness": stiffness, "alignment": alignment,
               "zero_gradients": result.num_zero_gradient,
               "blocks": {"total": result.blocks_total, "resumed": result.blocks_resumed,
                          "by_worker": list(result.blocks_by_worker)}}
    return results, arrays


def _scalars(results: dict[str, Any]) -> dict[str, Any]:
    scalars: dict[str, Any] = {}
    for kind, entry in results["stiffness"].items():
        for name in ("within", "between", "superclass_contrast", "neighbourhood_mean"):
            if name in entry:
                scalars[f"{kind}/{name}"] = entry[name]
        for method, xi in entry.get("xi", {}).items():
            scalars[f"{kind}/xi_{method}"] = xi["xi"]
    for name in ("m_coherence", "gradient_diversity"):
        scalars[f"alignment/{name}"] = results["alignment"].get(name)
    for kind, value in results["alignment"]["gradient_confusion"].items():
        scalars[f"alignment/gradient_confusion_{kind}"] = value
    return scalars


def _class_matrix_figure(result, data: SummaryData, kind: str):
    from tfstiffness.outputs import plots

    return plots.class_matrix(result.class_matrix[kind], fine_to_coarse=data.fine_to_coarse,
                              class_names=data.class_names, coarse_names=data.coarse_names,
                              title=f"Class stiffness ({kind})")


def stiffness_vs_distance_figure(result):
    """Stiffness vs input distance, one panel per kind, with xi by both estimators: the
    crossing (`plots.stiffness_vs_distance`) and the count-weighted linear fit (its line
    dotted, its xi dash-dotted; or the reason it gives none, in the legend).

    Args:
        result: A `streaming.StiffnessSummary` with distance curves.

    Returns:
        A matplotlib figure (Agg canvas).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from tfstiffness import measures
    from tfstiffness.outputs import plots

    kinds = [kind for kind in ("cosine", "sign") if kind in result.distance_curve]
    fig = Figure(figsize=(7.0 * len(kinds), 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, kind in zip(fig.subplots(1, len(kinds), squeeze=False)[0], kinds):
        curve = result.distance_curve[kind]
        crossing = measures.critical_length(curve, method="crossing")
        plots.stiffness_vs_distance(curve, crossing, ax=ax, label=f"mean {kind} stiffness",
                                    title=f"{kind.capitalize()} stiffness vs distance "
                                          f"({curve.pairs} pairs)")
        fit = measures.critical_length(curve, method="linear_fit")
        if fit.slope is not None and np.isfinite(fit.slope):
            filled = curve.centres[np.asarray(curve.counts) > 0]  # where the line was fitted
            d = np.array([filled.min(), filled.max()])
            ax.plot(d, fit.slope * d + fit.intercept, ":", color="C3", linewidth=1.2,
                    label=f"linear fit (R² {fit.r_squared:.2f})")
        if fit.xi is not None:
            ax.axvline(fit.xi, color="C3", linestyle="-.", linewidth=1.2,
                       label=f"linear fit: ξ = {fit.xi:.3g}"
                             + (" (extrapolated)" if fit.extrapolated else ""))
        else:
            ax.plot([], [], linestyle="none", label=f"linear fit: no ξ ({fit.status})")
        ax.legend(loc="best", fontsize=8, framealpha=0.85)
    return fig
