"""Walker's layer-wise stiffness study (2023): stiffness through the layers, untrained vs
trained.

For every hidden-widths x activation MLP (`models.toy_mlp`, logits output): the cosine
stiffness of the gradients with respect to each layer's parameters alone (kernel and bias,
`layerwise.layerwise_stiffness`), on a fixed class-balanced probe, before and after training
with SGD on the whole training set; per layer, in layer order, the within- and between-class
stiffness.

One checkpointed stage per model (named by `model_key`): a restart with the same arguments
skips finished models. TensorBoard: one run per model, ``<model_key>``, with the per-layer
scalars at step 0 (untrained) and step `epochs` (trained) and the mean batch loss of each
epoch, written as each model finishes; and ``figures``.

Example:
    >>> import tempfile
    >>> s = run_layerwise(tempfile.mkdtemp(), hidden_widths=((4, 2),), activations=("tanh",),
    ...                   epochs=1, probe_per_class=5, grid_n=6, verbose=False)
    >>> s["results"]["models"]["4-2_tanh"]["layers"]
    ['dense_0', 'dense_1', 'logits']
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfstiffness import training
from tfstiffness.errors import StudyInputError
from tfstiffness.outputs import run_directory
from tfstiffness.studies import config as config_lib
from tfstiffness.studies import runner
from tfstiffness.studies import seeds as seeds_lib
from tfstiffness.studies.config import parameter

__all__ = ["ACTIVATIONS", "LayerwiseConfig", "model_key", "run_layerwise"]

#: Hidden activations of `models.toy_mlp`.
ACTIVATIONS = ("relu", "tanh", "leaky_relu")


def model_key(widths: Sequence[int], activation: str) -> str:
    """The key (and stage name) of a layer-wise model: ``model_key((64, 8), "tanh")``
    is ``"64-8_tanh"``."""
    return "-".join(str(int(w)) for w in widths) + f"_{activation}"


def _load_image_set(
    name: str, data_dir: str | None, max_examples: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """A tfds image set's training split, standardised and flattened: (x [N, D], y, classes)."""
    from tfstiffness import data  # Imported here: tensorflow-datasets is slow to import.

    loaded = data.load(name, split="train", data_dir=data_dir, max_examples=max_examples)
    x = np.asarray(loaded.x, dtype=np.float32)
    return x.reshape(len(x), -1), np.asarray(loaded.y, np.int64), int(loaded.num_classes)


