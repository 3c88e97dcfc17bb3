"""StiffnessCallback: event files read back and compared with direct computations after fit."""

from __future__ import annotations

import io
import random
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfstiffness import measures
from tfstiffness.callback import StiffnessCallback, load_history
from tfstiffness.engine.gram import gradient_gram
from tfstiffness.measures import alignment
from tfstiffness.outputs import plots
from tfstiffness.outputs import tensorboard as summary

NUM_CLASSES = 4
FINE_TO_COARSE = np.array([1, 0, 1, 0])  # not sorted: the image must regroup the classes
KINDS = ("sign", "cosine")
PAIRS = ("train_train", "train_val", "val_val")
BINS = 6


def _data(num_per_class: int, seed: int, antipodal: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Two super-classes of two classes each: class means = super-class mean + small offset.

    With `antipodal`, every class is two opposite clusters (+mean and -mean): a tanh network's
    gradients of two examples from opposite clusters point apart, so within-class stiffness
    falls below zero with distance and the critical length xi exists. Without, it stays
    positive and xi lies beyond the largest distance.
    """
    rng = np.random.default_rng(1234)  # the class means are shared by every call
    coarse_means = 2.0 * rng.normal(size=(2, 6))
    means = coarse_means[FINE_TO_COARSE] + 0.7 * rng.normal(size=(NUM_CLASSES, 6))
    sample = np.random.default_rng(seed)
    y = sample.permutation(np.repeat(np.arange(NUM_CLASSES), num_per_class))
    side = sample.choice([-1.0, 1.0], size=(len(y), 1)) if antipodal else 1.0
    x = side * means[y] + sample.normal(size=(len(y), 6))
    return x.astype(np.float32), y.astype(np.int64)


def _model(dropout: float = 0.0) -> keras.Model:
    layers = [keras.Input((6,)), keras.layers.Dense(12, activation="tanh", name="hidden")]
    if dropout:
        layers.append(keras.layers.Dropout(dropout, name="dropout"))
    layers.append(keras.layers.Dense(NUM_CLASSES, name="logits"))
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.Adam(0.02),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _events(logdir) -> dict[str, dict[int, tf.compat.v1.Summary.Value]]:
    """tag -> step -> summary value, from every event file directly in logdir."""
    tags: dict[str, dict[int, tf.compat.v1.Summary.Value]] = {}
    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                steps = tags.setdefault(value.tag, {})
                assert event.step not in steps, f"{value.tag} written twice at step {event.step}"
                steps[event.step] = value
    return tags


def _scalar(value) -> float:
    return float(tf.make_ndarray(value.tensor))


def _plugin(value) -> str:
    return value.metadata.plugin_data.plugin_name


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One fit of 2 epochs with a train and a val probe, super-classes and per-layer stiffness."""
    keras.utils.set_random_seed(0)
    x, y = _data(24, seed=0)
    probe_x, probe_y = _data(5, seed=1)
    val_x, val_y = _data(4, seed=2)
    model = _model()
    initial = [w.copy() for w in model.get_weights()]
    log_dir = tmp_path_factory.mktemp("logs")
    cb = StiffnessCallback(probe_x, probe_y, val_x=val_x, val_y=val_y, log_dir=log_dir,
                           fine_to_coarse=FINE_TO_COARSE, by_layer=True, distance_bins=BINS)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    return types.SimpleNamespace(model=model, initial=initial, cb=cb, events=_events(
        log_dir / "stiffness"), probe=(probe_x, probe_y), val=(val_x, val_y))


def _direct(model, probe, val) -> dict[str, float]:
    """Every logged number, computed from separate gradient_gram calls (no callback code)."""
    (px, py), (vx, vy) = probe, val
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    grams = {"train_train": gradient_gram(model, px, py, loss=loss, by_layer=True),
             "train_val": gradient_gram(model, px, py, loss=loss, x2=vx, y2=vy, by_layer=True),
             "val_val": gradient_gram(model, vx, vy, loss=loss, by_layer=True)}
    sets = {"train_train": (px, py, None, None), "train_val": (px, py, vx, vy),
            "val_val": (vx, vy, None, None)}
    out = {"undefined": 0, "zero_gradients/train": np.sum(grams["train_train"].sq_norms == 0),
           "zero_gradients/val": np.sum(grams["val_val"].sq_norms == 0)}
    for pairs, gram in grams.items():
        x1, y1, x2, y2 = sets[pairs]
        one_set = x2 is None
        for kind in KINDS:
            name = f"{pairs}/{kind}"
            S = measures.stiffness_matrix(gram, kind)
            C = measures.class_stiffness(S, y1, y2, NUM_CLASSES)
            out[f"{name}/within"], out[f"{name}/between"] = measures.within_between(C)
            out[f"{name}/superclass_contrast"] = measures.superclass_contrast(C, FINE_TO_COARSE)
            off = ~np.eye(len(x1), dtype=bool) if one_set else np.ones(S.shape, bool)
            out[f"{name}/mean"] = S[off].mean()
            curve = measures.stiffness_vs_distance(S, x=x1, labels=y1, x2=x2, labels2=y2,
                                                   bins=BINS)
            critical = measures.critical_length(curve)
            out[f"{name}/xi_crossed"] = float(critical.status == "crossed")
            if critical.status == "crossed":
                out[f"{name}/xi_crossing"] = critical.xi
            fit = measures.critical_length(curve, "linear_fit")
            out[f"{name}/xi_linear_fit_slope"] = fit.slope
            out[f"{name}/xi_linear_fit_intercept"] = fit.intercept
            out[f"{name}/xi_linear_fit_r2"] = fit.r_squared
            if fit.xi is not None:
                out[f"{name}/xi_linear_fit"] = fit.xi
                out[f"{name}/xi_linear_fit_extrapolated"] = float(fit.extrapolated)
            for layer, block in gram.by_layer.items():
                # Per-layer squared norms: the diagonals of each set's own layer block.
                rows = np.diagonal(grams["val_val" if pairs == "val_val" else "train_train"]
                                   .by_layer[layer])
                cols = np.diagonal(grams["train_train" if pairs == "train_train" else "val_val"]
                                   .by_layer[layer])
                S_layer = measures.stiffness_matrix(block, kind, rows, None if one_set else cols)
                out[f"{name}/layer/{layer}"] = S_layer[off].mean()
        name = f"{pairs}/alignment"
        if one_set:
            out[f"{name}/m_coherence"] = alignment.m_coherence(gram)
            out[f"{name}/gradient_diversity"] = alignment.gradient_diversity(gram)
            out[f"{name}/gradient_confusion"] = alignment.gradient_confusion(gram)
            out[f"{name}/gradient_confusion_cosine"] = alignment.gradient_confusion(gram,
                                                                                   "cosine")
        else:
            out[f"{name}/summed_gradient_cosine"] = alignment.train_val_alignment(
                gram, grams["train_train"], grams["val_val"])
    # NaN and infinite values are not written (e.g. R^2 of a flat curve).
    return {k: v for k, v in out.items() if np.isfinite(v)}


# ---------------------------------------------------------------------------------------------
# Tags, steps and values
# ---------------------------------------------------------------------------------------------


def test_every_tag_at_every_step(trained):
    events, cb = trained.events, trained.cb
    layers = sorted(gradient_gram(trained.model, *trained.probe, by_layer=True).by_layer)
    assert len(layers) == 2
    expected_scalars = {"stiffness/zero_gradients/train", "stiffness/zero_gradients/val",
                        "stiffness/undefined"}
    expected_images, expected_histograms = set(), set()
    for pairs in PAIRS:
        for kind in KINDS:
            name = f"stiffness/{pairs}/{kind}"
            expected_scalars |= {f"{name}/{s}" for s in
                                 ("within", "between", "mean", "superclass_contrast",
                                  "xi_crossed", "xi_linear_fit_slope",
                                  "xi_linear_fit_intercept", "xi_linear_fit_r2")}
            expected_scalars |= {f"{name}/layer/{layer}" for layer in layers}
            expected_images |= {f"{name}/class_matrix", f"{name}/vs_distance"}
            expected_histograms.add(f"{name}/values")
        if pairs == "train_val":
            expected_scalars.add("stiffness/train_val/alignment/summed_gradient_cosine")
        else:
            expected_scalars |= {f"stiffness/{pairs}/alignment/{s}" for s in (
                "m_coherence", "gradient_diversity", "gradient_confusion",
                "gradient_confusion_cosine")}
    xi_tags = {t for t in events if t.endswith("/xi_crossing")}
    fit_tags = {t for t in events if t.endswith(("/xi_linear_fit",
                                                 "/xi_linear_fit_extrapolated"))}
    by_plugin = {}
    for tag, steps in events.items():
        by_plugin.setdefault(_plugin(next(iter(steps.values()))), set()).add(tag)
    assert by_plugin == {"scalars": expected_scalars | xi_tags | fit_tags,
                         "images": expected_images, "histograms": expected_histograms}
    assert xi_tags, "xi crossed zero in no pair set at no step: the test data should make it"
    for tag in expected_scalars | expected_images | expected_histograms:
        assert sorted(events[tag]) == [0, 1, 2], tag  # untrained, then completed epochs
    for tag in xi_tags:  # xi is written exactly where the curve crossed zero
        crossed = [s for s, v in events[tag[:-len("ing")] + "ed"].items() if _scalar(v) == 1.0]
        assert sorted(events[tag]) == sorted(crossed), tag
    assert [e["step"] for e in cb.history] == [0, 1, 2]
    assert [e["epoch"] for e in cb.history] == [0, 1, 2]
    assert [e["iteration"] for e in cb.history] == [0, 6, 12]  # 96 examples / 16 per batch


@pytest.mark.parametrize("step", [0, 2])
def test_logged_values_equal_direct_computation(trained, step):
    model, final = trained.model, trained.model.get_weights()
    if step == 0:  # the untrained state: put the initial weights back for a moment
        model.set_weights(trained.initial)
    try:
        direct = _direct(model, trained.probe, trained.val)
    finally:
        model.set_weights(final)
    scalar_tags = {t for t, s in trained.events.items()
                   if _plugin(next(iter(s.values()))) == "scalars"}
    logged = {t[len("stiffness/"):]: _scalar(s[step]) for t, s in trained.events.items()
              if t in scalar_tags and step in s}
    assert set(logged) == set(direct)
    for name, value in direct.items():
        # float32 summaries; the callback's one Gram of [probe; val] vs three separate ones.
        assert logged[name] == pytest.approx(value, abs=2e-5), name


def test_history_equals_event_values(trained):
    for entry in trained.cb.history:
        step = entry["step"]
        for tag, steps in trained.events.items():
            value = steps.get(step)
            if _plugin(next(iter(steps.values()))) != "scalars":
                continue
            name = tag[len("stiffness/"):]
            if value is None:  # only xi is ever missing, and then the history says NaN
                assert name.endswith(("/xi_crossing", "/xi_linear_fit",
                                      "/xi_linear_fit_extrapolated")), (tag, step)
                assert np.isnan(entry[name]), (tag, step)
                if name.endswith("/xi_crossing"):
                    assert np.isfinite(entry[name + "_bound"])
            else:
                assert _scalar(value) == np.float32(entry[name]), (tag, step)
        assert entry["train_loss"] > 0 if step else np.isnan(entry["train_loss"])


def test_images_are_pngs_of_the_plotted_figures(trained):
    cb = trained.cb
    for entry in cb.history:
        step = entry["step"]
        for pairs in PAIRS:
            for kind in KINDS:
                name = f"{pairs}/{kind}"
                C = entry[f"{name}/class_matrix"]
                assert C.shape == (NUM_CLASSES, NUM_CLASSES)
                figures = {
                    "class_matrix": plots.class_matrix(C, fine_to_coarse=FINE_TO_COARSE),
                    "vs_distance": _curve_figure(cb.curve_edges[pairs], entry, name),
                }
                for image, fig in figures.items():
                    value = trained.events[f"stiffness/{name}/{image}"][step]
                    width, height, png = value.tensor.string_val
                    decoded = Image.open(io.BytesIO(png))
                    assert decoded.format == "PNG"
                    expected = np.round(fig.get_size_inches() * summary.SUMMARY_DPI)
                    assert decoded.size == tuple(expected.astype(int)) == (int(width),
                                                                           int(height))


def _curve_figure(edges, entry, name):
    """The curve image as the callback draws it: the curve and both critical lengths."""
    centres = 0.5 * (edges[1:] + edges[:-1])
    curve = measures.StiffnessCurve(edges, centres, entry[f"{name}/curve_means"],
                                    entry[f"{name}/curve_counts"], "within")
    critical = [measures.critical_length(curve, method) for method in ("crossing",
                                                                       "linear_fit")]
    return plots.stiffness_vs_distance(curve, critical)


def test_histograms_hold_every_pair(trained):
    n, m = len(trained.probe[0]), len(trained.val[0])
    pairs_count = {"train_train": n * (n - 1), "train_val": n * m, "val_val": m * (m - 1)}
    for pairs, count in pairs_count.items():
        for kind in KINDS:
            for step, value in trained.events[f"stiffness/{pairs}/{kind}/values"].items():
                buckets = tf.make_ndarray(value.tensor)  # [buckets, (left, right, count)]
                assert buckets[:, 2].sum() == count, (pairs, kind, step)
                assert buckets[0, 0] >= -1 and buckets[-1, 1] <= 1


# ---------------------------------------------------------------------------------------------
# Coexistence, schedule, training unchanged
# ---------------------------------------------------------------------------------------------


def test_coexists_with_keras_tensorboard_batch_summaries(tmp_path):
    x, y = _data(8, seed=0, antipodal=False)  # 32 examples, batches of 8: 4 steps per epoch
    probe_x, probe_y = _data(3, seed=1, antipodal=False)
    model = _model()
    cb = StiffnessCallback(probe_x, probe_y, log_dir=tmp_path, every_n_steps=3,
                           kinds=("cosine",), images=False)
    tensorboard = keras.callbacks.TensorBoard(log_dir=str(tmp_path), update_freq=1)
    # TensorBoard first: its batch-level recording condition is active around our writes.
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[tensorboard, cb])
    keras_tags = _events(tmp_path / "train")
    assert {"batch_loss", "epoch_loss"} <= set(keras_tags)
    ours = _events(tmp_path / "stiffness")
    expected_steps = [0, 3, 6, 8]  # every 3 optimizer steps, and the final weights
    for tag in ("stiffness/train_train/cosine/within", "stiffness/train_train/cosine/between",
                "stiffness/train_train/cosine/values"):
        assert sorted(ours[tag]) == expected_steps, tag
    assert [e["iteration"] for e in cb.history] == expected_steps
    # Within-class stiffness never crosses zero here: no xi, a 0 flag, a bound in the history.
    assert "stiffness/train_train/cosine/xi_crossing" not in ours
    assert [_scalar(v) for v in ours["stiffness/train_train/cosine/xi_crossed"].values()] == [
        0.0] * 4
    assert all(np.isnan(e["train_train/cosine/xi_crossing"])
               and e["train_train/cosine/xi_crossing_bound"] > 0 for e in cb.history)
    # Steps are optimizer iterations: the same axis as Keras' batch summaries.
    assert set(expected_steps[1:]) <= set(keras_tags["batch_loss"])
    last = cb.history[-1]["train_train/cosine/within"]
    S = measures.stiffness_matrix(gradient_gram(model, probe_x, probe_y), "cosine")
    direct = measures.within_between(measures.class_stiffness(S, probe_y, None, NUM_CLASSES))[0]
    assert last == pytest.approx(direct, abs=1e-6)


