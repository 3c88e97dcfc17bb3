"""Structured ("ghost") rules: how each layer type's per-example gradients are factored.

The ghost path of `gradient_gram` runs one batched forward and one backward pass per block
of examples and asks each layer's rule for *factors* of its per-example gradients. Layers
with a rule here: Dense, EinsumDense (so MultiHeadAttention), Conv1D/2D/3D (grouped too),
DepthwiseConv1D/2D, SeparableConv1D/2D, Conv1D/2D/3DTranspose, Embedding,
ReversibleEmbedding (tied output projections included), LayerNormalization,
BatchNormalization, GroupNormalization, RMSNormalization, PReLU, ConvNeXt's LayerScale
and, when keras_hub is in use, its PositionEmbedding, ReversibleEmbedding and RMS-style
normalisations. Any other layer's variables go through the generic per-example path (`gram.fallback_layers` lists them).

`register_rule` makes a layer of your own fast; the factor forms a rule returns:

- `Materialized(g)`: the per-example gradients themselves, g [n, P].
- `Outer(a, b)`: `g_i = sum_t a_it (x) b_it`, a [n, T, d], b [n, T, p] (a linear map over
  positions); `linear_factor(a, b, bias)` returns whichever of `Outer` and `Materialized`
  is cheaper for the Gram.
- `TokenMatch(tokens, b)`: a table whose rows `tokens` [n, T] receive b [n, T, D];
  `embedding_factor(tokens, b, vocab_size)` picks the cheaper form.
- `per_example_vjp`: a ready rule for few-parameter layers (per-example VJP through the
  layer alone).
"""

from tfstiffness.engine._factors import (
    Materialized,
    Outer,
    TokenMatch,
    embedding_factor,
    linear_factor,
)
from tfstiffness.engine.rules import (  # noqa: F401 (each registers its rules)
    _conv,
    _elementwise,
    _embedding,
    _linear,
    _normalization,
    _recurrent,
)
from tfstiffness.engine.rules._normalization import per_example_vjp
from tfstiffness.engine.rules._registry import LayerCall, register_rule, rule_for

__all__ = [
    "LayerCall",
    "Materialized",
    "Outer",
    "TokenMatch",
    "embedding_factor",
    "linear_factor",
    "per_example_vjp",
    "register_rule",
    "rule_for",
]