def _balanced_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Up to `per_class` random indices of every class, sorted by class."""
    rng = np.random.default_rng(seed)
    picks = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        picks.append(np.sort(rng.choice(members, size=min(per_class, members.size),
                                        replace=False)))
    return np.concatenate(picks)


def _measure(model, x, y, num_classes, method, loss) -> dict[str, np.ndarray]:
    from tfstiffness import measures
    from tfstiffness.engine import gram as gram_lib
    from tfstiffness.measures import layerwise

    gram = gram_lib.gradient_gram(model, x, y, loss=loss, by_layer=True, method=method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Zero gradients are counted below.
        layers = layerwise.layerwise_stiffness(gram, y, kind="cosine", num_classes=num_classes)
        S = measures.stiffness_matrix(gram, kind="cosine")
        total = measures.within_between(measures.class_stiffness(S, y, num_classes=num_classes))
    loss_value, accuracy = training.evaluate(model, x, y)
    return {
        "layers": np.array(list(layers)),
        "within": np.array([r.within for r in layers.values()]),
        "between": np.array([r.between for r in layers.values()]),
        "class_matrices": np.stack([r.class_matrix for r in layers.values()]),
        "total_within": np.float64(total[0]),
        "total_between": np.float64(total[1]),
        "zero_gradients": np.array([measures.count_zero_gradients(gram.layer_sq_norms[name])
                                    for name in layers]),
        "probe_loss": np.float64(loss_value),
        "probe_accuracy": np.float64(accuracy),
        "gram_method": np.array(gram.method),
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class LayerwiseConfig(config_lib.StudyConfig):
    """The layer-wise study's parameters.

    `dataset` "two_arcs" is the two-arcs grid of ``grid_n**2`` points; any other name is an
    image set of `tfstiffness.data.load` (e.g. "mnist", "cifar10"), its training split
    standardised as `data.load` does it and flattened; the MLP then has the same hidden
    widths. The probe takes `probe_per_class` examples of each class, or all of a class with
    fewer.

    Attributes:
        dataset: "two_arcs" or a tfds image set name.
        hidden_widths: Hidden widths of each MLP.
        activations: Hidden activations (of `ACTIVATIONS`).
        epochs: Training epochs per model.
        learning_rate: SGD learning rate.
        probe_per_class: Probe examples per class.
        seed: Seed of the probe, the initial weights and the batch order.
        seeds: Repeat the study for each of these seeds (`studies.seeds`): mean and interval
            across seeds in the summary, bands in the figure.
        data_dir: tfds data directory.
        grid_n: Grid size of "two_arcs".
        batch_size: SGD mini-batch size.
        max_train_examples: Keep only the first this many training examples (None: all).
    """

    STUDY = "layerwise"

    dataset: str = parameter("two_arcs", "two_arcs (the grid, offline) or a TensorFlow "
                             "Datasets image set.", flag="enum",
                             choices=("two_arcs", "mnist", "fashion_mnist", "cifar10",
                                      "cifar100"))
    hidden_widths: Sequence[Sequence[int]] = parameter(
        ((64, 8, 4), (8, 64, 8), (64, 8, 64)), "Hidden widths of each MLP, widths joined by "
        "'-'.", flag="int_list", separator="-")
    activations: Sequence[str] = parameter(
        ACTIVATIONS, f"Hidden activations, any of {', '.join(ACTIVATIONS)}.",
        flag="choice_list", choices=ACTIVATIONS)
    epochs: int = parameter(30, "Training epochs.", flag="integer", lower_bound=1)
    learning_rate: float = parameter(0.1, "SGD's constant learning rate.",
                                     flag="positive_float")
    probe_per_class: int = parameter(100, "Probe examples per class, from the training data "
                                     "(all of a smaller class).", flag="integer",
                                     lower_bound=1)
    seed: int = parameter(0, "Seed of the probe, initial weights and batch order.",
                          flag="integer", lower_bound=0)
    seeds: Sequence[int] | None = parameter(None, config_lib.SEEDS_HELP, flag="seeds")
    data_dir: str | None = parameter(None, config_lib.DATA_DIR_HELP, flag="string")
    grid_n: int = parameter(50, "two_arcs: grid points per side.", flag="integer",
                            lower_bound=2)
    batch_size: int = parameter(32, "Mini-batch size of the SGD steps.", flag="integer",
                                lower_bound=1)
    max_train_examples: int | None = parameter(None, config_lib.TRAIN_SPLIT_HELP,
                                               flag="integer", lower_bound=1)

    def check(self) -> None:
        super().check()
        widths = self.width_lists()
        if not widths or any(not w or min(w) < 1 for w in widths):
            raise StudyInputError(f"hidden_widths: expected lists of positive integers, "
                                  f"got {widths}")
        bad = [a for a in self.activations if a not in ACTIVATIONS]
        if not self.activations or bad:
            raise StudyInputError(f"activations: expected some of {ACTIVATIONS}, got "
                                  f"{list(self.activations)}")

    def width_lists(self) -> list[list[int]]:
        """The hidden widths as lists of integers."""
        return [[int(w) for w in widths] for widths in self.hidden_widths]

    def model_keys(self) -> list[str]:
        """The `model_key` of every (widths, activation), widths first."""
        return [model_key(w, a) for w in self.width_lists() for a in self.activations]

    def record(self) -> dict[str, Any]:
        return {**super().record(), "hidden_widths": self.width_lists()}


def _run_once(output_dir: str, config: LayerwiseConfig, *, verbose: bool,
              tensorboard_dir: str | os.PathLike | None) -> dict[str, Any]:
    """The study of one seed: one stage per model, then the files."""
    run_directory.check_output_dir(output_dir)
    x, y, num_classes = _training_data(config)
    probe = _balanced_indices(y, config.probe_per_class, config.seed)
    out = run_directory.OutputDir(output_dir, config.record(), name=config.STUDY,
                                  verbose=verbose, tensorboard_dir=tensorboard_dir)
    keys = config.model_keys()
    skipped = [k for k in keys if out.done(k)]
    out.progress(f"{config.dataset}: {len(x)} training examples, {num_classes} classes, probe "
                 f"of {len(probe)}; {len(keys)} MLPs, SGD {config.learning_rate:g}, batch "
                 f"{config.batch_size}, {config.epochs} epochs each"
                 + (f"; resuming, skipping finished models {skipped}" if skipped else ""))
    models_todo = [(w, a) for w in config.width_lists() for a in config.activations]
    for index, (widths, activation) in enumerate(models_todo):
        key = model_key(widths, activation)
        if not out.done(key):
            accuracy = _model_stage(out, config, key, widths, activation, x, y, probe,
                                    num_classes)
            out.progress(f"{key}: trained and measured (whole-set accuracy "
                         f"{accuracy:.3f})", index + 1, len(keys))
    return _finish(out, config, x, y, probe, num_classes, skipped)


def _training_data(config: LayerwiseConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """(x [N, D], y [N], classes) of the study's data set (`run_layerwise`)."""
    if config.dataset == "two_arcs":
        from tfstiffness.data import synthetic

        x, y = synthetic.two_arcs_grid(config.grid_n)
        if config.max_train_examples is not None:
            x, y = x[:config.max_train_examples], y[:config.max_train_examples]
        return x, y, 2
    from tfstiffness import data

    try:
        return _load_image_set(config.dataset, config.data_dir, config.max_train_examples)
    except data.DatasetUnavailableError:
        raise
    except ValueError as err:
        raise StudyInputError(f"{config.dataset}: {err}") from None


