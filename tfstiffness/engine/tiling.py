"""Gram blocks of per-example gradients, produced tile by tile under a memory budget.

Rows and columns are split into blocks of `block` examples. A *band* of row blocks is held
(its factors computed once) while every column block streams past; the band is as large as
`cache_bytes` allows, so when all factors fit, every block is computed exactly once, and when
they don't, memory stays O(cache_bytes + block^2) whatever N is. Each pair of blocks is
independent work: with a `tf.distribute.Strategy`, pairs are spread over its replicas.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from tfstiffness.engine import _factors, structure

Factors = dict[str, list[_factors.Factor]]
FactorSource = Callable[[Any, Any], Factors]  # (inputs, labels), each possibly nested


@dataclass
class GramBlock:
    """`G[rows, cols]` per layer, with both blocks' per-layer squared gradient norms.

    For one set only blocks with `i <= j` are produced; `mirrored` says the block below the
    diagonal, `G[cols, rows] = G[rows, cols].T`, is implied.
    """

    index: tuple[int, int]
    rows: slice
    cols: slice
    by_layer: dict[str, np.ndarray]
    row_sq_norms: dict[str, np.ndarray]
    col_sq_norms: dict[str, np.ndarray]
    mirrored: bool

    @property
    def total(self) -> np.ndarray:
        return sum(self.by_layer.values())


def block_slices(n: int, block: int) -> list[slice]:
    return [slice(s, min(s + block, n)) for s in range(0, n, block)]


class BlockFactors:
    """Computes one set's block factors: `factors(i)` are block i's.

    Each block is padded to `block` rows (repeating its first example), so that every traced
    function sees one shape and is traced once; Gram blocks are cut back to the real rows.
    x and y may be nested (lists or dicts). `slices[i]` are block i's rows.
    """

    def __init__(self, source: FactorSource, x, y, block: int):
        self.source, self.x, self.y, self.block = source, x, y, block
        self.slices = block_slices(structure.num_examples(x), block)

    def padded_inputs(self, index: int) -> tuple[Any, Any, int]:
        """Block `index`'s (inputs, labels) padded to `block` rows, and its real row count."""
        rows = self.slices[index]
        xb, yb = (structure.pad_rows(structure.take(t, rows), self.block)
                  for t in (self.x, self.y))
        return xb, yb, rows.stop - rows.start

    def __call__(self, index: int) -> Factors:
        xb, yb, _ = self.padded_inputs(index)
        return self.source(xb, yb)


def _factors_bytes(factors: Factors) -> int:
    return sum(_factors.nbytes(f) for fs in factors.values() for f in fs)


def pair_gram(fi: Factors, fj: Factors, same: bool = False) -> dict[str, tf.Tensor]:
    return {key: tf.add_n([_factors.gram(a, b, same) for a, b in zip(fi[key], fj[key])])
            for key in fi}


def sq_norms(factors: Factors) -> dict[str, tf.Tensor]:
    return {key: tf.add_n([_factors.sq_norms(f) for f in fs]) for key, fs in factors.items()}


_KINDS = {cls.__name__: cls for cls in (_factors.Materialized, _factors.Outer,
                                        _factors.TokenMatch)}


def _encode(factors: Factors):
    """Factors as nested tuples that tf.function accepts (the kind name is a static value)."""
    return {key: tuple((type(f).__name__, tuple(vars(f).values())) for f in fs)
            for key, fs in factors.items()}


def _decode(encoded) -> Factors:
    return {key: [_KINDS[kind](*tensors) for kind, tensors in fs] for key, fs in encoded.items()}


def _gram_and_norms_of(encoded_i, encoded_j, same: bool):
    # One graph per pair instead of dozens of eager ops: on small blocks the per-op
    # overhead was as large as the arithmetic.
    fi, fj = _decode(encoded_i), _decode(encoded_j)
    sq_i = sq_norms(fi)
    return pair_gram(fi, fj, same), sq_i, sq_i if same else sq_norms(fj)


def _traced_pair_function():
    # Static shapes: one trace per (diagonal or not) and block shape. A partial has no code
    # object, so TensorFlow counts each source's traces on their own: measuring several
    # models in turn is not "frequent retracing".
    return tf.function(functools.partial(_gram_and_norms_of))


_gram_and_norms = _traced_pair_function()
_PAIR_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _pair_function(source: FactorSource):
    try:
        function = _PAIR_FUNCTIONS.get(source)
        if function is None:
            function = _PAIR_FUNCTIONS[source] = _traced_pair_function()
        return function
    except TypeError:  # a source that cannot be weakly referenced
        return _gram_and_norms