class _TrainingModeProbe(keras.callbacks.Callback):
    """A careless callback: forward passes in training mode advance the dropout seeds."""

    def __init__(self, x):
        super().__init__()
        self.x = x

    def on_train_batch_end(self, batch, logs=None):
        self.model(self.x, training=True)


def _fit_weights(callbacks_for, tmp_path) -> tuple[list[np.ndarray], tuple]:
    keras.utils.set_random_seed(7)
    x, y = _data(12, seed=3)
    model = _model(dropout=0.5)
    model.fit(x, y, epochs=2, batch_size=8, shuffle=True, verbose=0,
              callbacks=callbacks_for(model, tmp_path))
    states = (np.random.get_state(), random.getstate())
    return model.get_weights(), states


def test_training_identical_with_and_without_callback(tmp_path):
    probe_x, probe_y = _data(3, seed=4)
    val_x, val_y = _data(2, seed=5)
    plain, plain_states = _fit_weights(lambda model, path: [], tmp_path)
    measured, measured_states = _fit_weights(lambda model, path: [
        keras.callbacks.TensorBoard(log_dir=str(path), update_freq=1),
        StiffnessCallback(probe_x, probe_y, val_x=val_x, val_y=val_y, log_dir=path,
                          every_n_steps=1, by_layer=True, images=False)], tmp_path)
    assert (tmp_path / "stiffness").is_dir()
    for a, b in zip(plain, measured):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(plain_states[0], measured_states[0]):  # NumPy: keys, position, ...
        np.testing.assert_array_equal(a, b)
    assert plain_states[1] == measured_states[1]
    # The comparison is sensitive: consuming dropout randomness between steps changes training.
    careless, _ = _fit_weights(lambda model, path: [_TrainingModeProbe(probe_x)], tmp_path)
    assert any(not np.array_equal(a, b) for a, b in zip(plain, careless))


