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

__all__ = ["STAGES", "neighbourhoods_figure", "radius_key", "run_neighbourhoods"]

STAGES = ("init", "trained")
_STAGE_TITLES = {"init": "at initialisation", "trained": "after training"}
WEIGHTINGS = ("uniform", "gaussian")


def radius_key(radius: float) -> str:
    """The summary key of a radius: ``radius_key(0.1) == "0.1"``."""
    return f"{float(radius):g}"


def _measure(model, x, y, radii, weighting, method, loss) -> dict[str, np.ndarray]:
    from tfstiffness.engine import gram as gram_lib
    from tfstiffness import measures
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


def run_neighbourhoods(
    output_dir: str,
    grid_n: int = 50,
    widths: Sequence[int] = (64, 64),
    learning_rate: float = 0.1,
    epochs: int = 60,
    radii: Sequence[float] = (0.05, 0.10, 0.15),
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    method: str = "auto",
    weighting: str = "uniform",
    batch_size: int = 32,
    within: float = 0.1,
    verbose: bool = True,
    tensorboard_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Walker's neighbourhood-stiffness study on the two-arcs grid (see the module docstring).

    Mini-batches of 32 rather than full batches: measured on 2 CPU cores, 60 epochs of batch
    32 reach 96.5 % accuracy in about 20 s, while 300 full-batch epochs (16 s) reach only
    89 %.

    Writes into `output_dir`: ``summary.json`` (config, versions, results: per stage the
    accuracy, loss, class stiffness and per radius the AUC, mean value and the number of
    points without a neighbour), ``results.npz`` (``x``, ``y``, ``boundary_distance``,
    ``radii``, ``init_values`` and ``trained_values`` [R, N], ``init_counts``,
    ``trained_counts``, ``train_loss``), ``figures/neighbourhoods.png`` and TensorBoard.

    Args:
        output_dir: Output directory (an `run_directory.OutputDir`).
        grid_n: Grid points per side of [-1, 1]^2.
        widths: Hidden widths of the MLP.
        learning_rate: SGD learning rate.
        epochs: Training epochs.
        radii: Neighbourhood radii (input units; the grid step is ``2 / (grid_n - 1)``).
        seed: Seed of the initial weights and of the batch order.
        seeds: Repeat the study for each of these seeds (`studies.seeds`): the summary
            gives each AUC as the mean over seeds with its interval, and the figure maps
            each point's mean over seeds.
        method: `gradient_gram` method.
        weighting: "uniform" or "gaussian" neighbour weights.
        batch_size: SGD mini-batch size.
        within: Distance to the true boundary that makes a point positive for the AUC.
        verbose: Print progress lines.
        tensorboard_dir: Where the TensorBoard runs go (default ``output_dir/tensorboard``).

    Returns:
        The summary (what ``summary.json`` holds).
    """
    import keras

    from tfstiffness import models
    from tfstiffness.measures import neighbourhood
    from tfstiffness.data import synthetic

    runner.check_arguments(grid_n=grid_n, learning_rate=learning_rate, epochs=epochs,
                           seed=seed, method=method, batch_size=batch_size)
    if seeds is not None:
        kwargs = {"grid_n": grid_n, "widths": list(widths), "learning_rate": learning_rate,
                  "epochs": epochs, "radii": list(radii), "method": method,
                  "weighting": weighting, "batch_size": batch_size, "within": within}
        return seeds_lib.run_seeds(run_neighbourhoods, output_dir, seeds,
                                   study="neighbourhoods", kwargs=kwargs,
                                   figures=_seed_figures, headline=_seed_headline,
                                   verbose=verbose)
    radii = [float(r) for r in radii]
    widths = [int(w) for w in widths]
    if not radii or not all(np.isfinite(r) and r > 0 for r in radii):
        raise runner.StudyInputError(f"radii: expected positive numbers, got {radii}")
    if not widths or min(widths) < 1:
        raise runner.StudyInputError(f"widths: expected positive integers, got {widths}")
    if weighting not in WEIGHTINGS:
        raise runner.StudyInputError(f"weighting: expected one of {WEIGHTINGS}, got "
                                     f"{weighting!r}")
    if not (np.isfinite(within) and within >= 0):
        raise runner.StudyInputError(f"within: expected a number >= 0, got {within!r}")
    config = {"study": "neighbourhoods", "grid_n": grid_n, "widths": widths,
              "learning_rate": learning_rate, "epochs": epochs, "radii": radii, "seed": seed,
              "method": method, "weighting": weighting, "batch_size": batch_size,
              "within": within}
    run_directory.check_output_dir(output_dir)
    out = run_directory.OutputDir(output_dir, config, name="neighbourhoods", verbose=verbose,
                               tensorboard_dir=tensorboard_dir)
    x, y = synthetic.two_arcs_grid(grid_n)
    distance = synthetic.arcs_boundary_distance(x)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    skipped = [stage for stage in STAGES if out.done(stage)]
    out.progress(f"{len(x)} grid points, {int((distance <= within).sum())} within {within} of "
                 f"the boundary; MLP 2-{'-'.join(map(str, widths))}-2, SGD {learning_rate:g}, "
                 f"batch {batch_size}, {epochs} epochs"
                 + (f"; resuming, skipping finished stages {skipped}" if skipped else ""))
    eta = runner.EtaModel({"": (epochs, [0, epochs])})

    def new_model():
        return models.toy_mlp(2, 2, widths=widths, activation="relu")

    def stage_events(step, arrays):
        scalars = {f"auc_r{radius_key(r)}": neighbourhood.boundary_auc(v, distance, within)
                   for r, v in zip(radii, arrays["values"])}
        scalars.update(accuracy=arrays["accuracy"], loss=arrays["loss"],
                       within_class=arrays["within"], between_class=arrays["between"])
        from tfstiffness.outputs import tensorboard as summary

        with out.step_events("stiffness", step) as writer:
            summary.write_scalars(writer, scalars, step, prefix="neighbourhoods")

    if not out.done("init"):
        start = time.monotonic()
        keras.utils.set_random_seed(seed)
        model = new_model()
        arrays = _measure(model, x, y, radii, weighting, method, loss)
        arrays.update(runner.weights_arrays(model),
                      seconds=np.float64(time.monotonic() - start))
        stage_events(0, arrays)
        out.save_stage("init", arrays)
        eta.record("", 0, 0.0, float(arrays["seconds"]))
    init = out.load_stage("init")
    out.progress(f"init: measured (accuracy {float(init['accuracy']):.3f})",
                 remaining=eta.remaining())

    if not out.done("trained"):
        start = time.monotonic()
        model = new_model()
        runner.set_weights(model, init)  # Train from the checkpointed start, whoever made it.

        def on_epoch(epoch, batch_loss, seconds):
            eta.record("", epoch, seconds, 0.0)
            if epoch % max(1, epochs // 5) == 0 or epoch == epochs:
                out.progress(f"trained: epoch {epoch}/{epochs}, mean batch loss "
                             f"{batch_loss:.4f}", remaining=eta.remaining())

        train_loss = runner.fit_sgd(model, x, y, epochs=epochs, learning_rate=learning_rate,
                                    batch_size=batch_size, seed=seed, loss=loss,
                                    on_epoch=on_epoch)
        measure_start = time.monotonic()
        arrays = _measure(model, x, y, radii, weighting, method, loss)
        arrays.update(runner.weights_arrays(model), train_loss=train_loss,
                      seconds=np.float64(time.monotonic() - start))
        runner.write_epoch_losses(out, "train", train_loss)
        stage_events(epochs, arrays)
        out.save_stage("trained", arrays)
        eta.record("", epochs, 0.0, time.monotonic() - measure_start)
    trained = out.load_stage("trained")
    out.progress(f"trained: measured (accuracy {float(trained['accuracy']):.3f})")

    stages = {"init": init, "trained": trained}
    results: dict[str, Any] = {
        "num_points": len(x),
        "boundary_points": int((distance <= within).sum()),
        "gram_method": str(trained["gram_method"]),
        "stages": {},
    }
    for stage, arrays in stages.items():
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
        results["stages"][stage] = {
            "accuracy": float(arrays["accuracy"]),
            "loss": float(arrays["loss"]),
            "within_class": float(arrays["within"]),
            "between_class": float(arrays["between"]),
            "zero_gradients": int(arrays["zero_gradients"]),
            "radii": per_radius,
        }
    results["final_train_loss"] = float(trained["train_loss"][-1])
    arrays = {"x": x, "y": y, "boundary_distance": distance, "radii": np.asarray(radii),
              "init_values": init["values"], "trained_values": trained["values"],
              "init_counts": init["counts"], "trained_counts": trained["counts"],
              "train_loss": trained["train_loss"]}
    fig = neighbourhoods_figure(x, y, {s: a["values"] for s, a in stages.items()}, radii,
                                {s: results["stages"][s] for s in stages})
    headline = [f"{stage}: boundary AUC " + ", ".join(
        f"r={k}: {runner.format_number(v['auc'])}"
        for k, v in results["stages"][stage]["radii"].items()) for stage in STAGES]
    run_info = {"skipped_stages": skipped,
                "stage_seconds": {s: float(a["seconds"]) for s, a in stages.items()}}
    return runner.finish(out, results, arrays, {"neighbourhoods": fig}, run_info,
                         headline=headline, figure_step=epochs)


def _seed_figures(study: str, stacked: Mapping[str, np.ndarray],
                  config: Mapping[str, Any]) -> dict[str, Any]:
    """The maps of each point's mean over seeds (`seeds.run_seeds`)."""
    averaged = seeds_lib.mean_with_interval(stacked)
    fig = neighbourhoods_figure(
        averaged["x"], averaged["y"], {stage: averaged[f"{stage}_values"] for stage in STAGES},
        averaged["radii"].tolist())
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
                parts.append(f"r={key}: {runner.format_number(auc.get('mean'))}")
            else:
                parts.append(f"r={key}: {runner.format_number(auc)}")
        lines.append(f"{stage}: boundary AUC, mean over seeds {results['seeds']} (95% "
                     "t-interval): " + ", ".join(parts))
    return lines


def neighbourhoods_figure(
    x: np.ndarray,
    y: np.ndarray,
    values: Mapping[str, np.ndarray],
    radii: Sequence[float],
    stage_results: Mapping[str, Mapping[str, Any]] | None = None,
):
    """Grid of neighbourhood-stiffness maps: one row per stage, one column per radius.

    Each panel shows the grid points' values as cells on one shared colour scale [-1, 1]
    (blue: gradients of neighbours disagree; grey: no neighbour) and the true class boundary
    of the two-arcs problem as a black line.

    Args:
        x: [N, 2] points of a full grid (as `synthetic.two_arcs_grid` makes them).
        y: [N] labels (unused for drawing the boundary, which is exact; kept for checks).
        values: Stage name -> [R, N] neighbourhood stiffness per radius.
        radii: The R radii.
        stage_results: Optional stage name -> summary (accuracy and per radius "auc") for
            the titles.

    Returns:
        A matplotlib figure (Agg canvas).

    Example:
        >>> from tfstiffness import synthetic
        >>> x, y = synthetic.two_arcs_grid(10)
        >>> fig = neighbourhoods_figure(x, y, {"init": np.zeros((1, 100))}, [0.3])
        >>> len(fig.axes)  # One map and the colour bar.
        2
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from tfstiffness.outputs import plots
    from tfstiffness.data import synthetic

    x = np.asarray(x, dtype=np.float64)
    n = round(np.sqrt(len(x)))
    if n * n != len(x) or len(y) != len(x):
        raise ValueError("x must be a full square grid with one label per point")
    edges_x = _cell_edges(np.unique(x[:, 0]))
    edges_y = _cell_edges(np.unique(x[:, 1]))
    # The exact boundary: the 0.5 level of the labelling rule on a fine grid.
    fine = np.linspace(-1.0, 1.0, 401)
    fx, fy = np.meshgrid(fine, fine)
    fine_labels = synthetic.two_arcs_labels(np.stack([fx.ravel(), fy.ravel()], 1))

    stages = list(values)
    fig = Figure(figsize=(3.3 * len(radii) + 1.0, 3.3 * len(stages) + 0.7), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(stages), len(radii), squeeze=False, sharex=True, sharey=True)
    cmap, norm = plots.diverging_cmap(), plots.symmetric_norm([], vmax=1.0)
    mesh = None
    for row, stage in enumerate(stages):
        for col, radius in enumerate(radii):
            ax = axes[row, col]
            Z = np.asarray(values[stage][col], dtype=np.float64).reshape(n, n)
            ax.set_facecolor(plots.NAN_COLOUR)
            mesh = ax.pcolormesh(edges_x, edges_y, np.ma.masked_invalid(Z), cmap=cmap,
                                 norm=norm, shading="flat")
            ax.contour(fx, fy, fine_labels.reshape(fx.shape), levels=[0.5], colors="black",
                       linewidths=1.3)
            title = f"r = {radius:g}"
            if stage_results is not None:
                auc = stage_results[stage]["radii"][radius_key(radius)]["auc"]
                title += f"   boundary AUC {auc:.3f}" if auc is not None else "   AUC n/a"
            ax.set_title(title, fontsize=10)
            ax.set_aspect("equal")
            if col == 0:
                label = _STAGE_TITLES.get(stage, stage)
                if stage_results is not None:
                    label += f"\n(accuracy {100 * stage_results[stage]['accuracy']:.1f} %)"
                ax.set_ylabel(f"{label}\n$x_2$")
            if row == len(stages) - 1:
                ax.set_xlabel("$x_1$")
    fig.colorbar(mesh, ax=axes, shrink=0.8, label="mean cosine stiffness to neighbours")
    fig.legend(handles=[Line2D([], [], color="black", linewidth=1.3, label="true boundary")],
               loc="outside lower center", frameon=False, fontsize=9)
    fig.suptitle("Neighbourhood stiffness, two-arcs grid")
    return fig


def _cell_edges(centres: np.ndarray) -> np.ndarray:
    mid = (centres[1:] + centres[:-1]) / 2
    return np.r_[2 * centres[0] - mid[0], mid, 2 * centres[-1] - mid[-1]]
