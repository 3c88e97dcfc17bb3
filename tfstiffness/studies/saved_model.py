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

import dataclasses
import importlib
import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfstiffness.errors import ConfigMismatchError, CorruptFileError, StudyInputError
from tfstiffness.outputs import run_directory, stage_record
from tfstiffness.studies import config as config_lib
from tfstiffness.studies import progress, runner
from tfstiffness.studies import results as result_dicts
from tfstiffness.studies.config import parameter

__all__ = ["PAIRS", "STRATEGIES", "SummaryConfig", "SummaryData", "load_inputs",
           "parse_custom_objects", "run_summary"]

STRATEGIES = ("none", "mirrored", "multi_worker", "tpu")  # as `cluster.STRATEGIES`
PAIRS = ("within", "between", "all")
CHECKPOINT = "summary_state"  # stages/summary_state.npz


@dataclasses.dataclass
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
        StudyInputError: an entry that cannot be imported, naming it.

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
            raise StudyInputError(
                f"custom_objects: cannot import module {module_name!r} of {entry!r} ({err}); "
                "give module:name entries importable here (PYTHONPATH).") from None
        if name:
            if not hasattr(module, name):
                raise StudyInputError(f"custom_objects: module {module_name!r} has no "
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
            return _checked_loss(text, item() if isinstance(item, type) else item)
        if text in custom_objects:
            item = custom_objects[text]
            return item() if isinstance(item, type) else item
        return keras.losses.get(text)
    except StudyInputError:
        raise
    except (ValueError, TypeError, json.JSONDecodeError) as err:
        raise StudyInputError(
            f"loss: cannot make a loss of {loss!r} ({err}). Give a Keras loss name (e.g. "
            "sparse_categorical_crossentropy), a config such as "
            '\'{"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": '
            "true}}', or module:name; or none for the model's compiled loss.") from None


def _checked_loss(text: str, loss: Any) -> Any:
    """`loss` if it can be called as loss(y_true, y_pred), else a StudyInputError naming it."""
    try:
        inspect.signature(loss).bind(None, None)
    except TypeError as err:
        raise StudyInputError(f"loss: {text} cannot be called as loss(y_true, y_pred) "
                              f"({err}); give a loss function or class") from None
    except ValueError:  # no signature to inspect (some builtins): the engine's check decides
        pass
    return loss


def _check(output_dir, model, dataset, inputs, split, max_examples, block_size, strategy,
           radius, bins, pairs, method, checkpoint_every) -> None:
    """Refuses bad arguments, naming them (`StudyInputError`)."""
    config_lib.check_arguments(bins=bins, method=method, max_examples=max_examples)
    if not str(output_dir):
        raise StudyInputError("output_dir: expected a directory path")
    if not os.path.isfile(model):
        raise StudyInputError(f"model: {model} is not a file; give a model saved with "
                              "model.save('path.keras')")
    if not str(model).endswith(".keras"):
        raise StudyInputError(f"model: expected a .keras file (Keras 3's format, "
                              f"model.save('path.keras')), got {model}")
    if (dataset is None) == (inputs is None):
        raise StudyInputError("dataset, inputs: give exactly one: a data set name "
                              "(with its split) or an .npz file of arrays x, y")
    if inputs is not None and not os.path.isfile(inputs):
        raise StudyInputError(f"inputs: {inputs} is not a file; give an .npz file "
                              "holding arrays x and y (and optionally x2, y2)")
    if inputs is not None and split != "train":
        raise StudyInputError("split: applies to --dataset only; an --inputs file "
                              "holds its own arrays")
    if block_size is not None and (isinstance(block_size, bool) or not isinstance(
            block_size, (int, np.integer)) or block_size < 1):
        raise StudyInputError(f"block_size: expected an integer >= 1 or none, got "
                              f"{block_size!r}")
    if isinstance(strategy, str) and strategy not in STRATEGIES:
        raise StudyInputError(f"strategy: expected one of {STRATEGIES}, got "
                              f"{strategy!r}")
    if radius is not None and not (math.isfinite(radius) and radius > 0):
        raise StudyInputError(f"radius: expected a finite number > 0, got {radius!r}")
    if pairs not in PAIRS:
        raise StudyInputError(f"pairs: expected one of {PAIRS}, got {pairs!r}")
    if not (math.isfinite(checkpoint_every) and checkpoint_every >= 0):
        raise StudyInputError(f"checkpoint_every: expected seconds >= 0, got "
                              f"{checkpoint_every!r}")


# --------------------------------------------------------------------------------------------
# Data and model
# --------------------------------------------------------------------------------------------


def load_inputs(path: str | os.PathLike, max_examples: int | None = None) -> SummaryData:
    """The arrays of an ``.npz`` file: ``x`` (or ``x/<input name>`` entries for a model with
    several inputs), ``y`` (class labels: integers or one-hot), optionally a second set
    ``x2``/``y2``, ``fine_to_coarse`` [K] and ``class_names`` [K].

    Raises:
        StudyInputError: a missing or malformed entry, named.

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
        raise StudyInputError(f"inputs: {path} is not a readable .npz file ({err})")

    def inputs(name: str) -> Any:
        if name in entries:
            return entries[name][keep]
        named = {key.split("/", 1)[1]: v[keep] for key, v in entries.items()
                 if key.startswith(f"{name}/")}
        return named or None

    x, x2 = inputs("x"), inputs("x2")
    if x is None or "y" not in entries:
        raise StudyInputError(f"inputs: {path} must hold arrays 'x' (or 'x/<input "
                              f"name>' entries) and 'y'; it holds {sorted(entries)}")
    if (x2 is None) != ("y2" not in entries):
        raise StudyInputError(f"inputs: {path} holds {'x2' if x2 is not None else 'y2'}"
                              " without its partner; give both x2 and y2 or neither")
    if np.size(entries["y"][keep]) == 0:
        raise StudyInputError(f"inputs: {path} holds no examples ('y' is empty); give at least "
                              "one")
    names = entries.get("class_names")
    data = SummaryData(
        x=x, y=entries["y"][keep], x2=x2, y2=None if x2 is None else entries["y2"][keep],
        fine_to_coarse=entries.get("fine_to_coarse"),
        class_names=None if names is None else tuple(str(n) for n in names),
        source=str(path))
    # K comes from a class table when there is one: refuse one shorter than the labels need.
    labels = [np.asarray(y) for y in (data.y, data.y2) if y is not None and np.size(y)]
    if all(y.dtype.kind in "biu" and y.ndim == 1 for y in labels):  # else: the label checks
        top = max(int(y.max()) for y in labels)
        for name, table in (("fine_to_coarse", data.fine_to_coarse),
                            ("class_names", data.class_names)):
            if table is not None and len(table) <= top:
                raise StudyInputError(f"inputs: {name} has {len(table)} entries, one per "
                                      f"class, but the labels go up to {top}; give {top + 1}")
    return data


def _load_dataset(dataset: str, split: str, data_dir: str | None,
                  max_examples: int | None, seed: int) -> SummaryData:
    from tfstiffness import data

    try:
        loaded = data.load(dataset, split, data_dir=data_dir, max_examples=max_examples,
                           seed=seed)
    except data.DatasetUnavailableError:
        raise
    except ValueError as err:
        raise StudyInputError(f"dataset {dataset!r}, split {split!r}: {err}") from None
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
        raise StudyInputError(f"model: cannot load {path}: {type(err).__name__}: "
                              f"{str(err).splitlines()[0]}{hint}") from None


def _validate(model, data: SummaryData, loss, method: str, block_size, radius) -> None:
    """Everything `stiffness_summary` would refuse, refused before the output directory is
    touched: the engine's checks of model, inputs, labels and loss (cheap: one or two
    examples go through the model), class labels, and a radius on integer inputs."""
    from tfstiffness import streaming
    from tfstiffness.engine.run import prepare_run

    try:
        streaming.summary_labels(data.y, data.y2, data.num_classes)
        prepare_run(model, data.x, data.y, loss, data.x2, data.y2, method, block_size, None,
                    batch_size_name="block_size")
    except (ValueError, TypeError) as err:
        message = str(err)
        if message.startswith("loss: the model is not compiled"):
            message = ("loss: the model was saved without a compiled loss; give --loss (e.g. "
                       "sparse_categorical_crossentropy, or a Keras loss config as JSON)")
        raise StudyInputError(message) from None
    if radius is not None:
        if data.x2 is not None:
            raise StudyInputError("radius: neighbourhoods need one set of examples; "
                                  "this data holds two (x2, y2): drop --radius")
        leaves = list(data.x.values()) if isinstance(data.x, dict) else [data.x]
        if not any(np.asarray(leaf).dtype.kind == "f" for leaf in leaves):
            raise StudyInputError("radius: neighbourhoods are measured in the space of "
                                  "float inputs, and these inputs are all integer ids; "
                                  "drop --radius")


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class SummaryConfig(config_lib.StudyConfig):
    """The parameters of `run_summary` (see it for each one's meaning).

    config.json (`record`) names the model and inputs files by absolute path and digest, the
    custom objects by name, and the split and seed only for a `dataset`.
    """

    STUDY = "summary"

    model: str | None = parameter(None, "The model, saved with model.save('path.keras').",
                                  flag="string", required=True)
    custom_objects: str | Sequence[str] | None = parameter(
        (), "Custom layers, losses or functions the model needs, as module:name "
        "(comma-separated); a bare module is imported for its registered classes.",
        flag="list")
    dataset: str | None = parameter(None, "A data set of tfstiffness.data (e.g. mnist, "
                                    "cifar10, cifar100, hierarchical_images); or give "
                                    "--inputs.", flag="string")
    split: str = parameter("train", "The split of --dataset.", flag="string")
    data_dir: str | None = parameter(None, config_lib.DATA_DIR_HELP, flag="string")
    max_examples: int | None = parameter(None, "Use the first N examples (of each set) only; "
                                         "none: all.", flag="integer", lower_bound=1)
    inputs: str | None = parameter(None, "An .npz file with arrays x, y (class labels) and "
                                   "optionally x2, y2 (a second set: cross-set stiffness), "
                                   "fine_to_coarse, class_names.", flag="string")
    loss: str | None = parameter(
        None, "The loss: a Keras loss name, a Keras loss config as JSON (e.g. "
        "'{\"class_name\": \"SparseCategoricalCrossentropy\", \"config\": "
        "{\"from_logits\": true}}') or module:name; none: the model's compiled loss.",
        flag="string")
    block_size: int | None = parameter(None, "Examples per Gram block (memory grows with its "
                                       "square); none: the engine's default.", flag="integer",
                                       lower_bound=1)
    strategy: str | object = parameter("none", "none: one device; mirrored: every local GPU; "
                              "multi_worker: the cluster of TF_CONFIG (run the same command "
                              "on every worker); tpu: TPUStrategy (not run here).",
                              flag="enum", choices=STRATEGIES)
    radius: float | None = parameter(None, "Neighbourhood radius in input units (one set "
                                     "only); none: no neighbourhood stiffness.",
                                     flag="positive_float")
    bins: int = parameter(20, "Distance bins of the stiffness-vs-distance curves.",
                          flag="integer", lower_bound=1)
    pairs: str = parameter("within", "Pairs binned by distance: within class, between "
                           "classes or all.", flag="enum", choices=PAIRS)
    checkpoint_every: float = parameter(60.0, "Seconds between checkpoints.", flag="float",
                                        lower_bound=0.0)
    seed: int = parameter(0, "Seed of a synthetic --dataset.", flag="integer", lower_bound=0)

    def record(self, custom_objects: Sequence[str] = ()) -> dict[str, Any]:
        """config.json, `custom_objects` the names `parse_custom_objects` found."""
        inputs = self.inputs
        return {"study": self.STUDY, "model": os.path.abspath(self.model),
                "model_digest": stage_record.file_digest(self.model),
                "custom_objects": sorted(custom_objects), "dataset": self.dataset,
                "split": self.split if self.dataset else None,
                "max_examples": self.max_examples, "seed": self.seed if self.dataset else None,
                "inputs": None if inputs is None else os.path.abspath(inputs),
                "inputs_digest": None if inputs is None else stage_record.file_digest(inputs),
                "loss": self.loss, "block_size": self.block_size, "radius": self.radius,
                "bins": self.bins, "pairs": self.pairs, "method": self.method}


def run_summary(
    output_dir: str,
    model: str | None = None,
    config: SummaryConfig | None = None,
    *,
    verbose: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Measures a saved model's stiffness over every pair of examples (module docstring).

    Args:
        output_dir: Output directory (an `run_directory.OutputDir`; the chief's only).
        model: A model saved as ``.keras`` (the field ``model`` of `SummaryConfig`).
        config: The parameters (`SummaryConfig`), `overrides` (its fields) replacing some:

            - custom_objects: ``module:name`` entries (comma-separated text or a list) of
              custom layers, losses or functions the model needs; ``module`` alone imports
              it.
            - dataset: A `tfstiffness.data` name (with `split`, `data_dir`); or give
              `inputs`. split: the split of `dataset`; data_dir: tfds data directory.
            - max_examples: Keep the first N examples (of each set) only.
            - inputs: An ``.npz`` file (see `load_inputs`).
            - loss: None (the model's compiled loss), a Keras loss name, a Keras loss config
              as JSON, or ``module:name``.
            - block_size: Examples per Gram block (default: the engine's).
            - strategy: "none", "mirrored" (every local device), "multi_worker" (the cluster
              of `TF_CONFIG`; every worker runs the same call), "tpu" (not run in this
              project's tests), or a `tf.distribute.Strategy`. Created first, before other
              TensorFlow work.
            - radius: Neighbourhood radius (input units) for neighbourhood stiffness; None
              skips.
            - bins: Equal distance bins on [0, 2] for stiffness vs distance.
            - pairs: Pairs binned by distance: "within" class, "between" or "all".
            - method: `gradient_gram` method.
            - checkpoint_every: Seconds between checkpoints (each one, on a cluster, a
              reduction over the workers).
            - seed: Seed of a synthetic data set.
        verbose: Print progress lines.
        **overrides: Fields of `SummaryConfig`.

    Returns:
        The summary (what ``summary.json`` holds); on a non-chief worker, the same results
        without writing them.

    Raises:
        StudyInputError: bad arguments, model, data or loss, before anything is written.
            `cluster.WorkerLostError`: another worker of the cluster stopped.
    """
    from tfstiffness.distributed import cluster

    if model is not None:
        overrides["model"] = model
    config = SummaryConfig.build(config, **overrides)
    c = config
    _check(output_dir, c.model, c.dataset, c.inputs, c.split, c.max_examples, c.block_size,
           c.strategy, c.radius, c.bins, c.pairs, c.method, c.checkpoint_every)
    strategy_name, strategy = _strategy(c.strategy)
    chief = cluster.is_chief(strategy)
    if chief:
        run_directory.check_output_dir(output_dir)
    objects = parse_custom_objects(c.custom_objects)
    loss_object = _resolve_loss(c.loss, objects)
    data = (load_inputs(c.inputs, c.max_examples) if c.inputs is not None else
            _load_dataset(c.dataset, c.split, c.data_dir, c.max_examples, c.seed))
    keras_model = _load_model(c.model, objects)
    _validate(keras_model, data, loss_object, c.method, c.block_size, c.radius)

    record = config.record(objects)
    out = (run_directory.OutputDir(output_dir, record, name="summary", verbose=verbose)
           if chief else None)
    checkpoint = (out.stages_dir / f"{CHECKPOINT}.npz") if out is not None else \
        Path(output_dir) / "stages" / f"{CHECKPOINT}.npz"  # ignored off the chief
    if out is not None:
        out.progress(_start_line(keras_model, data, strategy_name, strategy,
                                 checkpoint.exists()))
    start = time.monotonic()
    result = _stream(keras_model, data, loss_object, config, strategy, checkpoint,
                     verbose=verbose and chief)
    seconds = time.monotonic() - start
    results, arrays = result_dicts.streamed_results(result, data.y, data.y2, c.pairs)
    results["loss"] = c.loss or "compiled"
    results["strategy"] = {"name": strategy_name, "workers": cluster.num_workers(strategy),
                           "replicas": 1 if strategy is None else
                           strategy.num_replicas_in_sync}
    if out is None:
        if verbose:
            resolver = getattr(strategy, "cluster_resolver", None)
            who = f"{resolver.task_type}:{resolver.task_id}" if resolver else "worker"
            print(f"[summary {who}] done: Gram blocks computed by worker "
                  f"{list(result.blocks_by_worker)} of {result.blocks_total}; the chief "
                  f"writes {output_dir}", flush=True)
        return {"config": record, "results": results}
    return _finish(out, result, data, results, arrays, seconds, c.radius)


def _strategy(strategy: Any) -> tuple[str, Any]:
    """(name, strategy) of a `strategy` argument: a name is made into its strategy."""
    from tfstiffness.distributed import cluster

    if not isinstance(strategy, str):
        return type(strategy).__name__, strategy
    try:
        return strategy, cluster.make_strategy(strategy)
    except ValueError as err:
        raise StudyInputError(str(err)) from None


def _start_line(keras_model, data: SummaryData, strategy_name: str, strategy: Any,
                resuming: bool) -> str:
    """The first progress line: the model, the examples, the strategy, any resume."""
    from tfstiffness.distributed import cluster

    workers = cluster.num_workers(strategy)
    return (f"{type(keras_model).__name__} {keras_model.name!r} "
            f"({keras_model.count_params():,} parameters) on {len(data.y):,} examples of "
            f"{data.source}"
            + (f" x {len(data.y2):,}" if data.y2 is not None else "")
            + (f"; {strategy_name} over {strategy.num_replicas_in_sync} replicas"
               f"{f' on {workers} workers' if workers > 1 else ''}" if strategy is not None
               else "")
            + ("; resuming from the checkpoint in stages/" if resuming else ""))


def _stream(keras_model, data: SummaryData, loss_object: Any, config: SummaryConfig,
            strategy: Any, checkpoint: Path, verbose: bool):
    """`streaming.stiffness_summary` of the data, with the config's settings."""
    from tfstiffness import streaming

    edges = np.linspace(0.0, 2.0, config.bins + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zero gradients: counted and reported
        try:
            return streaming.stiffness_summary(
                keras_model, data.x, data.y, loss=loss_object, x2=data.x2, y2=data.y2,
                num_classes=data.num_classes, fine_to_coarse=data.fine_to_coarse,
                distance_edges=edges, pairs=config.pairs, radius=config.radius,
                block_size=config.block_size, method=config.method, strategy=strategy,
                checkpoint=checkpoint, checkpoint_every=config.checkpoint_every,
                verbose=None if verbose else False)
        except (CorruptFileError, ConfigMismatchError) as err:  # no checkpoint flag here
            raise type(err)(str(err).replace(streaming.CHECKPOINT_ADVICE, "Delete it (the "
                            "summary then starts over) or use another --output_dir.")) from None


def _finish(out: run_directory.OutputDir, result, data: SummaryData, results: dict[str, Any],
            arrays: dict[str, Any], seconds: float, radius: float | None) -> dict[str, Any]:
    """The chief's files: figures, TensorBoard scalars, results.npz and summary.json."""
    from tfstiffness.outputs import tensorboard

    figures = {f"class_matrix_{kind}": _class_matrix_figure(result, data, kind)
               for kind in ("cosine", "sign")}
    if result.distance_curve:
        figures["stiffness_vs_distance"] = _distance_figure(result)
    with out.step_events("summary", 0) as writer:
        tensorboard.write_scalars(writer, _scalars(results), 0, prefix="summary")
    stiffness = results["stiffness"]
    headline = [f"{kind}: within {progress.format_number(stiffness[kind]['within'])}"
                f", between {progress.format_number(stiffness[kind]['between'])}"
                + (f", super-class contrast "
                   f"{progress.format_number(stiffness[kind]['superclass_contrast'])}"
                   if "superclass_contrast" in stiffness[kind] else "")
                for kind in ("cosine", "sign")]
    if result.neighbour_counts is not None:
        from tfstiffness.measures.neighbourhood import no_neighbour_message

        missing = results["neighbourhood"]["no_neighbour"]
        headline.append(no_neighbour_message(missing, result.nearest_distances, radius)
                        if missing else f"neighbourhood: every point has a neighbour within "
                        f"radius {radius:g}")
    run_info = {"summary_seconds": seconds, "blocks_resumed": result.blocks_resumed}
    return runner.finish(out, results, arrays, figures, run_info, headline=headline)


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


def _distance_figure(result):
    """Stiffness vs distance of each kind with xi by both estimators
    (`study_figures.summary_distance_figure`)."""
    from tfstiffness import measures
    from tfstiffness.outputs import study_figures

    curves = result.distance_curve
    estimates = {kind: (measures.critical_length(curve, method="crossing"),
                        measures.critical_length(curve, method="linear_fit"))
                 for kind, curve in curves.items()}
    return study_figures.summary_distance_figure(curves, estimates)
