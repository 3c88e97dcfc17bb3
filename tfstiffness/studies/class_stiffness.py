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
(`result_dicts.critical_lengths`), the alignment family and the bootstrap intervals),
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

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from tfstiffness import training
from tfstiffness.studies import config as config_lib
from tfstiffness.studies import progress, runner
from tfstiffness.studies import results as result_dicts
from tfstiffness.studies import seeds as seeds_lib
from tfstiffness.studies.config import parameter
from tfstiffness.studies.runner import KINDS, PAIRS

__all__ = ["BOOTSTRAP_SAMPLES", "ClassStiffnessConfig", "class_study", "run_class_stiffness"]

#: Bootstrap resamples of the probe examples at each measurement (intervals of within,
#: between, the super-class contrast, both xi and m-coherence); 0 turns them off.
BOOTSTRAP_SAMPLES = 200
#: Data sets of the class_stiffness binary.
DATASETS = ("mnist1d", "hierarchical_images", "mnist", "fashion_mnist", "cifar10", "cifar100")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClassStiffnessConfig(config_lib.TrainingConfig):
    """The class study's parameters: those of `TrainingConfig` and Adam's `learning_rate`.

    Defaults: MNIST-1D (4,000 training and 1,000 test signals of length 40, 10 classes), the
    paper's fully-connected net ("fc"; "cnn" is the 1-D CNN for MNIST-1D, the paper's CNN
    for images; "resnet20"), 20 epochs measured at 0, 1, 2, 4, ... ("log"), Adam 1e-3, batch
    32, probes of 50 per class, 200 bootstrap resamples. ``hierarchical_images``
    (synthetic, 10 classes in 5 super-classes of 2, 100 examples per class and split, pixel
    noise 6: `DATA_DEFAULTS`) adds the super-class contrast; `data_options` overrides a
    synthetic generator's options.

    `record` is config.json: every parameter but ``seeds``, with ``eval_epochs`` as the
    measured epochs, ``data_options`` over `DATA_DEFAULTS`, and ``model_options`` and
    ``distance_space`` (where the distance curves are measured, `DISTANCE_SPACE`).

    Attributes:
        learning_rate: Adam's constant learning rate.
    """

    STUDY = "class_stiffness"
    # The synthetic hierarchy (``--dataset hierarchical_images``): 10 classes in 5
    # super-classes of 2, 100 examples per class and split, standardised like the real image
    # sets. Pixel noise 6, measured with the fully-connected net (Adam 1e-3, seed 0): 84 %
    # validation accuracy after 1 epoch, 92 % after 10, the training loss 0.019 after 1 epoch;
    # with noise 1 it is at zero loss and 100 % after one epoch; with noise 16 it memorises
    # (train 100 %, validation 27 % after 1 epoch and 41 % after 10).
    DATA_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {"hierarchical_images": {
        "num_superclasses": 5, "classes_per_superclass": 2, "num_per_class": 100,
        "noise": 6.0}}
    #: Where the distances of the stiffness-vs-distance curves are measured.
    DISTANCE_SPACE: ClassVar[str] = "input"

    dataset: str = parameter("mnist1d", "mnist1d or hierarchical_images (generated offline), "
                             "or a TensorFlow Datasets image set.", flag="enum",
                             choices=DATASETS)
    model: str = parameter("fc", flag="model", choices=("fc", "cnn", "resnet20"))
    learning_rate: float = parameter(1e-3, "Adam's constant learning rate.",
                                     flag="positive_float")
    bootstrap_samples: int = parameter(BOOTSTRAP_SAMPLES, config_lib.BOOTSTRAP_HELP,
                                       flag="integer", lower_bound=0)

    def merged_model_options(self) -> dict[str, Any]:
        """Options of the model (none for this study's models)."""
        return {}

    def record(self) -> dict[str, Any]:
        return {**super().record(), "eval_epochs": self.parsed_eval_epochs(),
                "data_options": self.merged_data_options(),
                "model_options": self.merged_model_options(),
                "distance_space": self.DISTANCE_SPACE}


#: The synthetic hierarchy's default options, by data set (`ClassStiffnessConfig`).
DATA_DEFAULTS = ClassStiffnessConfig.DATA_DEFAULTS


