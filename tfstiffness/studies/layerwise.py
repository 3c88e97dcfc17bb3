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

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfstiffness import training
from tfstiffness.outputs import run_directory
from tfstiffness.studies import runner
from tfstiffness.studies import seeds as seeds_lib

__all__ = ["ACTIVATIONS", "layerwise_figure", "model_key", "run_layerwise"]

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
    from tfstiffness.engine import gram as gram_lib
    from tfstiffness import measures
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


def run_layerwise(
    output_dir: str,
    dataset: str = "two_arcs",
    hidden_widths: Sequence[Sequence[int]] = ((64, 8, 4), (8, 64, 8), (64, 8, 64)),
    activations: Sequence[str] = ACTIVATIONS,
    epochs: int = 30,
    learning_rate: float = 0.1,
    probe_per_class: int = 100,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    data_dir: str | None = None,
    grid_n: int = 50,
    batch_size: int = 32,
    max_train_examples: int | None = None,
    method: str = "auto",
    verbose: bool = True,
    tensorboard_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Walker's layer-wise stiffness study (see the module docstring).

    `dataset` "two_arcs" is the two-arcs grid of ``grid_n**2`` points; any other name is an
    image set of `tfstiffness.data.load` (e.g. "mnist", "cifar10"), its training split
    standardised as `data.load` does it and flattened; the MLP then has the same hidden widths.
    The probe takes `probe_per_class` examples of each class, or all of a class with fewer.

    Writes into `output_dir`: ``summary.json`` (results: per model the layer names and, for
    "untrained" and "trained", within/between per layer, the whole-network values, probe
    accuracy and loss; the last epoch's mean batch loss, and loss and accuracy on the whole
    training set after training), ``results.npz`` (per model
    ``<key>/<untrained|trained>/<within|between|class_matrices>``, ``<key>/layers``,
    ``probe_indices``), ``figures/layerwise.png`` and TensorBoard.

    Args:
        output_dir: Output directory (an `run_directory.OutputDir`).
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
        method: `gradient_gram` method.
        verbose: Print progress lines.
        tensorboard_dir: Where the TensorBoard runs go (default ``output_dir/tensorboard``).

    Returns:
        The summary (what ``summary.json`` holds).
    """
    import keras

    from tfstiffness import models
    from tfstiffness.outputs import tensorboard as summary
    from tfstiffness.data import synthetic

    if seeds is not None:
        kwargs = {"dataset": dataset, "hidden_widths": [list(w) for w in hidden_widths],
                  "activations": list(activations), "epochs": epochs,
                  "learning_rate": learning_rate, "probe_per_class": probe_per_class,
                  "data_dir": data_dir, "grid_n": grid_n, "batch_size": batch_size,
                  "max_train_examples": max_train_examples, "method": method}
        return seeds_lib.run_seeds(run_layerwise, output_dir, seeds, study="layerwise",
                                   kwargs=kwargs, figures=_seed_figures, verbose=verbose)

    runner.check_arguments(epochs=epochs, learning_rate=learning_rate,
                           probe_per_class=probe_per_class, seed=seed, grid_n=grid_n,
                           batch_size=batch_size, max_train_examples=max_train_examples,
                           method=method)
    hidden_widths = [[int(w) for w in widths] for widths in hidden_widths]
    if not hidden_widths or any(not w or min(w) < 1 for w in hidden_widths):
        raise runner.StudyInputError(f"hidden_widths: expected lists of positive integers, "
                                     f"got {hidden_widths}")
    bad = [a for a in activations if a not in ACTIVATIONS]
    if not activations or bad:
        raise runner.StudyInputError(f"activations: expected some of {ACTIVATIONS}, got "
                                     f"{list(activations)}")
    config = {"study": "layerwise", "dataset": dataset, "hidden_widths": hidden_widths,
              "activations": list(activations), "epochs": epochs,
              "learning_rate": learning_rate, "probe_per_class": probe_per_class, "seed": seed,
              "data_dir": data_dir, "grid_n": grid_n, "batch_size": batch_size,
              "max_train_examples": max_train_examples, "method": method}
    run_directory.check_output_dir(output_dir)
    if dataset == "two_arcs":
        x, y = synthetic.two_arcs_grid(grid_n)
        if max_train_examples is not None:
            x, y = x[:max_train_examples], y[:max_train_examples]
        num_classes = 2
    else:
        from tfstiffness import data

        try:
            x, y, num_classes = _load_image_set(dataset, data_dir, max_train_examples)
        except data.DatasetUnavailableError:
            raise
        except ValueError as err:
            raise runner.StudyInputError(f"{dataset}: {err}") from None
    probe = _balanced_indices(y, probe_per_class, seed)
    xp, yp = x[probe], y[probe]
    out = run_directory.OutputDir(output_dir, config, name="layerwise", verbose=verbose,
                               tensorboard_dir=tensorboard_dir)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    keys = [model_key(w, a) for w in hidden_widths for a in activations]
    skipped = [k for k in keys if out.done(k)]
    out.progress(f"{dataset}: {len(x)} training examples, {num_classes} classes, probe of "
                 f"{len(probe)}; {len(keys)} MLPs, SGD {learning_rate:g}, batch {batch_size}, "
                 f"{epochs} epochs each"
                 + (f"; resuming, skipping finished models {skipped}" if skipped else ""))

    def layer_scalars(phase_values, layers):
        scalars = {}
        for metric in ("within", "between"):
            scalars.update({f"{layer}/{metric}": value
                            for layer, value in zip(layers, phase_values[metric])})
        return scalars

    for index, (widths, activation) in enumerate(
        (w, a) for w in hidden_widths for a in activations
    ):
        key = model_key(widths, activation)
        if out.done(key):
            continue
        start = time.monotonic()
        keras.utils.set_random_seed(seed)
        model = models.toy_mlp(x.shape[1], num_classes, widths=widths, activation=activation)
        untrained = _measure(model, xp, yp, num_classes, method, loss)
        train_loss = runner.fit_sgd(model, x, y, epochs=epochs, learning_rate=learning_rate,
                                    batch_size=batch_size, seed=seed, loss=loss)
        trained = _measure(model, xp, yp, num_classes, method, loss)
        layers = [str(n) for n in untrained["layers"]]
        with out.step_events(key, 0) as writer:
            summary.write_scalars(writer, layer_scalars(untrained, layers), 0,
                                  prefix="layerwise")
        with out.step_events(key, epochs) as writer:
            for epoch, value in enumerate(train_loss, start=1):
                summary.write_scalars(writer, {"batch_loss": value}, epoch, prefix="metrics")
            summary.write_scalars(writer, layer_scalars(trained, layers), epochs,
                                  prefix="layerwise")
        arrays = {f"untrained/{k}": v for k, v in untrained.items()}
        arrays.update({f"trained/{k}": v for k, v in trained.items()})
        final_loss, final_accuracy = training.evaluate(model, x, y)  # Whole training set.
        arrays.update(train_loss=train_loss, final_loss=np.float64(final_loss),
                      final_accuracy=np.float64(final_accuracy),
                      seconds=np.float64(time.monotonic() - start))
        out.save_stage(key, arrays)
        out.progress(f"{key}: trained and measured (whole-set accuracy "
                     f"{final_accuracy:.3f})", index + 1, len(keys))

    results: dict[str, Any] = {
        "num_train": len(x), "num_classes": num_classes, "probe_size": len(probe),
        "probe_class_counts": np.bincount(yp, minlength=num_classes).tolist(), "models": {}}
    npz: dict[str, Any] = {"probe_indices": probe}
    seconds = {}
    for key in keys:
        arrays = out.load_stage(key)
        seconds[key] = float(arrays["seconds"])
        results["gram_method"] = str(arrays["trained/gram_method"])
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
        results["models"][key] = entry
    fig = layerwise_figure(results["models"], hidden_widths, list(activations))
    return runner.finish(out, results, npz, {"layerwise": fig},
                         {"skipped_stages": skipped, "stage_seconds": seconds},
                         figure_step=epochs)


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
    fig = layerwise_figure(results, config["hidden_widths"], config["activations"])
    fig.suptitle(f"Layer-wise stiffness, mean over {len(stacked['seeds'])} seeds (shaded: "
                 f"{seeds_lib.band_note(len(stacked['seeds']))})")
    return {"layerwise": fig}


def layerwise_figure(
    model_results: Mapping[str, Mapping[str, Any]],
    hidden_widths: Sequence[Sequence[int]],
    activations: Sequence[str],
):
    """Within- and between-class stiffness per layer: one row per widths, one column per metric.

    Colour marks the activation; solid lines are trained models, dashed lines untrained.

    Args:
        model_results: `model_key` -> {"layers": [...], "untrained"/"trained": {"within":
            [...], "between": [...]}}, as in the summary of `run_layerwise`; optional
            ``"within_low"`` / ``"within_high"`` (and between) lists draw a shaded band.
        hidden_widths: The widths configurations (rows).
        activations: The activations (colours).

    Returns:
        A matplotlib figure (Agg canvas).

    Example:
        >>> r = {"4_relu": {"layers": ["dense_0", "logits"],
        ...      "untrained": {"within": [0.5, 0.9], "between": [0.1, -0.8]},
        ...      "trained": {"within": [0.3, 0.7], "between": [0.0, -0.5]}}}
        >>> len(layerwise_figure(r, [[4]], ["relu"]).axes)
        2
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    metrics = ("within", "between")
    fig = Figure(figsize=(10.0, 2.9 * len(hidden_widths) + 0.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(hidden_widths), len(metrics), squeeze=False, sharey=True)
    colours = {a: f"C{i % 10}" for i, a in enumerate(activations)}
    for row, widths in enumerate(hidden_widths):
        for col, metric in enumerate(metrics):
            ax = axes[row, col]
            layers: list[str] = []
            for activation in activations:
                entry = model_results[model_key(widths, activation)]
                layers = entry["layers"]
                for phase, style in (("untrained", "--"), ("trained", "-")):
                    values = np.array([np.nan if v is None else v for v in entry[phase][metric]],
                                      dtype=np.float64)
                    ax.plot(np.arange(values.size), values, style, marker="o", markersize=4,
                            color=colours[activation])
                    if f"{metric}_low" in entry[phase]:
                        ax.fill_between(np.arange(values.size),
                                        np.asarray(entry[phase][f"{metric}_low"], float),
                                        np.asarray(entry[phase][f"{metric}_high"], float),
                                        color=colours[activation], alpha=0.15, linewidth=0)
            sizes = [str(int(w)) for w in widths] + ["out"]
            ax.set_xticks(np.arange(len(layers)),
                          labels=[f"{name}\n({size})" for name, size in zip(layers, sizes)],
                          fontsize=8)
            ax.axhline(0.0, color="black", linewidth=0.6)
            ax.grid(alpha=0.3)
            ax.set_title(f"widths {'-'.join(map(str, widths))}: {metric}-class", fontsize=10)
            if col == 0:
                ax.set_ylabel("cosine stiffness")
    handles = [Line2D([], [], color=colours[a], linewidth=2, label=a) for a in activations]
    handles += [Line2D([], [], color="0.3", linestyle="-", label="trained"),
                Line2D([], [], color="0.3", linestyle="--", label="untrained")]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False,
               fontsize=9)
    fig.suptitle("Layer-wise stiffness (gradients of one layer's parameters)")
    return fig
