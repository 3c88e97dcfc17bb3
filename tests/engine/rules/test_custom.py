"""The custom-rules guide's example (docs/guides/custom-rules.md), run as written,
against brute force;
and the registry's argument checks."""

import re

import keras
import numpy as np
import pytest

import tfstiffness as tfs
from tests.support import REPO_ROOT
from tests.support.bruteforce import brute_force_gram, relative_error
from tests.support.custom_layers import Scale
from tfstiffness.engine.rules import _registry

DOC = REPO_ROOT / "docs" / "guides" / "custom-rules.md"


def _doc_code() -> str:
    text = DOC.read_text()
    section = text[text.index("## Example: a low-rank Dense layer"):]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "no python example in the custom-rules guide's example section"
    return "\n".join(blocks)


def test_documented_custom_rule_is_exact():
    namespace: dict = {}
    try:
        exec(compile(_doc_code(), str(DOC), "exec"), namespace)  # noqa: S102
        layer_class = namespace["LowRankDense"]
        assert _registry.rule_for(namespace["model"].layers[0]) is not None
        model, x, y, gram = (namespace[k] for k in ("model", "x", "y", "gram"))
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        reference = brute_force_gram(model, loss, x, y)[0]
        assert gram.fallback_layers == ()
        assert relative_error(gram.total, reference) <= 1e-5
        # A nonzero bias and a second call of the layer (positions side by side) too.
        layer = model.layers[0]
        layer.c.assign(np.linspace(-1, 1, layer.units).astype("float32"))
        inputs = keras.Input((2, 20))
        twice = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(
            keras.layers.Concatenate()([layer(inputs), layer(inputs[:, ::-1])]))))
        x2 = np.random.default_rng(1).normal(size=(6, 2, 20)).astype("float32")
        y2 = np.arange(6) % 3
        result = tfs.gradient_gram(twice, x2, y2, loss=loss, method="ghost", by_layer=True)
        assert result.fallback_layers == ()
        assert relative_error(result.total, brute_force_gram(twice, loss, x2, y2)[0]) <= 1e-5
    finally:
        _registry.RULES.pop(namespace.get("LowRankDense"), None)
    assert _registry.rule_for(layer_class(2, 1)) is None


def test_register_rule_refuses_what_is_not_a_rule():
    with pytest.raises(TypeError, match="layer_class: expected a class"):
        tfs.register_rule("Dense", lambda layer, calls: [])
    with pytest.raises(TypeError, match="rule: expected a callable"):
        tfs.register_rule(keras.layers.Layer, None)
    with pytest.raises(TypeError, match="applies: expected a callable"):
        tfs.register_rule(keras.layers.Layer, lambda layer, calls: [], applies=True)


class Doubling(Scale):
    """`Scale` as a class of its own, so that the rule registered here touches no other test."""


def test_a_wrong_rule_is_caught_by_the_self_check():
    def wrong_rule(layer, calls):  # twice the true gradient
        return [tfs.rules.Materialized(2.0 * calls[0].args[0] * calls[0].grad)]

    tfs.register_rule(Doubling, wrong_rule)
    try:
        model = keras.Sequential([keras.Input((4,)), Doubling(name="doubling"),
                                  keras.layers.Dense(3)])
        x = np.random.default_rng(2).normal(size=(6, 4)).astype("float32")
        y = np.arange(6) % 3
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        with pytest.warns(UserWarning, match=r"\['doubling'\].*rule does not match"):
            gram = tfs.gradient_gram(model, x, y, loss=loss, method="ghost")
        assert [k.rsplit("/", 1)[-1] for k in gram.fallback_layers] == ["doubling"]
        assert relative_error(gram.total, brute_force_gram(model, loss, x, y)[0]) <= 1e-5
    finally:
        _registry.RULES.pop(Doubling, None)


class Block(keras.layers.Layer):
    """A container: a Dense (ruled itself) and a scale of its own."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(4, activation="tanh")

    def build(self, shape):
        self.inner.build(shape)
        self.scale = self.add_weight(shape=(4,), initializer="ones")

    def call(self, x):
        return self.inner(x) * self.scale


def test_a_rule_for_a_container_covers_its_ruled_sublayers_once():
    tfs.register_rule(Block, tfs.rules.per_example_vjp)
    try:
        model = keras.Sequential([keras.Input((3,)), Block(name="block"), keras.layers.Dense(3)])
        model.layers[0].scale.assign(np.linspace(0.5, 2, 4).astype("float32"))
        x = np.random.default_rng(3).normal(size=(6, 3)).astype("float32")
        y = np.arange(6) % 3
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        gram = tfs.gradient_gram(model, x, y, loss=loss, method="ghost")
        assert gram.fallback_layers == ()
        assert relative_error(gram.total, brute_force_gram(model, loss, x, y)[0]) <= 1e-5
    finally:
        _registry.RULES.pop(Block, None)
