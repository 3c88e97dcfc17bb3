"""Streaming class stiffness of 50,000 CIFAR-shaped examples on the paper's CNN.

    python benchmarks/stream_50k.py [--n 50000] [--block 512] [--distances]

Runs `stiffness_summary` (sign and cosine class matrices, 100 classes) in a fresh process and
prints its time and peak RSS. The N x N Gram (10 GB at N = 50,000) is never formed. Inputs
are random normal images with random labels: the cost does not depend on the values.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._measure import report, run_child, timed


def child(n: int, block: int, distances: bool) -> dict:
    import keras
    import numpy as np

    import tfstiffness as tfs
    from tfstiffness import models

    keras.utils.set_random_seed(0)
    model = models.paper_cnn((32, 32, 3), 100)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 100, n)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    result = {}

    def run():
        summary = tfs.stiffness_summary(model, x, y, loss=loss, block_size=block, verbose=True,
                                        distance_edges=None if distances else ())
        result.update(within=summary.within, between=summary.between,
                      blocks=summary.blocks_total)

    result["seconds"] = timed(run)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--block", type=int, default=512)
    parser.add_argument("--distances", action="store_true")
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        report(child(args.n, args.block, args.distances))
        return
    extra = ["--distances"] if args.distances else []
    r = run_child(__file__, "--child", "--n", str(args.n), "--block", str(args.block), *extra)
    print(f"paper CNN, N={args.n}, block {args.block}, {r['blocks']} Gram blocks"
          f"{' + distance histograms' if args.distances else ''}: {r['seconds']:.0f}s, "
          f"peak RSS {r['peak_rss_gb']:.2f} GB; cosine within {r['within']['cosine']:+.4f}, "
          f"between {r['between']['cosine']:+.4f}")


if __name__ == "__main__":
    main()
