"""Walker's extensions (2023): neighbourhood stiffness and layer-wise stiffness studies.

- `boundary_auc`: how well low neighbourhood stiffness finds the true class boundary.
- `run_neighbourhoods`: the two-arcs study: neighbourhood stiffness maps of an MLP 2-64-64-2 at
  initialisation and after training, with an AUC per radius.
- `run_layerwise`: stiffness through the layers of MLPs of several widths and activations,
  untrained vs trained.

The studies write into an `experiment.OutputDir` (config guard, stage checkpoints, summary,
results, figures, TensorBoard) and can be killed and restarted with the same arguments.

Example:
    >>> import numpy as np
    >>> boundary_auc(np.array([0.9, 0.8, -0.2, 0.1]), np.array([0.5, 0.4, 0.01, 0.05]))
    1.0
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfstiffness import experiment

__all__ = [
    "BoundaryAUC",
    "boundary_auc",
    "boundary_auc_details",
    "layerwise_figure",
    "model_key",
    "neighbourhoods_figure",
    "radius_key",
    "run_layerwise",
    "run_neighbourhoods",
]

STAGES = ("init", "trained")
_STAGE_TITLES = {"init": "at initialisation", "trained": "after training"}


# --------------------------------------------------------------------------------------------
# Boundary AUC
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BoundaryAUC:
    """ROC AUC of ``1 - neighbourhood stiffness`` as a detector of boundary points.

    Attributes:
        auc: Probability that a random boundary point scores higher than a random other point,
            ties counted half; NaN when either group is empty.
        positives: Points within the distance of the boundary (with a finite value).
        negatives: The other points with a finite value.
        ignored: Points left out because their value is NaN (no neighbour).
    """

    auc: float
    positives: int
    negatives: int
    ignored: int


def _midranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks of `scores`, tied values sharing the mean of their ranks."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # Start index of each run of equal values, and the run each sorted position belongs to.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    mean_rank = (starts + 1 + ends) / 2.0  # Mean of the ranks starts+1 .. ends.
    ranks = np.empty(scores.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def boundary_auc_details(
    neighbourhood_values: Any, boundary_distance: Any, within: float = 0.1
) -> BoundaryAUC:
    """`boundary_auc` with the counts behind it; see there.

    Example:
        >>> d = boundary_auc_details([0.1, np.nan, 0.9], [0.0, 0.0, 1.0])
        >>> d.auc, d.positives, d.negatives, d.ignored
        (1.0, 1, 1, 1)
    """
    values = np.asarray(neighbourhood_values, dtype=np.float64).reshape(-1)
    distance = np.asarray(boundary_distance, dtype=np.float64).reshape(-1)
    if values.shape != distance.shape:
        raise ValueError(f"{values.size} neighbourhood values for {distance.size} distances")
    if not within >= 0:
        raise ValueError(f"within must be >= 0, got {within!r}")
    if np.isnan(distance).any():
        raise ValueError("boundary_distance has NaN entries")
    finite = ~np.isnan(values)
    scores = 1.0 - values[finite]
    positive = distance[finite] <= within
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        auc = float("nan")
    else:
        # Mann-Whitney U of the positives, from midranks (ties count half), over all pairs.
        rank_sum = _midranks(scores)[positive].sum()
        auc = float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
    return BoundaryAUC(auc=auc, positives=n_pos, negatives=n_neg, ignored=int((~finite).sum()))


def boundary_auc(
    neighbourhood_values: Any, boundary_distance: Any, within: float = 0.1
) -> float:
    """ROC AUC with which low neighbourhood stiffness singles out points near the boundary.

    Positives are the points at distance <= `within` from the true class boundary, negatives
    the rest; the score is ``1 - neighbourhood stiffness``. The AUC is the Mann-Whitney
    statistic: the fraction of (positive, negative) pairs in which the positive scores higher,
    ties counting half. 1 means the least stiff points are exactly the boundary points, 0.5 no
    better than chance. Points whose value is NaN (no neighbour) are ignored; with no
    positive or no negative left, the AUC is NaN. `boundary_auc_details` also returns how
    many points of each kind there were.

    Args:
        neighbourhood_values: [N] neighbourhood stiffness (NaN allowed).
        boundary_distance: [N] distance of each point to the true boundary.
        within: Distance that makes a point a boundary point (inclusive).

    Returns:
        The AUC in [0, 1], or NaN.

    Example:
        >>> boundary_auc([0.2, 0.5, 0.5, 0.9], [0.0, 0.05, 0.5, 0.6])  # A tie: 3.5 of 4.
        0.875
    """
    return boundary_auc_details(neighbourhood_values, boundary_distance, within).auc


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


def radius_key(radius: float) -> str:
    """The summary key of a radius: ``radius_key(0.1) == "0.1"``."""
    return f"{float(radius):g}"


def model_key(widths: Sequence[int], activation: str) -> str:
    """The key (and stage name) of a layer-wise model: ``model_key((64, 8), "tanh")``
    is ``"64-8_tanh"``."""
    return "-".join(str(int(w)) for w in widths) + f"_{activation}"


def _loss():
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _evaluate(model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean loss, accuracy) in inference mode."""
    logits = np.asarray(model(x, training=False))
    loss = float(np.mean(np.asarray(_loss()(y, logits))))
    return loss, float(np.mean(np.argmax(logits, axis=1) == y))


