"""`probes.ProbeSets`, the measuring path shared by StiffnessCallback and the studies: its
values against direct computations (stiffness, both critical-length estimators, the alignment
family, bootstrap intervals), distances in a representation, the NaN record of an undefined
measurement, and what is a scalar."""

import math

import keras
import numpy as np
import pytest

from tfstiffness import measures, probes
from tfstiffness.engine.gram import gradient_gram
from tfstiffness.measures import alignment, uncertainty

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _setup():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 5)).astype("float32")
    y = np.arange(24) % 3
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(7, activation="tanh",
                                                                     name="hidden"),
                              keras.layers.Dense(3)])
    return x, y, model


def test_values_equal_the_measures_on_the_gram_blocks():
    x, y, model = _setup()
    sets = probes.ProbeSets(x[:12], y[:12], x[12:], y[12:], loss=LOSS, distance_bins=4,
                            fine_to_coarse=np.array([0, 0, 1]))
    m = sets.measure(model)
    assert m.gram_method == "ghost"
    gram = gradient_gram(model, x[:12], y[:12], loss=LOSS, x2=x[12:], y2=y[12:])
    S = measures.stiffness_matrix(gram, kind="cosine")
    C = measures.class_stiffness(S, y[:12], y[12:], num_classes=3)
    np.testing.assert_allclose(m.values["train_val/cosine/class_matrix"], C, atol=1e-6)
    assert m.values["train_val/cosine/within"] == pytest.approx(measures.within_between(C)[0],
                                                                abs=1e-6)
    assert m.values["train_val/cosine/superclass_contrast"] == pytest.approx(
        measures.superclass_contrast(C, np.array([0, 0, 1])), abs=1e-6)
    curve = measures.stiffness_vs_distance(S, x[:12], labels=y[:12], x2=x[12:],
                                           labels2=y[12:], bins=4)
    np.testing.assert_allclose(m.values["train_val/cosine/curve_means"], curve.means,
                               atol=1e-6)
    for method in probes.XI_ESTIMATORS:
        critical = measures.critical_length(curve, method)
        name = f"train_val/cosine/xi_{method}"
        assert probes.XI_STATUSES[m.values[f"{name}_status"]] == critical.status
        if critical.xi is None:
            assert math.isnan(m.values[name])
        else:
            assert m.values[name] == pytest.approx(critical.xi, rel=1e-6)


def _antipodal(num_per_class=8, seed=0):
    """Two classes, each two opposite clusters: tanh gradients of opposite clusters point
    apart, so within-class stiffness falls with distance (both xi estimators give numbers)."""
    rng = np.random.default_rng(seed)
    means = np.array([[2.0, 0, 0, 0, 0], [0, 2.0, 0, 0, 0]])
    y = np.tile([0, 1], num_per_class)
    side = rng.choice([-1.0, 1.0], size=(len(y), 1))
    x = side * means[y] + 0.3 * rng.normal(size=(len(y), 5))
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="tanh"),
                              keras.layers.Dense(2)])
    return x.astype("float32"), y, model


def test_linear_fit_xi_equals_a_direct_weighted_fit():
    x, y, model = _antipodal(12)
    m = probes.ProbeSets(x, y, loss=LOSS, distance_bins=6, kinds=("cosine",)).measure(model)
    S = measures.stiffness_matrix(gradient_gram(model, x, y, loss=LOSS))
    curve = measures.stiffness_vs_distance(S, x, labels=y, bins=6)
    # Direct weighted least squares over the non-empty bins, weights = pair counts.
    filled = curve.counts > 0
    w, c, v = curve.counts[filled], curve.centres[filled], curve.means[filled]
    slope, intercept = np.polyfit(c, v, 1, w=np.sqrt(w))
    name = "train_train/cosine/xi_linear_fit"
    assert m.values[f"{name}_slope"] == pytest.approx(slope, rel=1e-6)
    assert m.values[f"{name}_intercept"] == pytest.approx(intercept, rel=1e-6, abs=1e-9)
    fit = measures.critical_length(curve, "linear_fit")
    assert m.values[f"{name}_r2"] == pytest.approx(fit.r_squared, rel=1e-9)
    if slope < 0 < intercept:
        assert m.values[name] == pytest.approx(-intercept / slope, rel=1e-6)
        low, high = curve.edges[np.flatnonzero(filled)[[0, -1]] + [0, 1]]
        assert m.values[f"{name}_extrapolated"] == float(not low <= -intercept / slope <= high)
    else:
        assert math.isnan(m.values[name]) and math.isnan(m.values[f"{name}_extrapolated"])
    assert slope < 0  # The data is made so that stiffness falls with distance.