def test_epoch_schedule_continued_fit_and_npz_round_trip(tmp_path):
    x, y = _data(8, seed=0)
    probe_x, probe_y = _data(3, seed=1)
    model = _model()
    cb = StiffnessCallback(probe_x, np.eye(NUM_CLASSES)[probe_y], every_n_epochs=2,
                           kinds=("cosine",), distance_bins=BINS,
                           loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[cb])
    model.fit(x, y, epochs=4, initial_epoch=3, batch_size=8, verbose=0, callbacks=[cb])
    # 0: before training; 2: period; 3: end of the first fit (also the start of the second,
    # measured once); 4: end of the second fit.
    assert [e["step"] for e in cb.history] == [0, 2, 3, 4]
    assert [e["iteration"] for e in cb.history] == [0, 8, 12, 16]
    assert list(tmp_path.iterdir()) == []  # no log_dir: nothing written

    path = cb.save(tmp_path / "history.npz")
    cb.save(tmp_path / "history.npz")  # overwriting works
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.npz"]  # no temporary left
    loaded = load_history(path)
    arrays = cb.history_arrays()
    assert set(loaded) == set(arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)
    assert loaded["train_train/cosine/class_matrix"].shape == (4, NUM_CLASSES, NUM_CLASSES)
    assert loaded["train_train/cosine/curve_means"].shape == (4, BINS)
    np.testing.assert_array_equal(loaded["step"], [0, 2, 3, 4])
    np.testing.assert_array_equal(loaded["meta/probe_labels"], probe_y)
    assert str(loaded["meta/step_unit"]) == "epoch"
    series = cb.series("train_train", "cosine")
    np.testing.assert_array_equal(series["within"], loaded["train_train/cosine/within"])
    plots.training_curves({"run": series})  # the form the plotting function takes


