"""Compact per-block representations of per-example gradients, and their Gram products.

A *factor* stands for the per-example gradients of one parameter group on one block of
examples without necessarily holding them. `gram(a, b)` gives `G[i, j] = g_i . g_j` between
two blocks, `sq_norms(a)` gives `|g_i|^2`. The forms:

- `Materialized(g)`: the gradients themselves, [n, P].
- `Outer(a, b)`: `g_i = sum_t a_it (x) b_it` for a linear map (Dense, Conv via patches,
  EinsumDense), with a [n, T, d] the layer's input and b [n, T, p] the loss gradient at its
  output. `G_ij = sum_{t,s} (a_it . a_js)(b_it . b_js)`; for T = 1 that is `(A A^T) * (B B^T)`.
- `TokenMatch(tokens, b)`: an embedding table, `G_ij = sum_{t,s} [tok_it == tok_js] b_it . b_js`,
  computed by joining equal tokens (work proportional to the matching pairs).

Each builder below picks the cheaper of the pairwise form and materialisation, by cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

# Largest intermediate (in float32 elements) formed in one pairwise step: bounds memory per tile.
_MAX_PAIRWISE_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class Materialized:
    g: tf.Tensor  # [n, P]

    @property
    def size(self) -> int:
        return int(self.g.shape[0])


@dataclass(frozen=True)
class Outer:
    a: tf.Tensor  # [n, T, d]
    b: tf.Tensor  # [n, T, p]

    @property
    def size(self) -> int:
        return int(self.a.shape[0])


@dataclass(frozen=True)
class TokenMatch:
    tokens: tf.Tensor  # [n, T] int
    b: tf.Tensor  # [n, T, D]

    @property
    def size(self) -> int:
        return int(self.tokens.shape[0])


Factor = Materialized | Outer | TokenMatch


def pairwise_is_cheaper(positions: int, d: int, p: int) -> bool:
    """For `g_i = sum_t a_it (x) b_it` (a: d features, b: p): is the pairwise form cheaper?

    Per pair of examples, pairwise costs T^2 (d + p), materialised costs d p (plus a one-off
    n T d p to build, which the pairwise form's O(n^2) terms dominate at scale).
    """
    return positions * positions * (d + p) <= d * p


def linear_factor(a: tf.Tensor, b: tf.Tensor, bias: bool = False) -> Factor:
    """Factor of `g_i = sum_t a_it (x) b_it` (a [n, T, d], b [n, T, p]), cheapest form.

    With `bias`, the layer also adds a bias, whose gradient is `sum_t b_it`.
    """
    _, t, d = a.shape
    p = b.shape[-1]
    d_in = d + 1 if bias else d
    if pairwise_is_cheaper(t, d_in, p):
        # The bias is the kernel row of a constant-1 input: one factor carries both.
        return _balanced(tf.concat([a, tf.ones_like(a[..., :1])], -1) if bias else a, b)
    g = tf.reshape(tf.einsum("ntd,ntp->ndp", a, b), [-1, d * p])
    # Bias columns appended to the materialised kernel: no copy of a (conv patches are big).
    return Materialized(tf.concat([g, tf.reduce_sum(b, 1)], 1) if bias else g)


def _balanced(a: tf.Tensor, b: tf.Tensor) -> Outer:
    """`Outer(a / s, b * s)`, s per example a power of two near max |a_i|: the same gradient
    sum_t a_it (x) b_it, exactly, but products a.a and b.b that overflow only if it does.

    Without it, large but finite activations feeding a layer with zero backpropagated
    signal (a dead ReLU layer) give a.a = inf and b.b = 0, so inf x 0 = NaN for a gradient
    that is exactly zero.
    """
    top = tf.reduce_max(tf.abs(a), axis=[1, 2], keepdims=True)
    scale = tf.where(top > 0, tf.pow(tf.constant(2.0, a.dtype), tf.floor(
        tf.math.log(tf.where(top > 0, top, 1)) / tf.math.log(tf.constant(2.0, a.dtype)))), 1)
    return Outer(a / scale, b * tf.cast(scale, b.dtype))


def embedding_factor(tokens: tf.Tensor, b: tf.Tensor, vocab_size: int) -> Factor:
    """Factor of an embedding table's gradient: rows `tokens` [n, T] receive b [n, T, D]."""
    n, t, dim = b.shape
    if vocab_size > t:  # a sparse table: join equal tokens (see `_token_gram`)
        return TokenMatch(tf.cast(tokens, tf.int32), b)
    # Few distinct rows (e.g. position embeddings): scatter into dense per-example tables.
    ids = tf.cast(tokens, tf.int32) + vocab_size * tf.range(n, dtype=tf.int32)[:, None]
    table = tf.math.unsorted_segment_sum(tf.reshape(b, [-1, dim]), tf.reshape(ids, [-1]),
                                         n * vocab_size)
    return Materialized(tf.reshape(table, [n, vocab_size * dim]))


def _row_chunks(n: int, per_row_elements: int):
    step = max(1, _MAX_PAIRWISE_ELEMENTS // max(per_row_elements, 1))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _self_product(m: tf.Tensor) -> tf.Tensor:
    """`m m^T`, symmetric: three of the four half-blocks, a quarter fewer flops."""
    h = m.shape[0] // 2
    if h < 32:
        return tf.matmul(m, m, transpose_b=True)
    top, bottom = m[:h], m[h:]
    cross = tf.matmul(top, bottom, transpose_b=True)
    return tf.concat([
        tf.concat([tf.matmul(top, top, transpose_b=True), cross], 1),
        tf.concat([tf.transpose(cross), tf.matmul(bottom, bottom, transpose_b=True)], 1)], 0)


def _product(m1: tf.Tensor, m2: tf.Tensor, same: bool) -> tf.Tensor:
    return _self_product(m1) if same else tf.matmul(m1, m2, transpose_b=True)


def gram(f1: Factor, f2: Factor, same: bool = False) -> tf.Tensor:
    """`[n1, n2]` Gram block between two factors of the same parameter group.

    `same` says both are the same block (a diagonal block), whose Gram is symmetric.
    """
    if isinstance(f1, Materialized):
        return _product(f1.g, f2.g, same)
    if isinstance(f1, Outer):
        n2, t2 = f2.a.shape[0], f2.a.shape[1]
        if f1.a.shape[1] == 1 and t2 == 1:
            return _product(f1.a[:, 0], f2.a[:, 0], same) * _product(f1.b[:, 0], f2.b[:, 0],
                                                                    same)
        t1 = f1.a.shape[1]
        parts = []
        for rows in _row_chunks(f1.size, t1 * n2 * t2):
            aa = tf.einsum("itd,jsd->ijts", f1.a[rows], f2.a)
            bb = tf.einsum("itp,jsp->ijts", f1.b[rows], f2.b)
            parts.append(tf.reduce_sum(aa * bb, axis=[2, 3]))
        return tf.concat(parts, 0)
    return _token_gram(f1, f2)


# Token pairs whose dot products are formed at once in `_token_gram`: bounds its memory.
_PAIRS_PER_STEP = 1 << 18


def _unique_entries(f: TokenMatch):
    """Each example's distinct tokens with their summed gradients: (rows, tokens, g), sorted
    by token. A token repeated in an example is one row of its gradient table."""
    n, t = f.tokens.shape
    base = tf.cast(tf.reduce_max(f.tokens), tf.int64) + 1
    key = tf.cast(tf.range(n)[:, None], tf.int64) * base + tf.cast(f.tokens, tf.int64)
    unique, index = tf.unique(tf.reshape(key, [-1]))
    g = tf.math.unsorted_segment_sum(tf.reshape(f.b, [n * t, -1]), index, tf.size(unique))
    order = tf.argsort(unique % base, stable=True)
    unique = tf.gather(unique, order)
    return (tf.cast(unique // base, tf.int32), tf.cast(unique % base, tf.int32),
            tf.gather(g, order))


def _token_gram(f1: TokenMatch, f2: TokenMatch) -> tf.Tensor:
    """`G_ij = sum over tokens v in both examples of g_iv . g_jv`, by a sorted join.

    Work is proportional to the number of matching (example, token) pairs, not to the
    vocabulary or to T^2: for sparse tables, far less than either dense form.
    """
    rows1, tokens1, g1 = _unique_entries(f1)
    rows2, tokens2, g2 = _unique_entries(f2)
    lo = tf.searchsorted(tokens2, tokens1, side="left")
    counts = tf.searchsorted(tokens2, tokens1, side="right") - lo
    ends = tf.cumsum(counts)
    total = ends[-1] if ends.shape[0] != 0 else tf.constant(0, ends.dtype)
    shape = [f1.size, f2.size]

    def step(start, gram):
        pair = tf.range(start, tf.minimum(start + _PAIRS_PER_STEP, tf.cast(total, tf.int32)))
        entry = tf.searchsorted(ends, pair, side="right")  # which entry of set 1
        partner = tf.gather(lo, entry) + pair - (tf.gather(ends, entry) - tf.gather(counts, entry))
        dots = tf.reduce_sum(tf.gather(g1, entry) * tf.gather(g2, partner), axis=-1)
        where = tf.stack([tf.gather(rows1, entry), tf.gather(rows2, partner)], axis=1)
        return start + _PAIRS_PER_STEP, tf.tensor_scatter_nd_add(gram, where, dots)

    _, gram = tf.while_loop(lambda start, _: start < tf.cast(total, tf.int32), step,
                            (tf.constant(0), tf.zeros(shape, g1.dtype)))
    return gram


def sq_norms(f: Factor) -> tf.Tensor:
    """`[n]` squared gradient norms, `|g_i|^2`."""
    if isinstance(f, Materialized):
        return tf.reduce_sum(tf.square(f.g), 1)
    if isinstance(f, Outer):
        aa = tf.einsum("itd,isd->its", f.a, f.a)
        return tf.reduce_sum(aa * tf.einsum("itp,isp->its", f.b, f.b), [1, 2])
    rows, _, g = _unique_entries(f)
    return tf.math.unsorted_segment_sum(tf.reduce_sum(tf.square(g), 1), rows, f.size)


def nbytes(f: Factor) -> int:
    """Bytes held by a factor's tensors (from static shapes: no TensorFlow op per call)."""
    return sum(t.shape.num_elements() * t.dtype.size for t in vars(f).values())
