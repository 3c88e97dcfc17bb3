"""Walker's neighbourhood-stiffness study (2023) on the two-arcs grid.

An MLP 2-``widths``-2 (ReLU, logits) is measured at initialisation and after training with SGD
(shuffled mini-batches) on all ``grid_n**2`` points of the two-arcs grid: the cosine
stiffness matrix over all points, each point's neighbourhood stiffness
(`neighbourhood.neighbourhood_stiffness`) for every radius, and the `neighbourhood.boundary_auc`
of each map: how well low neighbourhood stiffness singles out the points within `within` of
the true class boundary.

Two checkpointed stages, "init" (holding the initial weights) and "trained": a restart with
the same arguments skips finished stages and ends with the same results. TensorBoard: run
``stiffness`` (step 0: init, step `epochs`: trained), ``train`` (the mean batch loss of each
epoch) and ``figures``.

Example:
    >>> import tempfile
    >>> s = run_neighbourhoods(tempfile.mkdtemp(), grid_n=8, epochs=1, radii=(0.3,),
    ...                        verbose=False)
    >>> sorted(s["results"]["stages"]["trained"]["radii"]["0.3"])
    ['auc', 'ignored', 'mean', 'negatives', 'no_neighbour', 'positives']
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
from tfstiffness.data import synthetic
from tfstiffness.errors import StudyInputError
from tfstiffness.outputs import run_directory
from tfstiffness.studies import config as config_lib
from tfstiffness.studies import progress, runner
from tfstiffness.studies import seeds as seeds_lib
from tfstiffness.studies.config import parameter

__all__ = ["STAGES", "WEIGHTINGS", "NeighbourhoodsConfig", "radius_key", "run_neighbourhoods"]

STAGES = ("init", "trained")
WEIGHTINGS = ("uniform", "gaussian")


def radius_key(radius: float) -> str:
    """The summary key of a radius: ``radius_key(0.1) == "0.1"``."""
    return f"{float(radius):g}"


def _measure(model, x, y, radii, weighting, method, loss) -> dict[str, np.ndarray]:
    from tfstiffness import measures
    from tfstiffness.engine import gram as gram_lib
    from tfstiffness.measures import neighbourhood

    gram = gram_lib.gradient_gram(model, x, y, loss=loss, method=method)
    zero = measures.count_zero_gradients(gram)
    with warnings.catch_warnings():
        # Zero gradients and points without neighbours are counted and reported instead.
        warnings.simplefilter("ignore", UserWarning)
        S = measures.stiffness_matrix(gram, kind="cosine")
        within, between = measures.within_between(measures.class_stiffness(S, y, num_classes=2))
        results = [neighbourhood.neighbourhood_stiffness(S, x, radius=r, weighting=weighting)
                   for r in radii]
    loss_value, accuracy = training.evaluate(model, x, y)
    return {
        "values": np.stack([r.values for r in results]),
        "counts": np.stack([r.counts for r in results]),
        "loss": np.float64(loss_value),
        "accuracy": np.float64(accuracy),
        "within": np.float64(within),
        "between": np.float64(between),
        "zero_gradients": np.int64(zero),
        "gram_method": np.array(gram.method),
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class NeighbourhoodsConfig(config_lib.StudyConfig):
    """The neighbourhood study's parameters.

    Mini-batches of 32 rather than full batches: measured on 2 CPU cores, 60 epochs of batch
    32 reach 96.5 % accuracy in about 20 s, while 300 full-batch epochs (16 s) reach only
    89 %.

    Attributes:
        grid_n: Grid points per side of [-1, 1]^2.
        widths: Hidden widths of the MLP.
        learning_rate: SGD learning rate.
        epochs: Training epochs.
        radii: Neighbourhood radii (input units; the grid step is ``2 / (grid_n - 1)``).
        seed: Seed of the initial weights and of the batch order.
        seeds: Repeat the study for each of these seeds (`studies.seeds`): the summary gives
            each AUC as the mean over seeds with its interval, and the figure maps each
            point's mean over seeds.
        weighting: "uniform" or "gaussian" neighbour weights.
        batch_size: SGD mini-batch size.
        within: Distance to the true boundary that makes a point positive for the AUC.
    """

    STUDY = "neighbourhoods"

    grid_n: int = parameter(50, "Grid points per side.", flag="integer", lower_bound=2)
    widths: Sequence[int] = parameter((64, 64), "Hidden widths of the MLP.", flag="int_list",
                                      separator=None)
    learning_rate: float = parameter(0.1, "SGD's constant learning rate.",
                                     flag="positive_float")
    epochs: int = parameter(60, "Training epochs.", flag="integer", lower_bound=1)
    radii: Sequence[float] = parameter(
        (0.05, 0.10, 0.15), "Neighbourhood radii, in input units (the grid step is "
        "2 / (grid_n - 1)).", flag="float_list")
    seed: int = parameter(0, "Seed of the initial weights and batch order.", flag="integer",
                          lower_bound=0)
    seeds: Sequence[int] | None = parameter(None, config_lib.SEEDS_HELP, flag="seeds")
    weighting: str = parameter("uniform", "Neighbour weights: uniform, or gaussian in the "
                               "distance.", flag="enum", choices=WEIGHTINGS)
    batch_size: int = parameter(32, "Mini-batch size of the SGD steps.", flag="integer",
                                lower_bound=1)
    within: float = parameter(0.1, "Distance to the true boundary that counts as 'on the "
                              "boundary' for the AUC.", flag="float", lower_bound=0)

    def check(self) -> None:
        super().check()
        radii, widths = self.radius_list(), [int(w) for w in self.widths]
        if not radii or not all(np.isfinite(r) and r > 0 for r in radii):
            raise StudyInputError(f"radii: expected positive numbers, got {radii}")
        if not widths or min(widths) < 1:
            raise StudyInputError(f"widths: expected positive integers, got {widths}")
        if self.weighting not in WEIGHTINGS:
            raise StudyInputError(f"weighting: expected one of {WEIGHTINGS}, got "
                                  f"{self.weighting!r}")
        if not (np.isfinite(self.within) and self.within >= 0):
            raise StudyInputError(f"within: expected a number >= 0, got {self.within!r}")

    def radius_list(self) -> list[float]:
        """The radii as floats."""
        return [float(r) for r in self.radii]

    def record(self) -> dict[str, Any]:
        return {**super().record(), "widths": [int(w) for w in self.widths],
                "radii": self.radius_list()}


@dataclasses.dataclass(frozen=True)
class _Grid:
    """The two-arcs grid: points, labels and each point's distance to the true boundary."""

    x: np.ndarray
    y: np.ndarray
    distance: np.ndarray

    @classmethod
    def of(cls, grid_n: int) -> _Grid:
        x, y = synthetic.two_arcs_grid(grid_n)
        return cls(x, y, synthetic.arcs_boundary_distance(x))