@pytest.mark.parametrize("kwargs, message", [
    ({"probe_y": np.zeros(3, int)}, "probe_y"),
    ({"val_x": np.zeros((4, 6))}, "val_x, val_y"),
    ({"val_x": np.zeros((4, 5)), "val_y": np.zeros(4, int)}, "val_x"),
    ({"kinds": ("sign", "dot")}, "kinds"),
    ({"every_n_epochs": 0}, "every_n_epochs"),
    ({"every_n_steps": 1.5}, "every_n_steps"),
    ({"distance_bins": 0}, "distance_bins"),
    ({"fine_to_coarse": [0, 1, 0], "num_classes": 4}, "fine_to_coarse"),
    ({"num_classes": 2}, "probe_y"),
    ({"probe_y": np.full(5, 0.5)}, "integer class labels"),
])
def test_bad_arguments(kwargs, message):
    args = {"probe_x": np.zeros((5, 6), np.float32), "probe_y": np.arange(5) % 4} | kwargs
    with pytest.raises(ValueError, match=message):
        StiffnessCallback(**args)


def test_bootstrap_intervals_reach_the_history_series_and_tensorboard(tmp_path):
    x, y = _data(8, seed=0)
    probe_x, probe_y = _data(6, seed=1)
    model = _model()
    cb = StiffnessCallback(probe_x, probe_y, log_dir=tmp_path, kinds=("cosine",), images=False,
                           histograms=False, bootstrap_samples=30, bootstrap_seed=1)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[cb])
    entry = cb.history[-1]
    assert (entry["train_train/cosine/within_ci_low"] <= entry["train_train/cosine/within"]
            <= entry["train_train/cosine/within_ci_high"])
    series = cb.series()
    assert series["within_low"].shape == series["within"].shape == (2,)
    assert {"xi_linear_fit_low", "xi_linear_fit_high", "xi_linear_fit_extrapolated"} <= set(
        series)
    fig = plots.training_curves({"run": series}, metrics=("within", "xi_linear_fit"))
    assert len(fig.axes[0].collections) == 1  # The within band.
    events = _events(tmp_path / "stiffness")
    assert "stiffness/train_train/cosine/within_ci_high" in events
    assert "stiffness/train_train/alignment/m_coherence_ci_low" in events


def test_a_log_dir_that_is_a_file_is_refused_at_construction(tmp_path):
    x = np.zeros((4, 3), "float32")
    y = np.arange(4) % 2
    (tmp_path / "file").write_text("not a directory")
    for log_dir, named in ((tmp_path / "file", ""),
                           (tmp_path / "file" / "logs", f" (its parent {tmp_path / 'file'})")):
        with pytest.raises(ValueError) as info:
            StiffnessCallback(x, y, log_dir=log_dir)
        assert str(info.value) == (f"log_dir: {log_dir}{named} is a file, not a directory; give "
                                   "a directory for the TensorBoard event files.")