def gram_block(index: tuple[int, int], rows: slice, cols: slice, fi: Factors, fj: Factors,
               mirrored: bool, pair_function=_gram_and_norms) -> GramBlock:
    """The Gram block `G[rows, cols]` of two blocks' factors (padding cut off).

    `fi is fj` marks a diagonal block of one set (its Gram is symmetric); `pair_function`
    is the traced pair computation (one per factor source, `gram_blocks` picks it).
    """
    same = fi is fj  # a diagonal block of one set: its Gram is symmetric
    grams, sq_i, sq_j = pair_function(_encode(fi), _encode(fj), same)
    ni, nj = rows.stop - rows.start, cols.stop - cols.start  # cut the padding off
    return GramBlock(index, rows, cols, {k: np.asarray(g)[:ni, :nj] for k, g in grams.items()},
                     {k: np.asarray(v)[:ni] for k, v in sq_i.items()},
                     {k: np.asarray(v)[:nj] for k, v in sq_j.items()}, mirrored)


def gram_blocks(source: FactorSource, x, y, x2=None, y2=None, *, block: int,
                cache_bytes: int, done: frozenset = frozenset(),
                strategy: tf.distribute.Strategy | None = None) -> Iterator[GramBlock]:
    """Yields every Gram block not in `done` (pairs of block indices), in a fixed order.

    Under a strategy, every worker of the cluster yields every block (the replicas' blocks
    are gathered); `local_steps` instead keeps each worker's blocks where they were computed.
    """
    rows = BlockFactors(source, x, y, block)
    cols = rows if x2 is None else BlockFactors(source, x2, y2, block)
    one_set = x2 is None
    if strategy is not None:
        for step in _distributed(strategy, rows, cols, one_set, done, gather=True):
            yield from step
        return
    pair_function = _pair_function(source)
    first = rows(0)
    band = max(1, cache_bytes // max(_factors_bytes(first), 1))
    num_rows, num_cols = len(rows.slices), len(cols.slices)
    for start in range(0, num_rows, band):
        band_rows = range(start, min(num_rows, start + band))
        todo = [(i, j) for j in (range(start, num_cols) if one_set else range(num_cols))
                for i in band_rows if not (one_set and j < i) and (i, j) not in done]
        if not todo:
            continue
        held = {i: first if i == 0 else rows(i) for i in band_rows
                if any(p[0] == i for p in todo)}
        for j in dict.fromkeys(j for _, j in todo):
            fj = held[j] if one_set and j in held else cols(j)
            for i in (i for i, jj in todo if jj == j):
                yield gram_block((i, j), rows.slices[i], cols.slices[j], held[i], fj,
                             mirrored=one_set and i != j, pair_function=pair_function)
        del held
    del first


def num_block_pairs(n: int, m: int, block: int, one_set: bool) -> int:
    """How many Gram blocks a Gram of [n, m] examples has: `len(block_pairs(...))`.

    Example:
        >>> num_block_pairs(10, 10, 4, one_set=True), num_block_pairs(10, 5, 4, one_set=False)
        (6, 6)
    """
    rows, cols = -(-n // block), -(-m // block)
    return rows * (rows + 1) // 2 if one_set else rows * cols


def block_pairs(n: int, m: int, block: int, one_set: bool) -> list[tuple[int, int]]:
    """Every pair of blocks (i, j) a Gram of [n, m] examples needs (i <= j for one set), in
    the order the distributed path visits them."""
    num_rows, num_cols = -(-n // block), -(-m // block)
    return [(i, j) for i in range(num_rows) for j in range(num_cols)
            if not (one_set and j < i)]


def local_steps(source: FactorSource, x, y, x2=None, y2=None, *, block: int,
                cache_bytes: int, strategy: tf.distribute.Strategy,
                done: frozenset = frozenset()) -> Iterator[list[GramBlock]]:
    """The Gram blocks this worker computes, as lists, one per step of the cluster.

    Every worker yields the same number of steps (some of them empty lists), so that workers
    counting steps agree on when to exchange their sums. Nothing crosses workers: each keeps
    the blocks it computed, and aggregates are reduced afterwards.

    With one replica per worker (a CPU or one GPU per machine, the common cluster), the
    column blocks are dealt to the workers, balancing their pairs, and each worker runs the
    one-process tiling loop over its own pairs: row blocks held in a band of `cache_bytes`,
    each of its column blocks computed once per band, the same arithmetic as one process.
    With several replicas on a worker (MirroredStrategy over GPUs), a step gives one pair to
    every replica of every worker, round-robin in `block_pairs` order (`_distributed`).
    """
    local_ids = _local_replica_ids(strategy)
    if len(local_ids) > 1:
        rows = BlockFactors(source, x, y, block)
        cols = rows if x2 is None else BlockFactors(source, x2, y2, block)
        yield from _distributed(strategy, rows, cols, x2 is None, done, gather=False)
        return
    n = structure.num_examples(x)
    m = n if x2 is None else structure.num_examples(x2)
    pairs = [p for p in block_pairs(n, m, block, x2 is None) if p not in done]
    workers = strategy.num_replicas_in_sync  # one replica each: replica id = worker rank
    owners = deal_columns(pairs, workers)
    mine = {p for p in pairs if owners[p[1]] == local_ids[0]}
    loads = [sum(owners[j] == w for _, j in pairs) for w in range(workers)]
    count = 0
    for b in gram_blocks(source, x, y, x2, y2, block=block, cache_bytes=cache_bytes,
                         done=frozenset(done) | (frozenset(pairs) - mine)):
        count += 1
        yield [b]
    for _ in range(max(loads) - count):
        yield []


def deal_columns(pairs: list[tuple[int, int]], workers: int) -> dict[int, int]:
    """Column block -> worker, balancing the workers' pairs (largest columns first, each to
    the least loaded worker; ties to the lower worker): the same on every worker.

    Example:
        >>> deal_columns([(0, 0), (0, 1), (1, 1), (0, 2), (1, 2), (2, 2)], 2)
        {2: 0, 1: 1, 0: 1}
    """
    sizes: dict[int, int] = {}
    for _, j in pairs:
        sizes[j] = sizes.get(j, 0) + 1
    loads = [0] * workers
    owners = {}
    for j in sorted(sizes, key=lambda j: (-sizes[j], j)):
        worker = min(range(workers), key=lambda w: (loads[w], w))
        owners[j] = worker
        loads[worker] += sizes[j]
    return owners


def _distributed(strategy, rows: BlockFactors, cols: BlockFactors, one_set: bool,
                 done: frozenset, gather: bool) -> Iterator[list[GramBlock]]:
    """Each replica computes both blocks' factors and their Gram for one pair at a time.

    Factors are not shared between replicas (each pair recomputes its two blocks), which
    trades compute for no communication beyond the results: with `gather`, every replica's
    [block, block] results are gathered on every worker; without, each worker keeps its own.
    """
    n, m = structure.num_examples(rows.x), structure.num_examples(cols.x)
    pairs = [p for p in block_pairs(n, m, rows.block, one_set) if p not in done]
    replicas = strategy.num_replicas_in_sync
    block = rows.block
    rows(0)  # one eager call first: a source may check itself there (the ghost path does)
    local_ids = _local_replica_ids(strategy)

    def on_replica(xi, yi, xj, yj, pair):
        fi, fj = rows.source(xi, yi), cols.source(xj, yj)
        return pair_gram(fi, fj), sq_norms(fi), sq_norms(fj), pair

    @tf.function  # one graph for all replicas (and the gather), traced once
    def step(values):
        out = strategy.run(on_replica, args=values)
        if gather:  # concatenated along axis 0: replica r at [r*block, (r+1)*block)
            return tf.nest.map_structure(lambda t: strategy.gather(t, axis=0), out)
        # This worker's replicas only, stacked: [local replicas, ...] per result.
        return tf.nest.map_structure(
            lambda t: tf.stack(strategy.experimental_local_results(t)), out)

    def replica_block(pair_id: int, grams, sq_i, sq_j, mine: slice) -> GramBlock:
        i, j = pairs[pair_id]
        ni = rows.slices[i].stop - rows.slices[i].start
        nj = cols.slices[j].stop - cols.slices[j].start
        return GramBlock((i, j), rows.slices[i], cols.slices[j],
                         {k: np.asarray(v)[mine][:ni, :nj] for k, v in grams.items()},
                         {k: np.asarray(v)[mine][:ni] for k, v in sq_i.items()},
                         {k: np.asarray(v)[mine][:nj] for k, v in sq_j.items()},
                         mirrored=one_set and i != j)

    for start in range(0, len(pairs), replicas):
        group = list(range(start, min(start + replicas, len(pairs))))
        # Idle replicas redo the last pair, marked -1 so that nobody counts it twice.
        ids = group + [-1] * (replicas - len(group))
        if not gather and all(ids[r] < 0 for r in local_ids):
            yield []
            continue

        def replica_inputs(ctx, ids=ids, last=group[-1]):
            pair_id = ids[ctx.replica_id_in_sync_group]
            i, j = pairs[last if pair_id < 0 else pair_id]
            return tf.nest.map_structure(tf.constant, rows.padded_inputs(i)[:2]
                                         + cols.padded_inputs(j)[:2] + (np.array([pair_id]),))

        values = strategy.experimental_distribute_values_from_function(replica_inputs)
        grams, sq_i, sq_j, computed = tf.nest.map_structure(np.asarray, step(values))
        if gather:
            yield [replica_block(pair_id, grams, sq_i, sq_j, slice(r * block, (r + 1) * block))
                   for r, pair_id in enumerate(group)]
        else:
            yield [replica_block(int(pair_id), grams, sq_i, sq_j, r)
                   for r, pair_id in enumerate(computed.reshape(-1)) if pair_id >= 0]


def _local_replica_ids(strategy: tf.distribute.Strategy) -> list[int]:
    """Ids (among all the cluster's replicas) of the replicas on this worker."""
    ids: list[int] = []

    def record(ctx):
        ids.append(ctx.replica_id_in_sync_group)
        return tf.constant(0)

    strategy.experimental_distribute_values_from_function(record)
    return ids