def _run_once(output_dir: str, config: NeighbourhoodsConfig, *, verbose: bool,
              tensorboard_dir: str | os.PathLike | None) -> dict[str, Any]:
    """The study of one seed: the two stages, then the files."""
    run_directory.check_output_dir(output_dir)
    out = run_directory.OutputDir(output_dir, config.record(), name=config.STUDY,
                                  verbose=verbose, tensorboard_dir=tensorboard_dir)
    grid = _Grid.of(config.grid_n)
    skipped = [stage for stage in STAGES if out.done(stage)]
    c = config
    out.progress(f"{len(grid.x)} grid points, {int((grid.distance <= c.within).sum())} within "
                 f"{c.within} of the boundary; MLP 2-{'-'.join(str(int(w)) for w in c.widths)}-2, SGD "
                 f"{c.learning_rate:g}, batch {c.batch_size}, {c.epochs} epochs"
                 + (f"; resuming, skipping finished stages {skipped}" if skipped else ""))
    eta = progress.EtaModel({"": (c.epochs, [0, c.epochs])})
    init = _init_stage(out, config, grid, eta)
    out.progress(f"init: measured (accuracy {float(init['accuracy']):.3f})",
                 remaining=eta.remaining())
    trained = _trained_stage(out, config, grid, init, eta)
    out.progress(f"trained: measured (accuracy {float(trained['accuracy']):.3f})")
    return _finish(out, config, grid, {"init": init, "trained": trained}, skipped)


def _new_model(config: NeighbourhoodsConfig):
    from tfstiffness import models

    return models.toy_mlp(2, 2, widths=[int(w) for w in config.widths], activation="relu")


