"""One worker of a MultiWorkerMirroredStrategy cluster, for subprocess tests.

    TF_CONFIG=... python -m tests.support.multiworker_job MODEL.keras DATA.npz OUT_DIR
        [--checkpoint PATH] [--checkpoint_every SECONDS] [--perturb_worker I]

Creates the strategy from TF_CONFIG first, then runs `stiffness_summary` (and a small
`gradient_gram`) on the saved model and data and writes OUT_DIR/result_<task index>.npz.
`{index}` in the checkpoint path becomes the task index; `--perturb_worker I` changes one
input value on worker I (its data then differs from the others').
"""

import argparse
import json
import os
import sys
import warnings

from tfstiffness.distributed import cluster

SETTINGS = {"block_size": 5, "radius": 3.0, "fine_to_coarse": [0, 0, 1],
            "distance_edges": [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]}


def summary_arrays(summary) -> dict:
    """The numbers a test compares, as flat arrays."""
    import numpy as np

    out = {"blocks_by_worker": np.array(summary.blocks_by_worker),
           "blocks_resumed": summary.blocks_resumed, "blocks_total": summary.blocks_total,
           "sq_norms": summary.sq_norms, "neighbour_counts": summary.neighbour_counts,
           "m_coherence": summary.alignment.m_coherence(),
           "confusion": summary.alignment.gradient_confusion("cosine")}
    for kind in summary.kinds:
        out[f"class_matrix/{kind}"] = summary.class_matrix[kind]
        out[f"within/{kind}"] = summary.within[kind]
        out[f"between/{kind}"] = summary.between[kind]
        out[f"contrast/{kind}"] = summary.superclass_contrast[kind]
        out[f"curve/{kind}"] = summary.distance_curve[kind].means
        out[f"curve_counts/{kind}"] = summary.distance_curve[kind].counts
        out[f"neighbourhood/{kind}"] = summary.neighbourhood[kind]
    return out


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("out_dir")
    parser.add_argument("--checkpoint")
    parser.add_argument("--checkpoint_every", type=float, default=60.0)
    parser.add_argument("--perturb_worker", type=int, default=-1)
    args = parser.parse_args(argv[1:])
    strategy = cluster.make_strategy("multi_worker")  # first, before any other TF work
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]

    import keras
    import numpy as np

    import tfstiffness as tfs

    warnings.simplefilter("ignore")
    model = keras.saving.load_model(args.model)
    with np.load(args.data) as data:
        x, y = data["x"], data["y"]
    if index == args.perturb_worker:
        x = x.copy()
        x[0, 0] += 1.0
    summary = tfs.stiffness_summary(
        model, x, y, strategy=strategy, verbose=False, checkpoint_every=args.checkpoint_every,
        checkpoint=args.checkpoint.replace("{index}", str(index)) if args.checkpoint else None,
        **SETTINGS)
    gram = tfs.gradient_gram(model, x[:12], y[:12], batch_size=4, strategy=strategy)
    np.savez(os.path.join(args.out_dir, f"result_{index}.npz"), gram=gram.total,
             chief=cluster.is_chief(strategy), **summary_arrays(summary))
    print(f"worker {index} done: blocks by worker {summary.blocks_by_worker}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