def _layer_scalars(phase_values: Mapping[str, np.ndarray],
                   layers: Sequence[str]) -> dict[str, float]:
    """``<layer>/within`` and ``<layer>/between`` of one phase, for TensorBoard."""
    scalars = {}
    for metric in ("within", "between"):
        scalars.update({f"{layer}/{metric}": value
                        for layer, value in zip(layers, phase_values[metric])})
    return scalars


def _model_stage(out: run_directory.OutputDir, config: LayerwiseConfig, key: str,
                 widths: Sequence[int], activation: str, x: np.ndarray, y: np.ndarray,
                 probe: np.ndarray, num_classes: int) -> float:
    """One model's stage: measured untrained, trained with SGD, measured again, written to
    TensorBoard run `key` and checkpointed; returns its whole-training-set accuracy."""
    import keras

    from tfstiffness import models
    from tfstiffness.outputs import tensorboard as summary

    start, epochs = time.monotonic(), config.epochs
    xp, yp = x[probe], y[probe]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    keras.utils.set_random_seed(config.seed)
    model = models.toy_mlp(x.shape[1], num_classes, widths=widths, activation=activation)
    untrained = _measure(model, xp, yp, num_classes, config.method, loss)
    train_loss = training.fit_sgd(model, x, y, epochs=epochs,
                                  learning_rate=config.learning_rate,
                                  batch_size=config.batch_size, seed=config.seed, loss=loss)
    trained = _measure(model, xp, yp, num_classes, config.method, loss)
    layers = [str(n) for n in untrained["layers"]]
    with out.step_events(key, 0) as writer:
        summary.write_scalars(writer, _layer_scalars(untrained, layers), 0, prefix="layerwise")
    with out.step_events(key, epochs) as writer:
        for epoch, value in enumerate(train_loss, start=1):
            summary.write_scalars(writer, {"batch_loss": value}, epoch, prefix="metrics")
        summary.write_scalars(writer, _layer_scalars(trained, layers), epochs,
                              prefix="layerwise")
    arrays = {f"untrained/{k}": v for k, v in untrained.items()}
    arrays.update({f"trained/{k}": v for k, v in trained.items()})
    final_loss, final_accuracy = training.evaluate(model, x, y)  # Whole training set.
    arrays.update(train_loss=train_loss, final_loss=np.float64(final_loss),
                  final_accuracy=np.float64(final_accuracy),
                  seconds=np.float64(time.monotonic() - start))
    out.save_stage(key, arrays)
    return final_accuracy