def _loss():
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _stage_events(out: run_directory.OutputDir, config: NeighbourhoodsConfig, grid: _Grid,
                  step: int, arrays: Mapping[str, np.ndarray]) -> None:
    """TensorBoard run ``stiffness`` at `step`: each radius' boundary AUC and the stage's
    accuracy, loss and class stiffness."""
    from tfstiffness.measures import neighbourhood
    from tfstiffness.outputs import tensorboard as summary

    scalars = {f"auc_r{radius_key(r)}": neighbourhood.boundary_auc(v, grid.distance,
                                                                    config.within)
               for r, v in zip(config.radius_list(), arrays["values"])}
    scalars.update(accuracy=arrays["accuracy"], loss=arrays["loss"],
                   within_class=arrays["within"], between_class=arrays["between"])
    with out.step_events("stiffness", step) as writer:
        summary.write_scalars(writer, scalars, step, prefix="neighbourhoods")


def _init_stage(out: run_directory.OutputDir, config: NeighbourhoodsConfig, grid: _Grid,
                eta: progress.EtaModel) -> dict[str, np.ndarray]:
    """Stage "init": the initial weights, measured (loaded when already done)."""
    import keras

    if not out.done("init"):
        start = time.monotonic()
        keras.utils.set_random_seed(config.seed)
        model = _new_model(config)
        arrays = _measure(model, grid.x, grid.y, config.radius_list(), config.weighting,
                          config.method, _loss())
        arrays.update(training.weights_arrays(model),
                      seconds=np.float64(time.monotonic() - start))
        _stage_events(out, config, grid, 0, arrays)
        out.save_stage("init", arrays)
        eta.record("", 0, 0.0, float(arrays["seconds"]))
    return out.load_stage("init")


