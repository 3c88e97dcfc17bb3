"""Rules for keras_hub's layers, registered once keras_hub is imported (never imported here:
it takes seconds, and a model holding its layers has imported it already)."""

from __future__ import annotations

import importlib

from tfstiffness.engine.rules._embedding import (
    position_embedding_rule,
    reversible_embedding_rule,
    watch_reversible,
)
from tfstiffness.engine.rules._linear import plain
from tfstiffness.engine.rules._normalization import per_example_vjp
from tfstiffness.engine.rules._registry import register

# RMS-style normalisations (per-example VJP): the generic modelling layer and those of the
# model families that define their own.
NORMALIZATIONS = (
    "keras_hub.src.layers.modeling.rms_normalization.RMSNormalization",
    "keras_hub.src.models.gemma.rms_normalization.RMSNormalization",
    "keras_hub.src.models.gemma3.gemma3_layers.RMSNormalization",
    "keras_hub.src.models.llama.llama_layernorm.LlamaLayerNorm",
    "keras_hub.src.models.mistral.mistral_layer_norm.MistralLayerNormalization",
    "keras_hub.src.models.qwen.qwen_layernorm.QwenLayerNorm",
    "keras_hub.src.models.phi3.phi3_layernorm.Phi3LayerNorm",
    "keras_hub.src.models.t5.t5_layer_norm.T5LayerNorm",
)


def _class(path: str):
    """The class at a dotted path, or None where this keras_hub version lacks it."""
    module, name = path.rsplit(".", 1)
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def registered_normalizations() -> list[type]:
    return [cls for cls in map(_class, NORMALIZATIONS) if cls is not None]


for _cls in registered_normalizations():
    register(_cls, per_example_vjp)
_position = _class("keras_hub.src.layers.modeling.position_embedding.PositionEmbedding")
if _position is not None:
    register(_position, position_embedding_rule)
_reversible = _class("keras_hub.src.layers.modeling.reversible_embedding.ReversibleEmbedding")
if _reversible is not None:
    register(_reversible, reversible_embedding_rule, applies=plain, watch=watch_reversible)