def test_alignment_values_equal_the_library_on_the_gram_blocks():
    x, y, model = _setup()
    sets = probes.ProbeSets(x[:12], y[:12], x[12:], y[12:], loss=LOSS, kinds=("sign",))
    m = sets.measure(model).values
    grams = {"train_train": gradient_gram(model, x[:12], y[:12], loss=LOSS).total,
             "val_val": gradient_gram(model, x[12:], y[12:], loss=LOSS).total}
    cross = gradient_gram(model, x[:12], y[:12], loss=LOSS, x2=x[12:], y2=y[12:]).total
    for pairs, G in grams.items():
        labels = y[:12] if pairs == "train_train" else y[12:]
        name = f"{pairs}/alignment"
        assert m[f"{name}/m_coherence"] == pytest.approx(alignment.m_coherence(G), rel=1e-5)
        np.testing.assert_allclose(m[f"{name}/class_m_coherence"],
                                   alignment.class_m_coherence(G, labels, 3), rtol=1e-5)
        assert m[f"{name}/gradient_diversity"] == pytest.approx(
            alignment.gradient_diversity(G), rel=1e-5)
        assert m[f"{name}/gradient_confusion"] == pytest.approx(
            alignment.gradient_confusion(G), rel=1e-5, abs=1e-7)
        assert m[f"{name}/gradient_confusion_cosine"] == pytest.approx(
            alignment.gradient_confusion(G, "cosine"), rel=1e-5, abs=1e-7)
    assert m["train_val/alignment/summed_gradient_cosine"] == pytest.approx(
        alignment.train_val_alignment(cross, grams["train_train"], grams["val_val"]), rel=1e-5)
    # Hand check of one formula: alpha = |sum g|^2 / sum |g|^2.
    G = grams["train_train"]
    assert m["train_train/alignment/m_coherence"] == pytest.approx(G.sum() / np.trace(G),
                                                                   rel=1e-5)


def test_bootstrap_intervals_are_the_librarys_and_seeded():
    x, y, model = _antipodal(10)
    f2c = np.array([0, 0])
    kwargs = {"loss": LOSS, "distance_bins": 5, "kinds": ("cosine",), "fine_to_coarse": None,
              "bootstrap_samples": 50, "bootstrap_seed": 3}
    sets = probes.ProbeSets(x[:12], y[:12], x[12:], y[12:], **kwargs)
    m = sets.measure(model).values
    gram = gradient_gram(model, x[:12], y[:12], loss=LOSS, x2=x[12:], y2=y[12:])
    S = measures.stiffness_matrix(gram)
    curve = measures.stiffness_vs_distance(S, x[:12], labels=y[:12], x2=x[12:],
                                           labels2=y[12:], bins=5)
    names = ["within", "between", "xi_crossing", "xi_linear_fit"]
    direct = uncertainty.bootstrap(names, S, y[:12], labels2=y[12:], num_classes=2,
                                   x=x[:12], x2=x[12:], bins=curve.edges, num_samples=50,
                                   seed=3)
    for name in names:
        # One Gram of [probe; val] vs a separate cross Gram: equal to float32 round-off.
        assert m[f"train_val/cosine/{name}_ci_low"] == pytest.approx(direct[name].low,
                                                                     rel=1e-6), name
        assert m[f"train_val/cosine/{name}_ci_high"] == pytest.approx(direct[name].high,
                                                                      rel=1e-6), name
    G = gradient_gram(model, x[:12], y[:12], loss=LOSS).total
    coherence = uncertainty.bootstrap("m_coherence", G, y[:12], num_samples=50, seed=3)
    assert m["train_train/alignment/m_coherence_ci_low"] == pytest.approx(coherence.low,
                                                                          rel=1e-5)
    assert m["train_train/alignment/m_coherence_ci_high"] == pytest.approx(coherence.high,
                                                                           rel=1e-5)
    assert m["train_train/cosine/within_ci_low"] <= m["train_train/cosine/within"] <= m[
        "train_train/cosine/within_ci_high"]
    # Seeded: the same seed gives the same ends, another seed other ones; none without.
    again = probes.ProbeSets(x[:12], y[:12], x[12:], y[12:], **kwargs).measure(model).values
    assert again["train_val/cosine/within_ci_low"] == m["train_val/cosine/within_ci_low"]
    other = probes.ProbeSets(x[:12], y[:12], x[12:], y[12:], **{**kwargs, "bootstrap_seed": 4}
                             ).measure(model).values
    assert other["train_val/cosine/between_ci_low"] != m["train_val/cosine/between_ci_low"]
    with_f2c = probes.ProbeSets(x[:12], y[:12], **{**kwargs, "fine_to_coarse": f2c,
                                                   "bootstrap_samples": 5})
    assert "train_train/cosine/superclass_contrast_ci_low" in with_f2c.measure(model).values
    plain = probes.ProbeSets(x[:12], y[:12], loss=LOSS).measure(model).values
    assert not [key for key in plain if "_ci_" in key]