def _trained_stage(out: run_directory.OutputDir, config: NeighbourhoodsConfig, grid: _Grid,
                   init: Mapping[str, np.ndarray],
                   eta: progress.EtaModel) -> dict[str, np.ndarray]:
    """Stage "trained": SGD from the checkpointed initial weights, measured (loaded when
    already done)."""
    if not out.done("trained"):
        start, epochs = time.monotonic(), config.epochs
        model = _new_model(config)
        training.set_weights(model, init)  # Train from the checkpointed start, whoever made it.

        def on_epoch(epoch, batch_loss, seconds):
            eta.record("", epoch, seconds, 0.0)
            if epoch % max(1, epochs // 5) == 0 or epoch == epochs:
                out.progress(f"trained: epoch {epoch}/{epochs}, mean batch loss "
                             f"{batch_loss:.4f}", remaining=eta.remaining())

        loss = _loss()
        train_loss = training.fit_sgd(model, grid.x, grid.y, epochs=epochs,
                                      learning_rate=config.learning_rate,
                                      batch_size=config.batch_size, seed=config.seed,
                                      loss=loss, on_epoch=on_epoch)
        measure_start = time.monotonic()
        arrays = _measure(model, grid.x, grid.y, config.radius_list(), config.weighting,
                          config.method, loss)
        arrays.update(training.weights_arrays(model), train_loss=train_loss,
                      seconds=np.float64(time.monotonic() - start))
        runner.write_epoch_losses(out, "train", train_loss)
        _stage_events(out, config, grid, epochs, arrays)
        out.save_stage("trained", arrays)
        eta.record("", epochs, 0.0, time.monotonic() - measure_start)
    return out.load_stage("trained")


def _stage_results(arrays: Mapping[str, np.ndarray], radii: Sequence[float],
                   distance: np.ndarray, within: float) -> dict[str, Any]:
    """summary.json's entry of one stage."""
    from tfstiffness.measures import neighbourhood

    per_radius = {}
    for i, radius in enumerate(radii):
        details = neighbourhood.boundary_auc_details(arrays["values"][i], distance, within)
        finite = arrays["values"][i][~np.isnan(arrays["values"][i])]
        per_radius[radius_key(radius)] = {
            "auc": details.auc,
            "mean": float(finite.mean()) if finite.size else float("nan"),
            "no_neighbour": int((arrays["counts"][i] == 0).sum()),
            "positives": details.positives,
            "negatives": details.negatives,
            "ignored": details.ignored,
        }
    return {
        "accuracy": float(arrays["accuracy"]),
        "loss": float(arrays["loss"]),
        "within_class": float(arrays["within"]),
        "between_class": float(arrays["between"]),
        "zero_gradients": int(arrays["zero_gradients"]),
        "radii": per_radius,
    }


def _finish(out: run_directory.OutputDir, config: NeighbourhoodsConfig, grid: _Grid,
            stages: Mapping[str, Mapping[str, np.ndarray]],
            skipped: Sequence[str]) -> dict[str, Any]:
    """results.npz, the figure and summary.json of both stages."""
    from tfstiffness.outputs import study_figures

    radii, init, trained = config.radius_list(), stages["init"], stages["trained"]
    results: dict[str, Any] = {
        "num_points": len(grid.x),
        "boundary_points": int((grid.distance <= config.within).sum()),
        "gram_method": str(trained["gram_method"]),
        "stages": {stage: _stage_results(arrays, radii, grid.distance, config.within)
                   for stage, arrays in stages.items()},
    }
    results["final_train_loss"] = float(trained["train_loss"][-1])
    arrays = {"x": grid.x, "y": grid.y, "boundary_distance": grid.distance,
              "radii": np.asarray(radii), "init_values": init["values"],
              "trained_values": trained["values"], "init_counts": init["counts"],
              "trained_counts": trained["counts"], "train_loss": trained["train_loss"]}
    per_stage = results["stages"]
    fig = study_figures.neighbourhoods_figure(
        grid.x, grid.y, {s: a["values"] for s, a in stages.items()}, radii,
        aucs={s: [per_stage[s]["radii"][radius_key(r)]["auc"] for r in radii] for s in stages},
        accuracies={s: per_stage[s]["accuracy"] for s in stages},
        label_rule=synthetic.two_arcs_labels)
    headline = [f"{stage}: boundary AUC " + ", ".join(
        f"r={k}: {progress.format_number(v['auc'])}"
        for k, v in per_stage[stage]["radii"].items()) for stage in STAGES]
    run_info = {"skipped_stages": list(skipped),
                "stage_seconds": {s: float(a["seconds"]) for s, a in stages.items()}}
    return runner.finish(out, results, arrays, {"neighbourhoods": fig}, run_info,
                         headline=headline, figure_step=config.epochs)


def _seed_figures(study: str, stacked: Mapping[str, np.ndarray],
                  config: Mapping[str, Any]) -> dict[str, Any]:
    """The maps of each point's mean over seeds (`seeds.run_seeds`)."""
    averaged = seeds_lib.mean_with_interval(stacked)
    from tfstiffness.outputs import study_figures

    fig = study_figures.neighbourhoods_figure(
        averaged["x"], averaged["y"], {stage: averaged[f"{stage}_values"] for stage in STAGES},
        averaged["radii"].tolist(), label_rule=synthetic.two_arcs_labels)
    fig.suptitle(f"Neighbourhood stiffness, mean over {len(stacked['seeds'])} seeds "
                 "(grey: no neighbour, or undefined in some seed)")
    return {"neighbourhoods": fig}


def _seed_headline(results: Mapping[str, Any]) -> list[str]:
    lines = []
    for stage in STAGES:
        parts = []
        for key, value in results["across_seeds"]["stages"][stage]["radii"].items():
            auc = value["auc"]
            if isinstance(auc, Mapping) and auc.get("low") is not None:
                parts.append(f"r={key}: {auc['mean']:.3f} [{auc['low']:.3f}, {auc['high']:.3f}]")
            elif isinstance(auc, Mapping):
                parts.append(f"r={key}: {progress.format_number(auc.get('mean'))}")
            else:
                parts.append(f"r={key}: {progress.format_number(auc)}")
        lines.append(f"{stage}: boundary AUC, mean over seeds {results['seeds']} (95% "
                     "t-interval): " + ", ".join(parts))
    return lines


# The entry point, from the config.
run_neighbourhoods = seeds_lib.study_function(
    NeighbourhoodsConfig, _run_once, name="run_neighbourhoods",
    description="""Walker's neighbourhood-stiffness study on the two-arcs grid (see the module
    docstring), with the parameters of `NeighbourhoodsConfig`.

    Writes into `output_dir`: ``summary.json`` (config, versions, results: per stage the
    accuracy, loss, class stiffness and per radius the AUC, mean value and the number of
    points without a neighbour), ``results.npz`` (``x``, ``y``, ``boundary_distance``,
    ``radii``, ``init_values`` and ``trained_values`` [R, N], ``init_counts``,
    ``trained_counts``, ``train_loss``), ``figures/neighbourhoods.png`` and TensorBoard.""",
    figures=_seed_figures, headline=_seed_headline)
