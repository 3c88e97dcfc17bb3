"""`probes.ProbeSets`, the measuring path shared by StiffnessCallback and the studies: its
values against direct computations, distances in a representation, and what is a scalar."""

import keras
import numpy as np
import pytest

from tfstiffness import measures, probes
from tfstiffness.gram import gradient_gram

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
    status = probes.XI_STATUSES[m.values["train_val/cosine/xi_status"]]
    assert status == measures.critical_length(curve).status


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
    values = {"a/within": 0.5, "a/xi": float("nan"), "a/xi_status": 1, "a/xi_bound": 1.2,
              "a/class_matrix": np.eye(2), "zero_gradients/train": 3}
    assert probes.scalar_values(values) == {"a/within": 0.5, "a/xi": pytest.approx(np.nan,
                                                                                   nan_ok=True),
                                            "zero_gradients/train": 3.0}


def test_measuring_leaves_the_global_random_states_alone():
    x, y, model = _setup()
    sets = probes.ProbeSets(x[:12], y[:12], loss=LOSS)
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    sets.measure(model)
    assert np.random.rand() == expected
