"""Rules for Dense and EinsumDense: `z = a W + c` over positions, `dW_i = sum_t a_it (x) b_it`."""

from __future__ import annotations

import string
from dataclasses import dataclass

import keras
import tensorflow as tf

from tfstiffness.engine import _factors
from tfstiffness.engine.rules._registry import LayerCall, batch_rows, concat_positions, register


def plain(layer) -> bool:
    """False for LoRA-enabled or quantised layers, whose kernels are not the plain kernel."""
    return not getattr(layer, "lora_enabled", False) and not getattr(layer, "quantization_mode",
                                                                      None)


def dense_rule(layer, calls: list[LayerCall]) -> list[_factors.Factor]:
    a = concat_positions([batch_rows(c.args[0]) for c in calls])
    b = concat_positions([batch_rows(c.grad) for c in calls])
    return [_factors.linear_factor(a, b, bias=layer.bias is not None)]


@dataclass(frozen=True)
class EinsumLayout:
    inp: str
    out: str
    rows: str  # input axes kept in the output (batch first): positions
    contracted: str  # input axes summed against the kernel: the "d" of a
    kernel_free: str  # kernel axes kept in the output: the "p" of b


def einsum_layout(equation: str, input_rank: int) -> EinsumLayout | None:
    """Reads `inp,ker->out` as a Dense map over positions, or None if it is not one."""
    lhs, out = equation.split("->")
    inp, ker = lhs.split(",")
    if "..." in inp:
        spare = [c for c in string.ascii_letters if c not in equation]
        ellipsis = "".join(spare[: input_rank - (len(inp) - 3)])
        inp, out = inp.replace("...", ellipsis), out.replace("...", ellipsis)
    if "." in ker or "." in out or len(inp) != input_rank:
        return None
    batch = inp[0]
    rows = "".join(c for c in inp if c not in ker and c in out)
    contracted = "".join(c for c in inp if c in ker and c not in out)
    kernel_free = "".join(c for c in ker if c not in inp and c in out)
    covers = sorted(rows + contracted) == sorted(inp) and sorted(contracted + kernel_free) == \
        sorted(ker) and sorted(rows + kernel_free) == sorted(out)
    if not covers or batch in ker or not rows.startswith(batch):
        return None
    return EinsumLayout(inp, out, rows, contracted, kernel_free)


def _transpose_to(t: tf.Tensor, source: str, target: str) -> tf.Tensor:
    return tf.transpose(t, [source.index(c) for c in target])


def einsum_dense_rule(layer, calls: list[LayerCall]) -> list[_factors.Factor]:
    layout = einsum_layout(layer.equation, len(calls[0].args[0].shape))
    d = len(layout.contracted)
    p = len(layout.kernel_free)

    def as_matrix(t, source, target, k):
        t = _transpose_to(t, source, target)
        return tf.reshape(t, [tf.shape(t)[0], -1, int(tf.reduce_prod(t.shape[-k:]))])

    a = concat_positions([as_matrix(c.args[0], layout.inp, layout.rows + layout.contracted, d)
                          for c in calls])
    b = concat_positions([as_matrix(c.grad, layout.out, layout.rows + layout.kernel_free, p)
                          for c in calls])
    factors: list[_factors.Factor] = [_factors.linear_factor(a, b)]
    if layer.bias is not None:
        # The bias spans `bias_axes` and broadcasts over the rest: sum b over the rest.
        summed = [i for i, c in enumerate(layout.out) if i > 0 and c not in layer.bias_axes]
        per_call = [tf.reshape(tf.reduce_sum(c.grad, axis=summed), [tf.shape(c.grad)[0], -1])
                    for c in calls]
        factors.append(_factors.Materialized(tf.add_n(per_call)))
    return factors


def _einsum_applies(layer) -> bool:
    # The layout needs the input rank (set when built); an equation that is not a Dense map
    # over positions gets no rule.
    rank = getattr(layer.input_spec, "ndim", None)
    return plain(layer) and rank is not None and einsum_layout(layer.equation, rank) is not None


register(keras.layers.Dense, dense_rule, pre_activation=True, applies=plain)
register(keras.layers.EinsumDense, einsum_dense_rule, pre_activation=True,
         applies=_einsum_applies)
