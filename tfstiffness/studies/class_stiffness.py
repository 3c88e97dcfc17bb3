"""Class stiffness through training (Fort et al. 2019, Sec. 4.1-4.2): the class study.

Trains a classifier with Adam at a constant learning rate and, at chosen epochs, measures on
FIXED class-balanced probes of the training and validation splits: the class stiffness
matrix of train-train, train-val and val-val pairs (sign and cosine), within- and
between-class stiffness, the super-class contrast when the data has super-classes, the
within-class stiffness against input distance with its critical length xi, and loss and
accuracy on both whole splits. `class_study` is the whole study; `run_class_stiffness` is it
with this study's defaults, and `cifar100_superclass` and `text_transformer` are it with
theirs (a 100-class hierarchy; a transformer measured in its pooled representation).

Outputs (in the output directory, see `runner`): ``summary.json`` (config, versions, per
measured epoch every scalar measure of every pair set and kind, with xi as {xi, status,
bound}), ``results.npz`` (everything measured, stacked over the measured epochs: class
matrices [E, K, K], curves [E, B], ...), ``figures/curves.png``, ``class_matrix.png``,
``stiffness_vs_distance.png`` (and ``superclass_matrix.png``), and TensorBoard runs
``stiffness``, ``train``, ``validation`` and ``figures``.

Example:
    >>> import tempfile
    >>> s = run_class_stiffness(tempfile.mkdtemp(), dataset="gaussian_blobs", epochs=1,
    ...                         probe_per_class=5, data_options={"num_per_class": 10},
    ...                         verbose=False)
    >>> sorted(s["results"]["final"]["stiffness"])
    ['train_train', 'train_val', 'val_val']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfstiffness import experiment, training
from tfstiffness.studies import runner
from tfstiffness.studies.runner import KINDS, PAIRS

__all__ = ["class_study", "curves_figure", "run_class_stiffness"]

# Default data: 10 classes in 5 super-classes of 2, 100 examples per class and split. Pixel
# noise 6, measured: the fully-connected net reaches 81 % validation accuracy in 10 epochs;
# with the generator's noise 1 it is at zero loss and 100 % after one epoch, with noise 16
# it memorises (21 % validation accuracy).
DATA_DEFAULTS = {"hierarchical_images": {
    "num_superclasses": 5, "classes_per_superclass": 2, "num_per_class": 100, "noise": 6.0}}


def run_class_stiffness(
    output_dir: str,
    dataset: str = "hierarchical_images",
    model: str = "fc",
    epochs: int = 10,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    probe_per_class: int = 50,
    eval_epochs: Sequence[int] | str | None = "log",
    seed: int = 0,
    data_dir: str | None = None,
    method: str = "auto",
    max_train_examples: int | None = None,
    max_val_examples: int | None = None,
    data_options: Mapping[str, Any] | None = None,
    bins: int = 20,
    verbose: bool = True,
) -> dict[str, Any]:
    """Class stiffness through training (the paper's MNIST/Fashion-MNIST/CIFAR studies).

    Default data: ``hierarchical_images`` with 10 classes (5 super-classes of 2), 100
    examples per class and split, 32x32x3 images, pixel noise 6 (`data_options` overrides
    the synthetic generator's options; for tfds sets it is usually empty).

    Args:
        output_dir: Output directory (an `experiment.OutputDir`: locked while running;
            rerunning with the same arguments resumes, other arguments are refused).
        dataset: A `tfstiffness.data` name (mnist, fashion_mnist, cifar10, cifar100, or a
            synthetic image set).
        model: "fc", "cnn" or "resnet20".
        epochs: Training epochs.
        learning_rate: Adam's learning rate.
        batch_size: Mini-batch size.
        probe_per_class: Probe examples per class, from each split.
        eval_epochs: Epochs to measure at (0 and `epochs` are always added); None: every
            epoch; "log": 1, 2, 4, 8, ... (`training.parse_eval_epochs`).
        seed: Seed of the data generator, probes, initial weights and batch order.
        data_dir: tfds data directory.
        method: `gradient_gram` method.
        max_train_examples: Train on the first N training examples only.
        max_val_examples: Use the first N validation examples only.
        data_options: Options of `data.load` (synthetic generator options).
        bins: Distance bins of the stiffness-vs-distance curves.
        verbose: Print progress lines.

    Returns:
        The summary (what ``summary.json`` holds).

    Raises:
        runner.StudyInputError: a bad argument, or data or a model that cannot be used;
            `experiment.OutputDirError`, `experiment.ConfigMismatchError`,
            `data.DatasetUnavailableError`: all before anything is written.
    """
    return class_study(
        "class_stiffness", output_dir, dataset=dataset, model=model, epochs=epochs,
        learning_rate=learning_rate, batch_size=batch_size, probe_per_class=probe_per_class,
        eval_epochs=eval_epochs, seed=seed, data_dir=data_dir, method=method,
        max_train_examples=max_train_examples, max_val_examples=max_val_examples,
        data_options=runner.merged_options(DATA_DEFAULTS, dataset, data_options),
        model_options=None, bins=bins, verbose=verbose)


def class_study(
    study: str,
    output_dir: str,
    *,
    dataset: str,
    model: str,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    probe_per_class: int,
    eval_epochs: Sequence[int] | str | None,
    seed: int,
    data_dir: str | None,
    method: str,
    max_train_examples: int | None,
    max_val_examples: int | None,
    data_options: Mapping[str, Any] | None,
    model_options: Mapping[str, Any] | None,
    bins: int,
    verbose: bool,
    distance_space: str = "input",
    representation: Callable[[Any, np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """The class study (see the module docstring); `study` names the outputs and progress.

    `distance_space` names where the distances of the stiffness-vs-distance curves are
    measured ("input", or e.g. "pooled" with a `representation` function giving the
    features, see `probes.ProbeSets`).
    """
    runner.check_arguments(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                           probe_per_class=probe_per_class, seed=seed, method=method,
                           max_train_examples=max_train_examples,
                           max_val_examples=max_val_examples, bins=bins)
    try:
        evals = training.parse_eval_epochs(eval_epochs, epochs)
    except ValueError as err:
        raise runner.StudyInputError(f"eval_epochs: {err}") from None
    config = {"study": study, "dataset": dataset, "model": model, "epochs": epochs,
              "learning_rate": learning_rate, "batch_size": batch_size,
              "probe_per_class": probe_per_class, "eval_epochs": evals, "seed": seed,
              "data_dir": data_dir, "method": method, "max_train_examples": max_train_examples,
              "max_val_examples": max_val_examples, "data_options": dict(data_options or {}),
              "model_options": dict(model_options or {}), "bins": bins,
              "distance_space": distance_space}
    experiment.check_output_dir(output_dir)
    prepared = runner.prepare(
        dataset, data_dir=data_dir, max_train_examples=max_train_examples,
        max_val_examples=max_val_examples, seed=seed, data_options=data_options,
        probe_per_class=probe_per_class, model=model, model_options=model_options,
        method=method, bins=bins, representation=representation)
    train, val = prepared.train, prepared.val
    out = experiment.OutputDir(output_dir, config, name=study, verbose=verbose)
    out.progress(f"{dataset}: {len(train)} training and {len(val)} validation examples, "
                 f"{prepared.num_classes} classes; probes of {len(prepared.train_idx)} + "
                 f"{len(prepared.val_idx)}; model {model}, Adam {learning_rate:g}, batch "
                 f"{batch_size}; {epochs} epochs, stiffness measured at epochs {evals}")
    run = runner.train_measured(
        out, prepared, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
        seed=seed, eval_epochs=evals, eval_sets={"train": (train.x, train.y),
                                                 "val": (val.x, val.y)},
        eta=runner.EtaModel({"": (epochs, evals)},
                            final_figures=4 if train.fine_to_coarse is not None else 3))
    results, arrays = _results(run, prepared, distance_space)
    figures = _figures(study, run, arrays, prepared, distance_space)
    final = results["final"]
    cosine = final["stiffness"]["train_train"]["cosine"]
    headline = (f"epoch {final['epoch']}: train accuracy {final['train_accuracy']:.3f}, val "
                f"accuracy {final['val_accuracy']:.3f} (full passes); train-train cosine "
                f"within {runner.format_number(cosine['within'])}, between "
                f"{runner.format_number(cosine['between'])}")
    if "superclass_contrast" in results:
        headline += (f"; super-class contrast (train-train cosine) "
                     f"{results['superclass_contrast']['train_train']['cosine']:+.4f}")
    run_info = {"resumed_after_epoch": run.resumed_from,
                "train_seconds": run.train_seconds.tolist(),
                "measure_seconds": run.measure_seconds.tolist()}
    return runner.finish(out, results, arrays, figures, run_info, headline=[headline],
                         figure_step=evals[-1])


def _results(run: training.TrainingRun, prepared: runner.Prepared,
             distance_space: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary.json's results, results.npz's arrays)."""
    from tfstiffness import measures

    m, train, val = run.measurements, prepared.train, prepared.val
    f2c = train.fine_to_coarse
    arrays: dict[str, Any] = {
        "eval_epochs": run.eval_epochs, "epoch_loss": run.epoch_loss,
        "train_probe_indices": prepared.train_idx, "val_probe_indices": prepared.val_idx,
        "train_probe_labels": train.y[prepared.train_idx],
        "val_probe_labels": val.y[prepared.val_idx], **m}
    per_epoch = []
    for e, epoch in enumerate(run.eval_epochs.tolist()):
        entry: dict[str, Any] = {"epoch": epoch}
        for name in ("train", "val"):
            entry[f"{name}_loss"] = float(m[f"{name}_loss"][e])
            entry[f"{name}_accuracy"] = float(m[f"{name}_accuracy"][e])
        entry["stiffness"] = {pair: {kind: runner.pair_stats(m, e, pair, kind)
                                     for kind in KINDS} for pair in PAIRS}
        entry["zero_gradients"] = {name: int(m[f"zero_gradients/{name}"][e])
                                   for name in ("train", "val")}
        per_epoch.append(entry)
    results: dict[str, Any] = {
        "num_classes": prepared.num_classes, "train_examples": len(train),
        "val_examples": len(val), "train_probe": len(prepared.train_idx),
        "val_probe": len(prepared.val_idx), "parameters": int(run.model.count_params()),
        "gram_method": str(m["gram_method"][-1]), "distance_space": distance_space,
        "losses": "train_loss, val_loss: mean cross-entropy of one pass over the whole split "
                  "in inference mode; results.npz epoch_loss (the progress lines' 'mean batch "
                  "loss'): mean of an epoch's mini-batch losses in training mode",
        "epochs": per_epoch, "final": per_epoch[-1]}
    if f2c is not None:
        arrays["fine_to_coarse"] = f2c
        arrays["superclass_order"] = measures.superclass_order(f2c)
        for pair in PAIRS:
            for kind in KINDS:
                arrays[f"{pair}/{kind}/superclass_matrix"] = np.stack(
                    [measures.superclass_matrix(C, f2c)
                     for C in m[f"{pair}/{kind}/class_matrix"]])
        final = per_epoch[-1]["stiffness"]
        results["superclass_contrast"] = {
            pair: {kind: final[pair][kind]["superclass_contrast"] for kind in KINDS}
            for pair in PAIRS}
        results["num_superclasses"] = int(f2c.max()) + 1
    return results, arrays


def _figures(study: str, run: training.TrainingRun, arrays: Mapping[str, Any],
             prepared: runner.Prepared, distance_space: str) -> dict[str, Any]:
    """The study's figures, by name."""
    from tfstiffness import measures, plots

    m, train = run.measurements, prepared.train
    f2c = train.fine_to_coarse
    last = len(run.eval_epochs) - 1
    epoch = int(run.eval_epochs[last])
    figures: dict[str, Any] = {"curves": curves_figure(
        run.eval_epochs, m, run.epoch_loss, title=f"{study}: {train.name}")}
    C = m["train_train/cosine/class_matrix"][last]
    figures["class_matrix"] = plots.class_matrix(
        C, fine_to_coarse=f2c, class_names=train.class_names, coarse_names=train.coarse_names,
        title=f"Class stiffness, train-train cosine, epoch {epoch}", vmax=None)
    entries = [(*runner.curve_at(m, e), f"epoch {int(run.eval_epochs[e])}")
               for e in sorted({0, last}) if runner.curve_at(m, e) is not None]
    if entries:  # None when the probe has no within-class pair.
        space = ("pooled representation" if distance_space == "pooled" else "input space")
        figures["stiffness_vs_distance"] = plots.stiffness_vs_distance(
            entries, title=f"Within-class cosine stiffness vs distance (train probe, {space})")
    if f2c is not None:
        figures["superclass_matrix"] = plots.superclass_matrix(
            measures.superclass_matrix(C, f2c), coarse_names=train.coarse_names,
            title=f"Super-class stiffness, train-train cosine, epoch {epoch}")
    return figures


def curves_figure(epochs: Any, m: Mapping[str, np.ndarray], epoch_loss: Any = None,
                  title: str | None = None):
    """Stiffness, loss and accuracy through training, and the super-class contrast if any.

    Panels: cosine and sign within/between-class stiffness (colour: within or between; line
    style: the pairing, train-train solid, train-val dashed, val-val dotted, in one legend
    below), loss on a log scale (full passes over each split, and the mean mini-batch loss of
    each epoch), accuracy, and (when `m` has ``.../superclass_contrast``) the cosine and sign
    super-class contrast.

    Args:
        epochs: [E] measured epochs.
        m: Measurements stacked over the measured epochs (`runner.train_measured`).
        epoch_loss: Optional [epochs] mean mini-batch loss of epochs 1, 2, ...
        title: Figure title.

    Returns:
        A matplotlib figure (Agg canvas).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    superclasses = f"{PAIRS[0]}/cosine/superclass_contrast" in m
    pairs = [p for p in PAIRS if f"{p}/cosine/within" in m]
    mosaic = [["cosine", "sign"], ["loss", "accuracy"]]
    if superclasses:
        mosaic.append(["contrast_cosine", "contrast_sign"])
    fig = Figure(figsize=(11.0, 3.7 * len(mosaic) + 0.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplot_mosaic(mosaic)
    styles = {"train_train": "-", "train_val": "--", "val_val": ":"}
    stat_colours = {"within": "C0", "between": "C3"}
    epochs = np.asarray(epochs)
    for kind in KINDS:
        ax = axes[kind]
        for pair in pairs:
            for stat, colour in stat_colours.items():
                ax.plot(epochs, m[f"{pair}/{kind}/{stat}"], styles[pair], color=colour,
                        marker="o", markersize=3.5)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(f"{kind.capitalize()} stiffness")
        ax.set_ylabel(f"class {kind} stiffness")
    ax = axes["loss"]
    ax.plot(epochs, m["train_loss"], "o-", color="C0", markersize=3.5,
            label="train (full pass, inference)")
    if "val_loss" in m:
        ax.plot(epochs, m["val_loss"], "o-", color="C1", markersize=3.5,
                label="validation (full pass)")
    if epoch_loss is not None and len(epoch_loss):
        ax.plot(np.arange(1, len(epoch_loss) + 1), epoch_loss, "-", color="0.55",
                linewidth=1.0, label="mean mini-batch loss of the epoch")
    values = np.concatenate([np.ravel(m["train_loss"]), np.ravel(m.get("val_loss", []))])
    if np.all(values[np.isfinite(values)] > 0):
        ax.set_yscale("log")  # The untrained loss would squash later epochs on a linear axis.
    ax.set_title("Loss")
    ax.set_ylabel("cross-entropy (log scale)")
    ax.legend(fontsize=8)
    ax = axes["accuracy"]
    ax.plot(epochs, m["train_accuracy"], "o-", color="C0", markersize=3.5, label="train")
    if "val_accuracy" in m:
        ax.plot(epochs, m["val_accuracy"], "o-", color="C1", markersize=3.5,
                label="validation")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Accuracy (full passes)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    if superclasses:
        for kind in KINDS:
            ax = axes[f"contrast_{kind}"]
            for pair in pairs:
                ax.plot(epochs, m[f"{pair}/{kind}/superclass_contrast"], styles[pair],
                        color="C2", marker="o", markersize=3.5)
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_title(f"Super-class contrast, {kind}")
            ax.set_ylabel("same super-class minus other")
    for ax in axes.values():
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=c, linewidth=2, label=f"{s}-class")
               for s, c in stat_colours.items()]
    handles += [Line2D([], [], color="black", linestyle=styles[p],
                       label=p.replace("_", "-") + " pairs") for p in pairs]
    if superclasses:
        handles.append(Line2D([], [], color="C2", linewidth=2, label="super-class contrast"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9,
               frameon=False)
    if title:
        fig.suptitle(title)
    return fig