def _model_entry(arrays: Mapping[str, np.ndarray], key: str,
                 npz: dict[str, Any]) -> dict[str, Any]:
    """summary.json's entry of one model's stage; its arrays go into `npz`."""
    entry: dict[str, Any] = {"layers": [str(n) for n in arrays["untrained/layers"]]}
    npz[f"{key}/layers"] = arrays["untrained/layers"]
    for phase in ("untrained", "trained"):
        entry[phase] = {
            "within": arrays[f"{phase}/within"].tolist(),
            "between": arrays[f"{phase}/between"].tolist(),
            "total_within": float(arrays[f"{phase}/total_within"]),
            "total_between": float(arrays[f"{phase}/total_between"]),
            "zero_gradients": arrays[f"{phase}/zero_gradients"].tolist(),
            "probe_accuracy": float(arrays[f"{phase}/probe_accuracy"]),
            "probe_loss": float(arrays[f"{phase}/probe_loss"]),
        }
        for name in ("within", "between", "class_matrices"):
            npz[f"{key}/{phase}/{name}"] = arrays[f"{phase}/{name}"]
    entry["final_train_loss"] = float(arrays["train_loss"][-1])  # Mean batch loss.
    entry["train_set_loss"] = float(arrays["final_loss"])  # After training, full pass.
    entry["train_set_accuracy"] = float(arrays["final_accuracy"])
    npz[f"{key}/train_loss"] = arrays["train_loss"]
    return entry


def _finish(out: run_directory.OutputDir, config: LayerwiseConfig, x: np.ndarray,
            y: np.ndarray, probe: np.ndarray, num_classes: int,
            skipped: Sequence[str]) -> dict[str, Any]:
    """results.npz, the figure and summary.json of every model's stage."""
    from tfstiffness.outputs import study_figures

    results: dict[str, Any] = {
        "num_train": len(x), "num_classes": num_classes, "probe_size": len(probe),
        "probe_class_counts": np.bincount(y[probe], minlength=num_classes).tolist(),
        "models": {}}
    npz: dict[str, Any] = {"probe_indices": probe}
    seconds = {}
    for key in config.model_keys():
        arrays = out.load_stage(key)
        seconds[key] = float(arrays["seconds"])
        results["gram_method"] = str(arrays["trained/gram_method"])
        results["models"][key] = _model_entry(arrays, key, npz)
    fig = study_figures.layerwise_figure(results["models"], config.width_lists(),
                                         list(config.activations), config.model_keys())
    return runner.finish(out, results, npz, {"layerwise": fig},
                         {"skipped_stages": list(skipped), "stage_seconds": seconds},
                         figure_step=config.epochs)


def _seed_figures(study: str, stacked: Mapping[str, np.ndarray],
                  config: Mapping[str, Any]) -> dict[str, Any]:
    """The per-layer curves of the mean over seeds, bands across seeds."""
    averaged = seeds_lib.mean_with_interval(stacked)
    results = {}
    for widths in config["hidden_widths"]:
        for activation in config["activations"]:
            key = model_key(widths, activation)
            entry: dict[str, Any] = {"layers": [str(n) for n in averaged[f"{key}/layers"]]}
            for phase in ("untrained", "trained"):
                entry[phase] = {}
                for metric in ("within", "between"):
                    for suffix in ("", "_ci_low", "_ci_high"):
                        name = f"{key}/{phase}/{metric}{suffix}"
                        if name in averaged:
                            entry[phase][metric + suffix.replace("_ci", "")] = averaged[
                                name].tolist()
            results[key] = entry
    from tfstiffness.outputs import study_figures

    keys = [model_key(w, a) for w in config["hidden_widths"] for a in config["activations"]]
    fig = study_figures.layerwise_figure(results, config["hidden_widths"],
                                         config["activations"], keys)
    fig.suptitle(f"Layer-wise stiffness, mean over {len(stacked['seeds'])} seeds (shaded: "
                 f"{seeds_lib.band_note(len(stacked['seeds']))})")
    return {"layerwise": fig}


# The entry point, from the config.
run_layerwise = seeds_lib.study_function(
    LayerwiseConfig, _run_once, name="run_layerwise",
    description="""Walker's layer-wise stiffness study (see the module docstring), with the
    parameters of `LayerwiseConfig`.

    Writes into `output_dir`: ``summary.json`` (results: per model the layer names and, for
    "untrained" and "trained", within/between per layer, the whole-network values, probe
    accuracy and loss; the last epoch's mean batch loss, and loss and accuracy on the whole
    training set after training), ``results.npz`` (per model
    ``<key>/<untrained|trained>/<within|between|class_matrices>``, ``<key>/layers``,
    ``probe_indices``), ``figures/layerwise.png`` and TensorBoard.""",
    figures=_seed_figures)