def _train(model, x, y, out: experiment.OutputDir, label: str, epochs: int,
           learning_rate: float, batch_size: int, seed: int) -> np.ndarray:
    """Plain SGD with shuffled mini-batches; returns the per-epoch training loss."""
    import keras

    class _Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % max(1, epochs // 5) == 0 or epoch + 1 == epochs:
                logs = logs or {}
                # Keras' epoch metrics average over the epoch's batches while the weights move.
                out.progress(f"{label}: epoch {epoch + 1}/{epochs}, running loss "
                             f"{logs.get('loss', 0):.4f}, accuracy {logs.get('accuracy', 0):.3f}")

    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss=_loss(),
                  metrics=["accuracy"])
    # Seeded here, not only at start-up: a resumed run trains with the same batch order as an
    # uninterrupted one whatever stages it skipped.
    keras.utils.set_random_seed(seed + 1)
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0,
                        callbacks=[_Progress()])
    return np.asarray(history.history["loss"], dtype=np.float64)


def _weights_arrays(model) -> dict[str, np.ndarray]:
    return {f"weight_{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}


def _set_weights(model, arrays: Mapping[str, np.ndarray]) -> None:
    count = len(model.get_weights())
    model.set_weights([arrays[f"weight_{i}"] for i in range(count)])


# --------------------------------------------------------------------------------------------
# Neighbourhood stiffness study
# --------------------------------------------------------------------------------------------


def _measure_neighbourhoods(model, x, y, radii, weighting, method) -> dict[str, np.ndarray]:
    from tfstiffness import gram as gram_lib
    from tfstiffness import measures, neighbourhood

    gram = gram_lib.gradient_gram(model, x, y, loss=_loss(), method=method)
    zero = measures.count_zero_gradients(gram)
    with warnings.catch_warnings():
        # Zero gradients and points without neighbours are counted and reported instead.
        warnings.simplefilter("ignore", UserWarning)
        S = measures.stiffness_matrix(gram, kind="cosine")
        within, between = measures.within_between(measures.class_stiffness(S, y, num_classes=2))
        results = [neighbourhood.neighbourhood_stiffness(S, x, radius=r, weighting=weighting)
                   for r in radii]
    loss, accuracy = _evaluate(model, x, y)
    return {
        "values": np.stack([r.values for r in results]),
        "counts": np.stack([r.counts for r in results]),
        "loss": np.float64(loss),
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
    method: str = "auto",
    weighting: str = "uniform",
    batch_size: int = 32,
    within: float = 0.1,
    verbose: bool = True,
) -> dict[str, Any]:
    """Walker's neighbourhood-stiffness study on the two-arcs grid.

    An MLP 2-``widths``-2 (ReLU, logits) is measured at initialisation and after training with
    SGD (`learning_rate`, shuffled mini-batches of `batch_size`) on all ``grid_n**2`` grid
    points. Mini-batches of 32 rather than full batches: measured on 2 CPU cores, 60 epochs
    of batch 32 reach 96.5 % accuracy in about 20 s, while 300 full-batch epochs (16 s) reach
    only 89 %. At each stage: the
    cosine stiffness matrix over all points, the neighbourhood stiffness of every point for
    every radius, and the `boundary_auc` of each map against the points within `within` of
    the true boundary.

    Two checkpointed stages, "init" (holding the initial weights) and "trained": a restart with
    the same arguments skips finished stages and ends with the same results.

    Writes into `output_dir`: ``summary.json`` (config, versions, results: per stage the
    accuracy, loss, class stiffness and per radius the AUC, mean value and the number of
    points without a neighbour), ``results.npz`` (``x``, ``y``, ``boundary_distance``,
    ``radii``, ``init_values`` and ``trained_values`` [R, N], ``init_counts``,
    ``trained_counts``, ``train_loss``), ``figures/neighbourhoods.png`` and TensorBoard
    scalars (step 0: init, step 1: trained).

    Args:
        output_dir: Output directory (an `experiment.OutputDir`).
        grid_n: Grid points per side of [-1, 1]^2.
        widths: Hidden widths of the MLP.
        learning_rate: SGD learning rate.
        epochs: Training epochs.
        radii: Neighbourhood radii (input units; the grid step is ``2 / (grid_n - 1)``).
        seed: Seed of the initial weights and of the batch order.
        method: `gradient_gram` method.
        weighting: "uniform" or "gaussian" neighbour weights.
        batch_size: SGD mini-batch size.
        within: Distance to the true boundary that makes a point positive for the AUC.
        verbose: Print progress lines.

    Returns:
        The summary (what ``summary.json`` holds).

    Example:
        >>> import tempfile
        >>> s = run_neighbourhoods(tempfile.mkdtemp(), grid_n=8, epochs=1, radii=(0.3,),
        ...                        verbose=False)
        >>> sorted(s["results"]["stages"]["trained"]["radii"]["0.3"])
        ['auc', 'ignored', 'mean', 'negatives', 'no_neighbour', 'positives']
    """
    import keras

    from tfstiffness import models, summary, synthetic

    radii = [float(r) for r in radii]
    config = {"study": "neighbourhoods", "grid_n": grid_n, "widths": list(widths),
              "learning_rate": learning_rate, "epochs": epochs, "radii": radii, "seed": seed,
              "method": method, "weighting": weighting, "batch_size": batch_size,
              "within": within}
    out = experiment.OutputDir(output_dir, config, name="neighbourhoods", verbose=verbose)
    x, y = synthetic.two_arcs_grid(grid_n)
    distance = synthetic.arcs_boundary_distance(x)
    skipped = [stage for stage in STAGES if out.done(stage)]
    out.progress(f"{len(x)} grid points, {int((distance <= within).sum())} within {within} of "
                 f"the boundary; output {out.path}"
                 + (f"; resuming, skipping finished stages {skipped}" if skipped else ""))

    def new_model():
        return models.toy_mlp(2, 2, widths=widths, activation="relu")

    if not out.done("init"):
        start = time.monotonic()
        keras.utils.set_random_seed(seed)
        model = new_model()
        out.progress("init: measuring stiffness of all points", 0, len(STAGES))
        arrays = _measure_neighbourhoods(model, x, y, radii, weighting, method)
        arrays.update(_weights_arrays(model), seconds=np.float64(time.monotonic() - start))
        out.save_stage("init", arrays)
    init = out.load_stage("init")
    out.progress(f"init: done (accuracy {float(init['accuracy']):.3f})", 1, len(STAGES))

    if not out.done("trained"):
        start = time.monotonic()
        model = new_model()
        _set_weights(model, init)  # Train from the checkpointed start, whoever made it.
        train_loss = _train(model, x, y, out, "trained", epochs, learning_rate, batch_size, seed)
        out.progress("trained: measuring stiffness of all points")
        arrays = _measure_neighbourhoods(model, x, y, radii, weighting, method)
        arrays.update(_weights_arrays(model), train_loss=train_loss,
                      seconds=np.float64(time.monotonic() - start))
        out.save_stage("trained", arrays)
    trained = out.load_stage("trained")
    out.progress(f"trained: done (accuracy {float(trained['accuracy']):.3f})", 2, len(STAGES))

    stages = {"init": init, "trained": trained}
    results: dict[str, Any] = {
        "num_points": len(x),
        "boundary_points": int((distance <= within).sum()),
        "gram_method": str(init["gram_method"]),
        "stages": {},
    }
    for stage, arrays in stages.items():
        per_radius = {}
        for i, radius in enumerate(radii):
            details = boundary_auc_details(arrays["values"][i], distance, within)
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

    out.write_results(
        x=x, y=y, boundary_distance=distance, radii=np.asarray(radii),
        init_values=init["values"], trained_values=trained["values"],
        init_counts=init["counts"], trained_counts=trained["counts"],
        train_loss=trained["train_loss"],
    )
    fig = neighbourhoods_figure(x, y, {s: a["values"] for s, a in stages.items()}, radii,
                                {s: results["stages"][s] for s in stages})
    out.save_figure(fig, "neighbourhoods.png")
    for step, stage in enumerate(STAGES):
        res = results["stages"][stage]
        scalars = {f"auc_r{k}": v["auc"] for k, v in res["radii"].items()}
        scalars.update({f"mean_r{k}": v["mean"] for k, v in res["radii"].items()})
        scalars.update(accuracy=res["accuracy"], loss=res["loss"],
                       within_class=res["within_class"], between_class=res["between_class"])
        summary.write_scalars(out.tensorboard, scalars, step=step, prefix="neighbourhoods")
    summary.write_figure(out.tensorboard, fig, "neighbourhoods/maps", step=1)
    out.close()
    run_info = {"elapsed_s": out.elapsed, "skipped_stages": skipped,
                "stage_seconds": {s: float(a["seconds"]) for s, a in stages.items()}}
    out.write_summary(results, run=run_info)
    for stage in STAGES:
        aucs = ", ".join(f"r={k}: {v['auc']:.3f}"
                         for k, v in results["stages"][stage]["radii"].items())
        out.progress(f"{stage}: boundary AUC {aucs}")
    out.progress(f"wrote {out.path / 'summary.json'}")
    return experiment.read_json(out.path / "summary.json")


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

    from tfstiffness import plots, synthetic

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


# --------------------------------------------------------------------------------------------
# Layer-wise stiffness study
# --------------------------------------------------------------------------------------------


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


def _measure_layers(model, x, y, num_classes, method) -> dict[str, np.ndarray]:
    from tfstiffness import gram as gram_lib
    from tfstiffness import layerwise, measures

    gram = gram_lib.gradient_gram(model, x, y, loss=_loss(), by_layer=True, method=method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Zero gradients are counted below.
        layers = layerwise.layerwise_stiffness(gram, y, kind="cosine", num_classes=num_classes)
        S = measures.stiffness_matrix(gram, kind="cosine")
        total = measures.within_between(measures.class_stiffness(S, y, num_classes=num_classes))
    loss, accuracy = _evaluate(model, x, y)
    return {
        "layers": np.array(list(layers)),
        "within": np.array([r.within for r in layers.values()]),
        "between": np.array([r.between for r in layers.values()]),
        "class_matrices": np.stack([r.class_matrix for r in layers.values()]),
        "total_within": np.float64(total[0]),
        "total_between": np.float64(total[1]),
        "zero_gradients": np.array([measures.count_zero_gradients(gram.layer_sq_norms[name])
                                    for name in layers]),
        "probe_loss": np.float64(loss),
        "probe_accuracy": np.float64(accuracy),
    }


def run_layerwise(
    output_dir: str,
    dataset: str = "two_arcs",
    hidden_widths: Sequence[Sequence[int]] = ((64, 8, 4), (8, 64, 8), (64, 8, 64)),
    activations: Sequence[str] = ("relu", "tanh", "leaky_relu"),
    epochs: int = 30,
    learning_rate: float = 0.1,
    probe_per_class: int = 100,
    seed: int = 0,
    data_dir: str | None = None,
    grid_n: int = 50,
    batch_size: int = 32,
    max_train_examples: int | None = None,
    method: str = "auto",
    verbose: bool = True,
) -> dict[str, Any]:
    """Walker's layer-wise stiffness study: stiffness through the layers, untrained vs trained.

    For every hidden-widths x activation MLP (`models.toy_mlp`, logits output): the cosine
    stiffness of the gradients w.r.t. each layer's parameters alone (kernel and bias), on a
    fixed class-balanced probe of `probe_per_class` training examples per class, before and
    after training with SGD (`learning_rate`, mini-batches of `batch_size`) on the whole
    training set; per layer, in layer order, the within- and between-class stiffness.

    `dataset` "two_arcs" is the two-arcs grid of ``grid_n**2`` points; any other name is an
    image set of `tfstiffness.data.load` (e.g. "mnist", "cifar10"), its training split
    standardised as `data.load` does it and flattened; the MLP then has the same hidden widths.
    The probe takes `probe_per_class` examples of each class, or all of a class with fewer.

    One checkpointed stage per model (named by `model_key`): a restart with the same
    arguments skips finished models.

    Writes into `output_dir`: ``summary.json`` (results: per model the layer names and, for
    "untrained" and "trained", within/between per layer, the whole-network values, probe
    accuracy and loss; the last epoch's running training loss, and loss and accuracy on the
    whole training set after training), ``results.npz`` (per model
    ``<key>/<untrained|trained>/<within|between|class_matrices>``, ``<key>/layers``,
    ``probe_indices``), ``figures/layerwise.png`` and TensorBoard scalars.

    Args:
        output_dir: Output directory (an `experiment.OutputDir`).
        dataset: "two_arcs" or a tfds image set name.
        hidden_widths: Hidden widths of each MLP.
        activations: Hidden activations ("relu", "tanh", "leaky_relu", ...).
        epochs: Training epochs per model.
        learning_rate: SGD learning rate.
        probe_per_class: Probe examples per class.
        seed: Seed of the probe, the initial weights and the batch order.
        data_dir: tfds data directory.
        grid_n: Grid size of "two_arcs".
        batch_size: SGD mini-batch size.
        max_train_examples: Keep only the first this many training examples (None: all).
        method: `gradient_gram` method.
        verbose: Print progress lines.

    Returns:
        The summary (what ``summary.json`` holds).

    Example:
        >>> import tempfile
        >>> s = run_layerwise(tempfile.mkdtemp(), hidden_widths=((4, 2),), activations=("tanh",),
        ...                   epochs=1, probe_per_class=5, grid_n=6, verbose=False)
        >>> s["results"]["models"]["4-2_tanh"]["layers"]
        ['dense_0', 'dense_1', 'logits']
    """
    import keras

    from tfstiffness import models, summary, synthetic

    hidden_widths = [[int(w) for w in widths] for widths in hidden_widths]
    config = {"study": "layerwise", "dataset": dataset, "hidden_widths": hidden_widths,
              "activations": list(activations), "epochs": epochs,
              "learning_rate": learning_rate, "probe_per_class": probe_per_class, "seed": seed,
              "data_dir": data_dir, "grid_n": grid_n, "batch_size": batch_size,
              "max_train_examples": max_train_examples, "method": method}
    out = experiment.OutputDir(output_dir, config, name="layerwise", verbose=verbose)
    if dataset == "two_arcs":
        x, y = synthetic.two_arcs_grid(grid_n)
        if max_train_examples is not None:
            x, y = x[:max_train_examples], y[:max_train_examples]
        num_classes = 2
    else:
        x, y, num_classes = _load_image_set(dataset, data_dir, max_train_examples)
    probe = _balanced_indices(y, probe_per_class, seed)
    xp, yp = x[probe], y[probe]
    keys = [model_key(w, a) for w in hidden_widths for a in activations]
    skipped = [k for k in keys if out.done(k)]
    out.progress(f"{dataset}: {len(x)} training examples, {num_classes} classes, probe of "
                 f"{len(probe)}; {len(keys)} models; output {out.path}"
                 + (f"; resuming, skipping finished models {skipped}" if skipped else ""))

    for index, (widths, activation) in enumerate(
        (w, a) for w in hidden_widths for a in activations
    ):
        key = model_key(widths, activation)
        if out.done(key):
            continue
        start = time.monotonic()
        keras.utils.set_random_seed(seed)
        model = models.toy_mlp(x.shape[1], num_classes, widths=widths, activation=activation)
        untrained = _measure_layers(model, xp, yp, num_classes, method)
        train_loss = _train(model, x, y, out, key, epochs, learning_rate, batch_size, seed)
        trained = _measure_layers(model, xp, yp, num_classes, method)
        arrays = {f"untrained/{k}": v for k, v in untrained.items()}
        arrays.update({f"trained/{k}": v for k, v in trained.items()})
        final_loss, final_accuracy = _evaluate(model, x, y)  # Whole training set.
        arrays.update(train_loss=train_loss, final_loss=np.float64(final_loss),
                      final_accuracy=np.float64(final_accuracy),
                      seconds=np.float64(time.monotonic() - start))
        out.save_stage(key, arrays)
        out.progress(f"{key}: done", index + 1, len(keys))

    results: dict[str, Any] = {
        "num_train": len(x), "num_classes": num_classes, "probe_size": len(probe),
        "probe_class_counts": np.bincount(yp, minlength=num_classes).tolist(), "models": {}}
    npz: dict[str, Any] = {"probe_indices": probe}
    seconds = {}
    for key in keys:
        arrays = out.load_stage(key)
        seconds[key] = float(arrays["seconds"])
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
        entry["final_train_loss"] = float(arrays["train_loss"][-1])  # Running, last epoch.
        entry["train_set_loss"] = float(arrays["final_loss"])  # After training.
        entry["train_set_accuracy"] = float(arrays["final_accuracy"])
        npz[f"{key}/train_loss"] = arrays["train_loss"]
        results["models"][key] = entry

    out.write_results(**npz)
    fig = layerwise_figure(results["models"], hidden_widths, list(activations))
    out.save_figure(fig, "layerwise.png")
    for key, entry in results["models"].items():
        for step, phase in enumerate(("untrained", "trained")):
            scalars = {}
            for metric in ("within", "between"):
                scalars.update({f"{key}/{layer}/{metric}": value for layer, value in
                                zip(entry["layers"], entry[phase][metric])})
            summary.write_scalars(out.tensorboard, scalars, step=step, prefix="layerwise")
    summary.write_figure(out.tensorboard, fig, "layerwise/curves", step=1)
    out.close()
    out.write_summary(results, run={"elapsed_s": out.elapsed, "skipped_stages": skipped,
                                    "stage_seconds": seconds})
    out.progress(f"wrote {out.path / 'summary.json'}")
    return experiment.read_json(out.path / "summary.json")


def layerwise_figure(
    model_results: Mapping[str, Mapping[str, Any]],
    hidden_widths: Sequence[Sequence[int]],
    activations: Sequence[str],
):
    """Within- and between-class stiffness per layer: one row per widths, one column per metric.

    Colour marks the activation; solid lines are trained models, dashed lines untrained.

    Args:
        model_results: `model_key` -> {"layers": [...], "untrained"/"trained": {"within":
            [...], "between": [...]}}, as in the summary of `run_layerwise`.
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
