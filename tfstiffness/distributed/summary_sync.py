"""Workers of a `stiffness_summary` cluster agreeing on one run and one state.

`check_same_run` refuses a cluster whose workers measure different runs (by the digests of
each part of the run's fingerprint); `WorkerSync` exchanges and reduces the running sums of
every worker at checkpoints and at the end (sums, except the maxima and minima below).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from tfstiffness.distributed import cluster
from tfstiffness.engine import tiling


def check_same_run(strategy, fingerprint: dict[str, str]) -> None:
    """Refuses, on every worker, a cluster whose workers measure different runs."""
    parts = sorted(fingerprint)
    digests = [hashlib.blake2b(part.encode() + fingerprint[part].encode(),
                               digest_size=16).digest() for part in parts]
    mine = np.concatenate([[float(cluster.is_chief(strategy))]]
                          + [np.frombuffer(d, np.uint8) for d in digests])
    rows = cluster.gather_workers(strategy, mine)
    chief = int(np.flatnonzero(rows[:, 0] == 1.0)[0])
    differ = []
    for p, part in enumerate(parts):
        digest = slice(1 + 16 * p, 1 + 16 * (p + 1))
        workers = [w for w in range(len(rows))
                   if not np.array_equal(rows[w, digest], rows[chief, digest])]
        if workers:
            differ.append(f"{part} differs on worker(s) {workers} from the chief ({chief})")
    if differ:
        raise ValueError("strategy: the cluster's workers are not measuring the same run: "
                         f"{'; '.join(differ)}. Every worker must run the same command on the "
                         "same model and data (workers numbered in the cluster's order).")


# How each part of the state is reduced over workers (and over a resumed checkpoint): sums,
# except the entries below; "done" is a union.
_REDUCE = {"sq_norms": np.maximum, "sq_norms2": np.maximum,  # written, not added: 0 = unset
           "alignment/min_off_diagonal": np.minimum, "nbr_nearest": np.minimum,
           "alignment/min_off_diagonal_cosine": np.minimum}


class WorkerSync:
    """Exchanges and reduces accumulator states between the workers of a cluster.

    A state travels as one float64 vector: [is chief, blocks computed, steps to the next
    sync (the chief's proposal; 0: only at the end), every array raveled, `done` as a 0/1 mask
    over all pairs of blocks].
    """

    def __init__(self, strategy, acc: Any, chief: bool):
        self.strategy, self.acc, self.chief = strategy, acc, chief
        self.pairs = tiling.block_pairs(acc.n, acc.m, acc.block, acc.one_set)
        self.keys = sorted(k for k in acc.state if k != "done")
        self.computed, self.next_after, self.by_worker = 0, 0, ()

    def exchange(self, next_after: int) -> dict[str, np.ndarray]:
        """Every worker's state reduced; the chief keeps it, the others start from empty."""
        rows = cluster.gather_workers(self.strategy, self.pack(next_after))
        chief_row = int(np.flatnonzero(rows[:, 0] == 1.0)[0])
        self.next_after = int(rows[chief_row, 2])
        self.by_worker = tuple(int(c) for c in rows[:, 1])
        merged = self.reduce(rows)
        self.acc.state = merged if self.chief else self.acc.empty_state()
        return merged

    def pack(self, next_after: int) -> np.ndarray:
        st = self.acc.state
        done = np.zeros(len(self.pairs))
        index = {p: i for i, p in enumerate(self.pairs)}
        done[[index[tuple(p)] for p in st["done"]]] = 1.0
        return np.concatenate([[float(self.chief), self.computed, next_after]]
                              + [st[k].ravel().astype(np.float64) for k in self.keys]
                              + [done])

    def reduce(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The state of all blocks of all rows (packed states of disjoint sets of blocks)."""
        st = self.acc.state
        merged, offset = {}, 3
        for key in self.keys:
            size, shape = st[key].size, st[key].shape
            parts = rows[:, offset:offset + size]
            reduce = _REDUCE.get(key)
            value = reduce.reduce(parts, axis=0) if reduce is not None else parts.sum(0)
            merged[key] = value.reshape(shape).astype(st[key].dtype)
            offset += size
        finished = rows[:, offset:].max(0) > 0
        merged["done"] = np.array([self.pairs[i] for i in np.flatnonzero(finished)],
                                  np.int64).reshape(-1, 2)
        return merged
