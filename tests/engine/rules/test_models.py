"""Real models have no fallback layers, and their ghost Grams match brute force."""

import keras
import numpy as np
import pytest

from tests.support import hub_models
from tests.support.rules_check import check_ghost
from tfstiffness.engine._ghost import GhostFactors

RNG = np.random.default_rng(4)
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)


def _per_token_loss(y_true, y_pred):
    # An example's loss is its mean over tokens (what the brute force sums per example).
    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
        y_true, y_pred, from_logits=True), axis=-1)


def _fallback_layers(model):
    return GhostFactors(model, LOSS.call, "jacobian").fallback_layers  # no call: any loss


def _applications():
    return {"mobilenet_v2": hub_models.mobilenet_v2, "efficientnet_b0": hub_models.efficientnet_b0,
            "convnext_tiny": hub_models.convnext_tiny}


def _language_models():
    pytest.importorskip("keras_hub")
    import keras_hub

    small = {"vocab": 50, "length": 8, "hidden": 8, "layers": 1}
    gemma = hub_models.gemma_backbone(vocab=50, hidden=8, layers=1)
    return {
        "bert": hub_models.classifier(hub_models.bert_backbone(**small), 3),
        "gpt2": hub_models.classifier(hub_models.gpt2_backbone(**small), 3),
        "gemma": hub_models.classifier(gemma, 3),
        # Its logits come from the token table itself (reverse=True): tied weights.
        "gemma_causal_lm": keras_hub.models.GemmaCausalLM(backbone=gemma, preprocessor=None),
    }


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0", "convnext_tiny"])
def test_applications_have_no_fallback_layers(name):
    assert _fallback_layers(_applications()[name]()) == ()


def test_language_models_have_no_fallback_layers():
    for name, model in _language_models().items():
        assert _fallback_layers(model) == (), name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0"])
def test_applications_are_exact(name):
    model = _applications()[name]()
    # Moving statistics away from (0, 1), so BatchNorm's inference form matters.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(RNG.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(RNG.uniform(0.5, 2, layer.moving_variance.shape))
    x = RNG.normal(size=(3, 32, 32, 3)).astype("float32")
    gram, _ = check_ghost(model, x, RNG.integers(0, 10, 3), rng=RNG, cross=False)
    assert gram.fallback_layers == ()


@pytest.mark.slow
def test_language_models_are_exact():
    for name, model in _language_models().items():
        view = hub_models.on_token_ids(model)
        x = RNG.integers(1, 50, size=(4, 8)).astype("int32")
        x[1, 5:] = 0  # padding
        if name == "gemma_causal_lm":
            y, loss = RNG.integers(0, 50, size=(4, 8)), _per_token_loss
        else:
            y, loss = RNG.integers(0, 3, 4), LOSS
        gram, _ = check_ghost(view, x, y, loss=loss, rng=RNG, cross=False)
        assert gram.fallback_layers == (), name