@pytest.mark.parametrize("kwargs, message", [
    ({"bootstrap_samples": -1}, "bootstrap_samples: expected an integer >= 0"),
    ({"bootstrap_samples": 2.5}, "bootstrap_samples: expected an integer >= 0"),
    ({"bootstrap_confidence": 1.0}, "bootstrap_confidence: expected a number in (0, 1)"),
    ({"bootstrap_seed": -2}, "bootstrap_seed: expected an integer >= 0"),
])
def test_bad_bootstrap_settings_are_refused(kwargs, message):
    x, y, _ = _setup()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        probes.ProbeSets(x, y, loss=LOSS, **kwargs)


def test_an_undefined_measurement_has_every_name_and_shape_of_a_defined_one():
    x, y, model = _setup()
    sets = probes.ProbeSets(x[:12], y[:12], x[12:], y[12:], loss=LOSS, distance_bins=4,
                            fine_to_coarse=np.array([0, 0, 1]), by_layer=True,
                            bootstrap_samples=5)
    defined = sets.measure(model).values
    with pytest.warns(UserWarning, match="undefined"):
        undefined = sets._undefined(model, RuntimeError("diverged")).values
    assert set(undefined) == set(defined)
    for key, value in defined.items():
        assert np.shape(undefined[key]) == np.shape(value), key
        if key not in ("undefined",) and np.asarray(undefined[key]).dtype.kind == "f":
            assert np.isnan(undefined[key]).all(), key


def test_distances_in_a_representation_are_taken_at_each_measurement():
    x, y, model = _setup()
    model(x[:1])  # Built, so that its input is defined.
    hidden = keras.Model(model.inputs, model.get_layer("hidden").output)
    sets = probes.ProbeSets(x[:12], y[:12], loss=LOSS, distance_bins=4,
                            representation=lambda mdl, xs: np.asarray(hidden(xs)))
    m = sets.measure(model)
    S = measures.stiffness_matrix(gradient_gram(model, x[:12], y[:12], loss=LOSS))
    curve = measures.stiffness_vs_distance(S, np.asarray(hidden(x[:12])), labels=y[:12],
                                           bins=4)
    np.testing.assert_allclose(m.values["train_train/cosine/curve_edges"], curve.edges)
    np.testing.assert_allclose(m.values["train_train/cosine/curve_means"], curve.means,
                               atol=1e-6)


def test_scalars_are_the_numbers_but_not_the_xi_bookkeeping():
    values = {"a/within": 0.5, "a/xi_crossing": float("nan"), "a/xi_crossing_status": 1,
              "a/xi_crossing_bound": 1.2, "a/xi_linear_fit_status": 3,
              "a/xi_linear_fit": 2.0, "a/class_matrix": np.eye(2), "zero_gradients/train": 3}
    assert probes.scalar_values(values) == {
        "a/within": 0.5, "a/xi_crossing": pytest.approx(np.nan, nan_ok=True),
        "a/xi_linear_fit": 2.0, "zero_gradients/train": 3.0}


def test_measuring_leaves_the_global_random_states_alone():
    x, y, model = _setup()
    sets = probes.ProbeSets(x[:12], y[:12], loss=LOSS)
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    sets.measure(model)
    assert np.random.rand() == expected
