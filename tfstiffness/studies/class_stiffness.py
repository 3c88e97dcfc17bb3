"""Class stiffness through training (Fort et al. 2019, Sec. 4.1-4.2): the class study.

Trains a classifier with Adam at a constant learning rate and, at chosen epochs, measures on
FIXED class-balanced probes of the training and validation splits: the class stiffness
matrix of train-train, train-val and val-val pairs (sign and cosine), within- and
between-class stiffness, the super-class contrast when the data has super-classes, the
within-class stiffness against input distance with its critical length xi by both estimators
(crossing and linear fit), the gradient-alignment family (m-coherence, gradient diversity
and confusion, train-val alignment), bootstrap intervals over the probe examples, and loss
and accuracy on both whole splits. `class_study` is the whole study; `run_class_stiffness`
is it with this study's defaults, and `cifar100_superclass` and `text_transformer` are it
with theirs (a 100-class hierarchy; a transformer measured in its pooled representation).

Default: MNIST-1D (Greydanus 2020; `data.load("mnist1d")`, the standard 4,000 / 1,000 split,
generated offline), the paper's fully-connected net, 20 epochs. ``model="cnn"`` trains
Greydanus' Conv1D net instead. With ``seeds`` the study runs once per seed, each a resumable
run of its own, and reports the mean and an interval across seeds (`studies.seeds`).

Outputs (in the output directory, see `runner`): ``summary.json`` (config, versions, per
measured epoch every scalar measure of every pair set and kind, xi by both estimators
(`runner.critical_lengths`), the alignment family and the bootstrap intervals),
``results.npz`` (everything measured, stacked over the measured epochs: class matrices
[E, K, K], curves [E, B], ...), ``figures/curves.png``, ``class_matrix.png``,
``stiffness_vs_distance.png`` (and ``superclass_matrix.png``), and TensorBoard runs
``stiffness``, ``train``, ``validation`` and ``figures``.

Example:
    >>> import tempfile
    >>> s = run_class_stiffness(tempfile.mkdtemp(), dataset="gaussian_blobs", epochs=1,
    ...                         probe_per_class=5, data_options={"num_per_class": 10},
    ...                         bootstrap_samples=20, verbose=False)
    >>> sorted(s["results"]["final"]["stiffness"])
    ['train_train', 'train_val', 'val_val']
    >>> sorted(s["results"]["final"]["stiffness"]["train_train"]["cosine"]["intervals"])
    ['between', 'within', 'xi_crossing', 'xi_linear_fit']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfstiffness import training
from tfstiffness.outputs import run_directory
from tfstiffness.studies import runner
from tfstiffness.studies import seeds as seeds_lib
from tfstiffness.studies.runner import KINDS, PAIRS

__all__ = ["BOOTSTRAP_SAMPLES", "class_study", "curves_figure", "run_class_stiffness"]

# The synthetic hierarchy (``--dataset hierarchical_images``): 10 classes in 5 super-classes
# of 2, 100 examples per class and split, standardised like the real image sets. Pixel noise
# 6, measured with the fully-connected net (Adam 1e-3, seed 0): 84 % validation accuracy
# after 1 epoch, 92 % after 10, the training loss 0.019 after 1 epoch; with noise 1 it is at
# zero loss and 100 % after one epoch; with noise 16 it memorises (train 100 %, validation
# 27 % after 1 epoch and 41 % after 10).
DATA_DEFAULTS = {"hierarchical_images": {
    "num_superclasses": 5, "classes_per_superclass": 2, "num_per_class": 100, "noise": 6.0}}
#: Bootstrap resamples of the probe examples at each measurement (intervals of within,
#: between, the super-class contrast, both xi and m-coherence); 0 turns them off.
BOOTSTRAP_SAMPLES = 200


def run_class_stiffness(
    output_dir: str,
    dataset: str = "mnist1d",
    model: str = "fc",
    epochs: int = 20,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    probe_per_class: int = 50,
    eval_epochs: Sequence[int] | str | None = "log",
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    data_dir: str | None = None,
    method: str = "auto",
    max_train_examples: int | None = None,
    max_val_examples: int | None = None,
    data_options: Mapping[str, Any] | None = None,
    bins: int = 20,
    bootstrap_samples: int = BOOTSTRAP_SAMPLES,
    verbose: bool = True,
    tensorboard_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Class stiffness through training (the paper's MNIST/Fashion-MNIST/CIFAR studies).

    Default data: MNIST-1D (4,000 training and 1,000 test signals of length 40, 10 classes).
    ``hierarchical_images`` (synthetic, 10 classes in 5 super-classes of 2, 100 examples per
    class and split, pixel noise 6) adds the super-class contrast; `data_options` overrides
    a synthetic generator's options.

    Args:
        output_dir: Output directory (an `run_directory.OutputDir`: locked while running;
            rerunning with the same arguments resumes, other arguments are refused).
        dataset: A `tfstiffness.data` name (mnist1d, mnist, fashion_mnist, cifar10, cifar100,
            or a synthetic image set).
        model: "fc", "cnn" (the 1-D CNN for MNIST-1D, the paper's CNN for images) or
            "resnet20".
        epochs: Training epochs.
        learning_rate: Adam's learning rate.
        batch_size: Mini-batch size.
        probe_per_class: Probe examples per class, from each split.
        eval_epochs: Epochs to measure at (0 and `epochs` are always added); None: every
            epoch; "log": 1, 2, 4, 8, ... (`training.parse_eval_epochs`).
        seed: Seed of the data generator, probes, initial weights, batch order and bootstrap.
        seeds: Repeat the study for each of these seeds (then `seed` is not used): one
            resumable run per seed in ``output_dir/seed=S``, TensorBoard runs ``seed=S/...``,
            and the mean with an interval across seeds in ``output_dir`` (`studies.seeds`).
        data_dir: tfds data directory.
        method: `gradient_gram` method.
        max_train_examples: Train on the first N training examples only.
        max_val_examples: Use the first N validation examples only.
        data_options: Options of `data.load` (synthetic generator options).
        bins: Distance bins of the stiffness-vs-distance curves.
        bootstrap_samples: Bootstrap resamples of the probes per measurement (0: none).
        verbose: Print progress lines.
        tensorboard_dir: Where the TensorBoard runs go (default ``output_dir/tensorboard``).

    Returns:
        The summary (what ``summary.json`` holds).

    Raises:
        runner.StudyInputError: a bad argument, or data or a model that cannot be used;
            `run_directory.OutputDirError`, `run_directory.ConfigMismatchError`,
            `data.DatasetUnavailableError`: all before anything is written.
    """
    kwargs = {"dataset": dataset, "model": model, "epochs": epochs, "learning_rate": learning_rate,
                  "batch_size": batch_size, "probe_per_class": probe_per_class,
                  "eval_epochs": eval_epochs, "data_dir": data_dir, "method": method,
                  "max_train_examples": max_train_examples, "max_val_examples": max_val_examples,
                  "data_options": data_options, "bins": bins, "bootstrap_samples": bootstrap_samples}
    if seeds is not None:
        return seeds_lib.run_seeds(run_class_stiffness, output_dir, seeds, study="class_stiffness",
                                   kwargs=kwargs, figures=seed_figures,
                                   tensorboard=seed_tensorboard, headline=seed_headline,
                                   verbose=verbose)
    return class_study(
        "class_stiffness", output_dir, **{**kwargs, "data_options": runner.merged_options(
            DATA_DEFAULTS, dataset, data_options)}, seed=seed, model_options=None,
        verbose=verbose, tensorboard_dir=tensorboard_dir)


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
    bootstrap_samples: int = 0,
    tensorboard_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The class study (see the module docstring); `study` names the outputs and progress.

    `distance_space` names where the distances of the stiffness-vs-distance curves are
    measured ("input", or e.g. "pooled" with a `representation` function giving the
    features, see `probes.ProbeSets`).
    """
    runner.check_arguments(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                           probe_per_class=probe_per_class, seed=seed, method=method,
                           max_train_examples=max_train_examples,
                           max_val_examples=max_val_examples, bins=bins,
                           bootstrap_samples=bootstrap_samples)
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
              "distance_space": distance_space, "bootstrap_samples": bootstrap_samples}
    run_directory.check_output_dir(output_dir)
    prepared = runner.prepare(
        dataset, data_dir=data_dir, max_train_examples=max_train_examples,
        max_val_examples=max_val_examples, seed=seed, data_options=data_options,
        probe_per_class=probe_per_class, model=model, model_options=model_options,
        method=method, bins=bins, representation=representation,
        bootstrap_samples=bootstrap_samples)
    train, val = prepared.train, prepared.val
    out = run_directory.OutputDir(output_dir, config, name=study, verbose=verbose,
                               tensorboard_dir=tensorboard_dir)
    out.progress(f"{dataset}: {len(train)} training and {len(val)} validation examples, "
                 f"{prepared.num_classes} classes; probes of {len(prepared.train_idx)} + "
                 f"{len(prepared.val_idx)}; model {model}, Adam {learning_rate:g}, batch "
                 f"{batch_size}; {epochs} epochs, stiffness measured at epochs {evals}"
                 + (f"; {bootstrap_samples} bootstrap resamples" if bootstrap_samples else ""))
    run = runner.train_measured(
        out, prepared, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
        seed=seed, eval_epochs=evals, eval_sets={"train": (prepared.train_x, train.y),
                                                 "val": (prepared.val_x, val.y)},
        eta=runner.EtaModel({"": (epochs, evals)},
                            final_figures=4 if train.fine_to_coarse is not None else 3))
    results, arrays = _results(run, prepared, distance_space, bootstrap_samples, seed)
    figures = figures_of(study, arrays, distance_space)
    final = results["final"]
    cosine = final["stiffness"]["train_train"]["cosine"]
    headline = (f"epoch {final['epoch']}: train accuracy {final['train_accuracy']:.3f}, val "
                f"accuracy {final['val_accuracy']:.3f} (full passes); train-train cosine "
                f"within {runner.format_number(cosine['within'])}, between "
                f"{runner.format_number(cosine['between'])}; "
                f"{_xi_text(cosine['xi_crossing'], cosine['xi_linear_fit'])}")
    if "superclass_contrast" in results:
        headline += (f"; super-class contrast (train-train cosine) "
                     f"{results['superclass_contrast']['train_train']['cosine']:+.4f}")
    run_info = {"resumed_after_epoch": run.resumed_from,
                "train_seconds": run.train_seconds.tolist(),
                "measure_seconds": run.measure_seconds.tolist()}
    return runner.finish(out, results, arrays, figures, run_info, headline=[headline],
                         figure_step=evals[-1])


def _xi_text(crossing: Mapping[str, Any], fit: Mapping[str, Any]) -> str:
    """One line on xi by both estimators, e.g. ``xi crossing > 1.2, linear fit 2.1
    (extrapolated)``."""
    if crossing["status"] == "crossed":
        first = f"xi crossing {crossing['xi']:.3g}"
    elif crossing["bound"] is not None:
        sign = ">" if crossing["status"] == "never_crossed" else "<"
        first = f"xi crossing {sign} {crossing['bound']:.3g}"
    else:
        first = f"xi crossing: {crossing['status']}"
    if fit["xi"] is not None:
        second = f"linear fit {fit['xi']:.3g}" + (" (extrapolated)" if fit["extrapolated"]
                                                 else "")
    else:
        second = f"linear fit: {fit['status']}"
    return f"{first}, {second}"


def _results(run: training.TrainingRun, prepared: runner.Prepared, distance_space: str,
             bootstrap_samples: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary.json's results, results.npz's arrays)."""
    from tfstiffness import measures

    m, train, val = run.measurements, prepared.train, prepared.val
    f2c = train.fine_to_coarse
    arrays: dict[str, Any] = {
        "eval_epochs": run.eval_epochs, "epoch_loss": run.epoch_loss,
        "train_probe_indices": prepared.train_idx, "val_probe_indices": prepared.val_idx,
        "train_probe_labels": train.y[prepared.train_idx],
        "val_probe_labels": val.y[prepared.val_idx],
        "class_names": np.asarray(train.class_names, dtype=str),
        "dataset_name": np.asarray(train.name), **m}
    if train.coarse_names is not None:
        arrays["coarse_names"] = np.asarray(train.coarse_names, dtype=str)
    per_epoch = []
    for e, epoch in enumerate(run.eval_epochs.tolist()):
        entry: dict[str, Any] = {"epoch": epoch}
        for name in ("train", "val"):
            entry[f"{name}_loss"] = float(m[f"{name}_loss"][e])
            entry[f"{name}_accuracy"] = float(m[f"{name}_accuracy"][e])
        entry["stiffness"] = {pair: {kind: runner.pair_stats(m, e, pair, kind)
                                     for kind in KINDS} for pair in PAIRS}
        entry["alignment"] = {pair: runner.alignment_stats(m, e, pair) for pair in PAIRS}
        entry["zero_gradients"] = {name: int(m[f"zero_gradients/{name}"][e])
                                   for name in ("train", "val")}
        per_epoch.append(entry)
    results: dict[str, Any] = {
        "num_classes": prepared.num_classes, "train_examples": len(train),
        "val_examples": len(val), "train_probe": len(prepared.train_idx),
        "val_probe": len(prepared.val_idx), "architecture": str(run.model.name),
        "parameters": int(run.model.count_params()),
        "gram_method": str(m["gram_method"][-1]), "distance_space": distance_space,
        "losses": "train_loss, val_loss: mean cross-entropy of one pass over the whole split "
                  "in inference mode; results.npz epoch_loss (the progress lines' 'mean batch "
                  "loss'): mean of an epoch's mini-batch losses in training mode",
        "critical_length": runner.CRITICAL_LENGTH_NOTE,
        "bootstrap": runner.bootstrap_note(bootstrap_samples, seed),
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


def figures_of(study: str, arrays: Mapping[str, Any], distance_space: str,
               curve_entries: Sequence[tuple[Any, Any, str]] | None = None,
               band_note: str = "bootstrap 95% intervals over the probe examples"
               ) -> dict[str, Any]:
    """The study's figures, by name, from its results.npz arrays (`_results`) or their mean
    over seeds (`seed_figures`); `curve_entries` overrides the stiffness-vs-distance overlay
    (default: the first and last measured epochs)."""
    from tfstiffness import measures
    from tfstiffness.outputs import plots

    m = arrays
    f2c = m.get("fine_to_coarse")
    eval_epochs = np.asarray(m["eval_epochs"])
    last = len(eval_epochs) - 1
    epoch = int(eval_epochs[last])
    name = str(m["dataset_name"]) if "dataset_name" in m else ""
    class_names = m["class_names"].tolist() if "class_names" in m else None
    coarse_names = m["coarse_names"].tolist() if "coarse_names" in m else None
    figures: dict[str, Any] = {"curves": curves_figure(
        eval_epochs, m, m.get("epoch_loss"), title=f"{study}: {name}", band_note=band_note)}
    C = m["train_train/cosine/class_matrix"][last]
    figures["class_matrix"] = plots.class_matrix(
        C, fine_to_coarse=f2c, class_names=class_names, coarse_names=coarse_names,
        title=f"Class stiffness, train-train cosine, epoch {epoch}", vmax=None)
    if curve_entries is None:
        curve_entries = [(*runner.curve_at(m, e), f"epoch {int(eval_epochs[e])}")
                         for e in sorted({0, last}) if runner.curve_at(m, e) is not None]
    if curve_entries:  # None when the probe has no within-class pair.
        space = ("pooled representation" if distance_space == "pooled" else "input space")
        figures["stiffness_vs_distance"] = plots.stiffness_vs_distance(
            list(curve_entries),
            title=f"Within-class cosine stiffness vs distance (train probe, {space})")
    if f2c is not None:
        figures["superclass_matrix"] = plots.superclass_matrix(
            measures.superclass_matrix(C, f2c), coarse_names=coarse_names,
            title=f"Super-class stiffness, train-train cosine, epoch {epoch}")
    return figures


def seed_figures(study: str, stacked: Mapping[str, np.ndarray], config: Mapping[str, Any]
                 ) -> dict[str, Any]:
    """The study's figures over seeds: every series is the mean over seeds with its interval
    across seeds as the band; the distance curves of the last epoch, one per seed.

    Args:
        study: The study's name.
        stacked: results.npz arrays of each seed, stacked on a leading seed axis
            (`seeds.run_seeds`), with ``seeds`` [S].
        config: The study's arguments.
    """
    averaged = seeds_lib.mean_with_interval(stacked)
    last = len(averaged["eval_epochs"]) - 1
    entries = []
    for s, seed in enumerate(stacked["seeds"].tolist()):
        one = {key: value[s] for key, value in stacked.items() if key != "seeds"}
        found = runner.curve_at(one, last)
        if found is not None:
            entries.append((*found, f"seed {seed}"))
    return figures_of(study, averaged, config.get("distance_space", "input"), entries,
                      band_note=seeds_lib.band_note(len(stacked["seeds"])))


def seed_tensorboard(averaged: Mapping[str, np.ndarray]):
    """TensorBoard run ``mean_over_seeds/stiffness``: the mean over seeds of every stiffness
    scalar, under the tags the seeds' own ``stiffness`` runs use (so they overlay)."""
    evals = np.asarray(averaged["eval_epochs"]).tolist()
    series = {}
    for pair in PAIRS:
        found = seeds_lib.scalar_series(averaged, list(averaged), f"{pair}/", len(evals))
        series.update({f"stiffness/{pair}/{name}": values for name, values in found.items()})
    return {"mean_over_seeds/stiffness": (evals, series)}


def seed_headline(results: Mapping[str, Any]) -> list[str]:
    """The closing line of a run over seeds: the final train-train cosine within and between
    stiffness and linear-fit xi, mean and interval across seeds."""
    final = results["across_seeds"]["final"]
    cosine = final["stiffness"]["train_train"]["cosine"]
    parts = []
    for name, value in (("within", cosine["within"]), ("between", cosine["between"]),
                        ("xi linear fit", cosine["xi_linear_fit"]["xi"])):
        if isinstance(value, Mapping) and value.get("mean") is not None:
            interval = (f" [{value['low']:.3g}, {value['high']:.3g}]"
                        if value.get("low") is not None else "")
            parts.append(f"{name} {value['mean']:.3g}{interval}")
        elif isinstance(value, float):
            parts.append(f"{name} {value:.3g}")
    return [f"epoch {final['epoch']}, mean over seeds {results['seeds']} (95% t-interval): "
            f"train-train cosine " + ", ".join(parts)]


def _cap_xi_axis(ax, series: Sequence[Any]) -> None:
    """y up to 1.5 x the largest xi drawn (at least 2.2, past the largest possible distance
    2), on a log scale when the xi drawn span more than a factor of 10: an extrapolated xi
    (and its interval) can reach hundreds when the fitted slope is nearly flat, and would
    flatten the other points; such a band runs off the top."""
    values = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in series] or [[]])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() > 10 * values.min():
        ax.set_yscale("log")
        ax.set_ylim(values.min() / 1.5, 1.5 * values.max())
        ax.set_ylabel("ξ (input distance, log scale)")
        return
    ax.set_ylim(0.0, max(2.2, 1.5 * values.max()) if values.size else 2.2)


