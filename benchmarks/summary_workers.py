"""The streaming summary on one process vs a local MultiWorkerMirroredStrategy cluster.

    python benchmarks/summary_workers.py [--n 20000] [--block 512] [--workers 2]
                                         [--strategies none,multi_worker]

The paper's CNN (`models.paper_cnn((32, 32, 3), 10)`, the same seeded weights in every
process) on `--n` random CIFAR-shaped images with random labels; sign and cosine class
matrices, distance histograms and the alignment family. Each run is a fresh process (the
cluster: `--workers` processes on 127.0.0.1 with their TF_CONFIG) that reports the seconds of
its `stiffness_summary` call and its own peak RSS (VmHWM). The cluster's numbers must equal
the single process's (sign exactly, cosine to 1e-6). On a machine with fewer cores than
workers the cluster is not faster: the point is the agreement, the division of the blocks,
and that each worker's memory stays bounded (it holds the data, the model and a few blocks).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._measure import report, run_child


def child(strategy_name: str, n: int, block: int) -> dict:
    from tfstiffness.distributed import cluster

    strategy = cluster.make_strategy(strategy_name)  # first, before other TensorFlow work
    import keras
    import numpy as np

    import tfstiffness as tfs
    from tfstiffness import models

    keras.utils.set_random_seed(0)
    model = models.paper_cnn((32, 32, 3), 10)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, n)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    start = time.perf_counter()
    summary = tfs.stiffness_summary(model, x, y, loss=loss, block_size=block,
                                    strategy=strategy, verbose=False)
    return {"seconds": time.perf_counter() - start, "chief": cluster.is_chief(strategy),
            "blocks_by_worker": list(summary.blocks_by_worker),
            "sign": summary.class_matrix["sign"].tolist(),
            "cosine": summary.class_matrix["cosine"].tolist(),
            "curve": np.nan_to_num(summary.distance_curve["cosine"].means, nan=9.0).tolist(),
            "m_coherence": summary.alignment.m_coherence()}


def cluster_run(workers: int, n: int, block: int) -> tuple[list[dict], float]:
    """Every worker's report, in worker order, and the launcher's wall time."""
    from tfstiffness.distributed import local_cluster

    out = io.StringIO()
    start = time.perf_counter()
    status = local_cluster.run([sys.executable, __file__, "--child", "--strategy",
                                "multi_worker", "--n", str(n), "--block", str(block)],
                               workers, output=out, announce=False)
    wall = time.perf_counter() - start
    if status:
        raise SystemExit(f"the cluster failed (status {status}):\n{out.getvalue()[-4000:]}")
    reports = {}
    for line in out.getvalue().splitlines():
        match = re.match(r"\[worker (\d+)\] (\{.*\})$", line)
        if match:
            reports[int(match.group(1))] = json.loads(match.group(2))
    return [reports[i] for i in range(workers)], wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--block", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strategies", default="none,multi_worker")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--strategy", default="none")
    args = parser.parse_args()
    if args.child:
        report(child(args.strategy, args.n, args.block))
        return
    import numpy as np

    print(f"paper CNN 32x32x3 -> 10, N={args.n}, block {args.block}; "
          f"{os.cpu_count()} CPUs", flush=True)
    runs = {}
    for name in args.strategies.split(","):
        if name == "multi_worker":
            start = time.perf_counter()
            reports, wall = cluster_run(args.workers, args.n, args.block)
            label = f"{args.workers} local workers (MultiWorkerMirroredStrategy)"
        else:
            start = time.perf_counter()
            reports = [run_child(__file__, "--child", "--strategy", name, "--n", str(args.n),
                                 "--block", str(args.block))]
            wall = time.perf_counter() - start
            label = "one process" + ("" if name == "none" else f" ({name})")
        runs[name] = reports
        print(f"{label}: wall {wall:.0f}s including start-up", flush=True)
        for i, r in enumerate(reports):
            computed = r["blocks_by_worker"][i] if len(reports) > 1 else sum(
                r["blocks_by_worker"])
            print(f"  process {i}{' (chief)' if r['chief'] else ''}: summary "
                  f"{r['seconds']:.1f}s, {computed} blocks computed, peak RSS "
                  f"{r['peak_rss_gb']:.2f} GB", flush=True)
    names = list(runs)
    base = runs[names[0]][0]
    for name in names[1:]:
        for i, r in enumerate(runs[name]):
            sign_equal = np.array_equal(np.array(r["sign"]), np.array(base["sign"]))
            cosine = np.nanmax(np.abs(np.array(r["cosine"]) - np.array(base["cosine"])))
            curve = np.max(np.abs(np.array(r["curve"]) - np.array(base["curve"])))
            print(f"{name} worker {i} vs {names[0]}: sign class matrix "
                  f"{'equal' if sign_equal else 'DIFFERENT'}, cosine max |diff| {cosine:.1e}, "
                  f"cosine-vs-distance max |diff| {curve:.1e}, m-coherence "
                  f"{r['m_coherence']:.6g} vs {base['m_coherence']:.6g}", flush=True)


if __name__ == "__main__":
    main()
