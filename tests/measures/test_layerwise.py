"""Layer-wise stiffness against per-layer brute-force gradients."""

import keras
import numpy as np
import pytest

import tfstiffness as tfs
from tests.support.bruteforce import per_example_gradients
from tests.support.models_zoo import ZOO, data_for

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)


def _cosine(g1, g2):
    norms = np.outer(np.linalg.norm(g1, axis=1), np.linalg.norm(g2, axis=1))
    # An exactly zero gradient (e.g. a dead ReLU layer for that example) has cosine 0.
    return np.where(norms > 0, (g1 @ g2.T) / np.where(norms > 0, norms, 1), 0.0)


def _class_means(S, labels, labels2, one_set):
    K = 3
    C = np.full((K, K), np.nan)
    for a in range(K):
        for b in range(K):
            vals = [S[i, j] for i in range(len(labels)) for j in range(len(labels2))
                    if labels[i] == a and labels2[j] == b and (not one_set or i != j)]
            if vals:
                C[a, b] = np.mean(vals)
    return C


@pytest.mark.parametrize("cross", [False, True])
def test_layerwise_matches_per_layer_brute_force(cross):
    model = ZOO["shared_net"]()
    x, y = data_for("shared_net", 8)
    x2, y2 = data_for("shared_net", 5, seed=3) if cross else (None, None)
    gram = tfs.gradient_gram(model, x, y, loss=LOSS, x2=x2, y2=y2, by_layer=True)
    result = tfs.layerwise_stiffness(gram, y, y2)
    g1 = per_example_gradients(model, LOSS, x, y)
    g2 = per_example_gradients(model, LOSS, x2, y2) if cross else g1
    assert list(result) == list(g1)  # layer order
    np.testing.assert_allclose(sum(gram.by_layer.values()), gram.total, rtol=1e-5, atol=1e-6)
    for name, layer in result.items():
        S = _cosine(g1[name], g2[name])
        np.testing.assert_allclose(layer.S, S, atol=1e-5)
        C = _class_means(S, y, y if not cross else y2, one_set=not cross)
        np.testing.assert_allclose(layer.class_matrix, C, atol=1e-5)
        within = np.nanmean(np.diag(C))
        between = np.nanmean(C[~np.eye(3, dtype=bool)])
        assert layer.within == pytest.approx(within, abs=1e-5)
        assert layer.between == pytest.approx(between, abs=1e-5)


def test_layerwise_needs_by_layer():
    model = ZOO["dense_net"]()
    x, y = data_for("dense_net", 4)
    with pytest.raises(ValueError, match="by_layer=True"):
        tfs.layerwise_stiffness(tfs.gradient_gram(model, x, y, loss=LOSS), y)