def curves_figure(epochs: Any, m: Mapping[str, np.ndarray], epoch_loss: Any = None,
                  title: str | None = None, band_note: str = "95% intervals"):
    """Stiffness, xi, alignment, loss and accuracy through training, and the super-class
    contrast if any.

    Panels: cosine and sign within/between-class stiffness (colour: within or between; line
    style: the pairing, train-train solid, train-val dashed, val-val dotted, in one legend
    below); when `m` has them, the train-train cosine critical length xi by both estimators
    (crossing, linear fit; an extrapolated linear-fit xi is a hollow marker) and the
    m-coherence of the train and val probes; loss on a log scale (full passes over each
    split, and the mean mini-batch loss of each epoch), accuracy, and (when `m` has
    ``.../superclass_contrast``) the cosine and sign super-class contrast. A measure with
    ``KEY_ci_low`` and ``KEY_ci_high`` in `m` gets a shaded band (`band_note` says what it is).

    Args:
        epochs: [E] measured epochs.
        m: Measurements stacked over the measured epochs (`runner.train_measured`).
        epoch_loss: Optional [epochs] mean mini-batch loss of epochs 1, 2, ...
        title: Figure title.
        band_note: What the bands are, for the legend.

    Returns:
        A matplotlib figure (Agg canvas).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    superclasses = f"{PAIRS[0]}/cosine/superclass_contrast" in m
    xi_key = "train_train/cosine/xi_linear_fit"
    alignment = "train_train/alignment/m_coherence" in m
    pairs = [p for p in PAIRS if f"{p}/cosine/within" in m]
    mosaic = [["cosine", "sign"]]
    if xi_key in m or alignment:
        mosaic.append(["xi", "alignment"])
    mosaic.append(["loss", "accuracy"])
    if superclasses:
        mosaic.append(["contrast_cosine", "contrast_sign"])
    fig = Figure(figsize=(11.0, 3.5 * len(mosaic) + 0.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplot_mosaic(mosaic)
    styles = {"train_train": "-", "train_val": "--", "val_val": ":"}
    stat_colours = {"within": "C0", "between": "C3"}
    epochs = np.asarray(epochs)
    banded = False

    def plot(ax, key, style, colour, hollow=None, label=None):
        nonlocal banded
        ys = np.asarray(m[key], np.float64)
        if f"{key}_ci_low" in m:
            low = np.asarray(m[f"{key}_ci_low"], np.float64)
            high = np.asarray(m[f"{key}_ci_high"], np.float64)
            finite = np.isfinite(low) & np.isfinite(high)
            if finite.any():
                ax.fill_between(epochs, np.where(finite, low, np.nan),
                                np.where(finite, high, np.nan), where=finite, color=colour,
                                alpha=0.13, linewidth=0)
                banded = True
        ax.plot(epochs, ys, style, color=colour, label=label)
        hollow = np.zeros(ys.shape, bool) if hollow is None else hollow
        ax.plot(epochs[~hollow], ys[~hollow], "o", color=colour, markersize=3.5)
        ax.plot(epochs[hollow], ys[hollow], "o", color=colour, markersize=5,
                markerfacecolor="white")

    for kind in KINDS:
        ax = axes[kind]
        for pair in pairs:
            for stat, colour in stat_colours.items():
                plot(ax, f"{pair}/{kind}/{stat}", styles[pair], colour)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(f"{kind.capitalize()} stiffness")
        ax.set_ylabel(f"class {kind} stiffness")
    if "xi" in axes:
        ax = axes["xi"]
        if "train_train/cosine/xi_crossing" in m:
            crossed = np.isfinite(np.asarray(m["train_train/cosine/xi_crossing"], np.float64))
            plot(ax, "train_train/cosine/xi_crossing", "-", "C4",
                 label="crossing" + ("" if crossed.any() else
                                     ": never crossed zero (ξ beyond the dotted line)"))
        if xi_key in m:
            extrapolated = np.asarray(m[f"{xi_key}_extrapolated"], np.float64) == 1
            plot(ax, xi_key, "-", "C2", hollow=extrapolated,
                 label="linear fit (open: extrapolated)")
        largest: list[float] = []
        if "train_train/cosine/curve_edges" in m:
            edges = np.asarray(m["train_train/cosine/curve_edges"], np.float64)
            counts = np.asarray(m["train_train/cosine/curve_counts"])
            largest = [e[np.flatnonzero(c > 0)[-1] + 1] if (c > 0).any() else np.nan
                       for e, c in zip(edges.reshape(len(epochs), -1),
                                       counts.reshape(len(epochs), -1))]
            ax.plot(epochs, largest, ":", color="0.4", label="largest distance measured")
        _cap_xi_axis(ax, [m[key] for key in ("train_train/cosine/xi_crossing", xi_key)
                          if key in m] + [largest])
        ax.set_title("Critical length ξ (train-train cosine)")
        if ax.get_yscale() != "log":
            ax.set_ylabel("ξ (input distance)")
        ax.legend(fontsize=8)
        ax = axes["alignment"]
        for pair, colour in (("train_train", "C0"), ("val_val", "C1")):
            if f"{pair}/alignment/m_coherence" in m:
                plot(ax, f"{pair}/alignment/m_coherence", styles[pair], colour,
                     label=pair.replace("_", "-"))
        ax.axhline(1, color="black", linewidth=0.6)
        ax.set_title("m-coherence (1: orthogonal gradients)")
        ax.set_ylabel("m-coherence")
        ax.legend(fontsize=8)
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
                plot(ax, f"{pair}/{kind}/superclass_contrast", styles[pair], "C2")
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
    if banded:
        handles.append(Patch(color="0.3", alpha=0.2, label=f"shaded: {band_note}"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
               fontsize=9, frameon=False)
    if title:
        fig.suptitle(title)
    return fig