def class_study(
    output_dir: str,
    config: ClassStiffnessConfig,
    *,
    verbose: bool,
    representation: Callable[[Any, np.ndarray], np.ndarray] | None = None,
    tensorboard_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The class study (see the module docstring) of one seed, its config checked;
    `config.STUDY` names the outputs and progress.

    The distances of the stiffness-vs-distance curves are measured where
    `config.DISTANCE_SPACE` says ("input", or e.g. "pooled" with a `representation` function
    giving the features, see `probes.ProbeSets`).
    """
    evals = config.parsed_eval_epochs()
    study, c = config.STUDY, config
    prepared, out = runner.open_run(output_dir, c, verbose=verbose,
                                    tensorboard_dir=tensorboard_dir,
                                    model_options=c.merged_model_options() or None,
                                    representation=representation)
    train, val = prepared.train, prepared.val
    probes = f"probes of {len(prepared.train_idx)} + {len(prepared.val_idx)}"
    out.progress(f"{c.dataset}: {len(train)} training and {len(val)} validation examples, "
                 f"{prepared.num_classes} classes; {probes}; model {c.model}, Adam "
                 f"{c.learning_rate:g}, batch {c.batch_size}; {c.epochs} epochs, stiffness "
                 f"measured at epochs {evals}{runner.bootstrap_text(c.bootstrap_samples)}")
    run = runner.train_measured(
        out, prepared, epochs=c.epochs, learning_rate=c.learning_rate,
        batch_size=c.batch_size, seed=c.seed, eval_epochs=evals,
        eval_sets={"train": (prepared.train_x, train.y), "val": (prepared.val_x, val.y)},
        eta=progress.EtaModel({"": (c.epochs, evals)},
                              final_figures=4 if train.fine_to_coarse is not None else 3))
    results, arrays = _results(run, prepared, c.DISTANCE_SPACE, c.bootstrap_samples, c.seed)
    figures = figures_of(study, arrays, c.DISTANCE_SPACE)
    run_info = {"resumed_after_epoch": run.resumed_from,
                "train_seconds": run.train_seconds.tolist(),
                "measure_seconds": run.measure_seconds.tolist()}
    return runner.finish(out, results, arrays, figures, run_info, headline=[_headline(results)],
                         figure_step=evals[-1])


def _headline(results: Mapping[str, Any]) -> str:
    """The closing line: final accuracies, cosine stiffness, xi and any super-class contrast."""
    final = results["final"]
    cosine = final["stiffness"]["train_train"]["cosine"]
    line = (f"epoch {final['epoch']}: train accuracy {final['train_accuracy']:.3f}, val "
            f"accuracy {final['val_accuracy']:.3f} (full passes); train-train cosine "
            f"within {progress.format_number(cosine['within'])}, between "
            f"{progress.format_number(cosine['between'])}; "
            f"{_xi_text(cosine['xi_crossing'], cosine['xi_linear_fit'])}")
    if "superclass_contrast" in results:
        line += (f"; super-class contrast (train-train cosine) "
                 f"{results['superclass_contrast']['train_train']['cosine']:+.4f}")
    return line


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
        entry["stiffness"] = {pair: {kind: result_dicts.pair_stats(m, e, pair, kind)
                                     for kind in KINDS} for pair in PAIRS}
        entry["alignment"] = {pair: result_dicts.alignment_stats(m, e, pair) for pair in PAIRS}
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
        "critical_length": result_dicts.CRITICAL_LENGTH_NOTE,
        "bootstrap": result_dicts.bootstrap_note(bootstrap_samples, seed),
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
    from tfstiffness.outputs import plots, study_figures

    m = arrays
    f2c = m.get("fine_to_coarse")
    eval_epochs = np.asarray(m["eval_epochs"])
    last = len(eval_epochs) - 1
    epoch = int(eval_epochs[last])
    name = str(m["dataset_name"]) if "dataset_name" in m else ""
    class_names = m["class_names"].tolist() if "class_names" in m else None
    coarse_names = m["coarse_names"].tolist() if "coarse_names" in m else None
    figures: dict[str, Any] = {"curves": study_figures.curves_figure(
        eval_epochs, m, m.get("epoch_loss"), title=f"{study}: {name}", band_note=band_note)}
    C = m["train_train/cosine/class_matrix"][last]
    figures["class_matrix"] = plots.class_matrix(
        C, fine_to_coarse=f2c, class_names=class_names, coarse_names=coarse_names,
        title=f"Class stiffness, train-train cosine, epoch {epoch}", vmax=None)
    if curve_entries is None:
        curve_entries = [(*result_dicts.curve_at(m, e), f"epoch {int(eval_epochs[e])}")
                         for e in sorted({0, last}) if result_dicts.curve_at(m, e) is not None]
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
        found = result_dicts.curve_at(one, last)
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


# The entry point, from the config (defined last: it names the seed hooks above).
run_class_stiffness = seeds_lib.study_function(
    ClassStiffnessConfig, class_study, name="run_class_stiffness",
    description="""Class stiffness through training (the paper's MNIST/Fashion-MNIST/CIFAR
    studies), see the module docstring; the parameters and their defaults are those of
    `ClassStiffnessConfig`.""",
    figures=seed_figures, tensorboard=seed_tensorboard, headline=seed_headline)
