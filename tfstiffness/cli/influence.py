"""TracIn influence: which training examples helped or hurt each test example (Pruthi et al.
2020), and finding flipped labels by self-influence.

Trains a classifier with Adam at a constant learning rate (mini-batches, reshuffled each epoch),
saving the weights after every epoch, or takes your checkpoints (--checkpoints). Then computes
TracIn over the checkpoints, exactly (per-example gradients by tfstiffness' engine): every
training example against a fixed probe of --num_test test examples, each probe example's
--top_k proponents and opponents, and each training example's self-influence with its
ranking. With --flip_labels f (default 0.1 when training), that share of training labels is
flipped before training (deterministic by --seed) and the ROC AUC of self-influence for
finding them is reported, next to the AUC of the final per-example loss.

Default: MNIST-1D (generated offline), the MLP 40-100-100-10, 50 epochs, 10 % of the labels
flipped, 100 test examples: about a minute on 2 cores. --dataset mnist, fashion_mnist, cifar10
or cifar100 reads a TensorFlow Datasets set from --data_dir.

Writes config.json, summary.json, results.npz, checkpoints/ (when training), figures/*.png and
tensorboard/ (runs train and test live, influence, figures) under --output_dir. Rerunning
the same command resumes after the last finished epoch.

Example:
  python -m tfstiffness.cli.influence --output_dir runs/influence
  python -m tfstiffness.cli.influence --model mlp --kind cosine \\
      --checkpoints runs/influence/checkpoints/epoch_025.weights.h5,runs/influence/checkpoints/epoch_050.weights.h5 \\
      --output_dir runs/influence_cosine
"""

from __future__ import annotations

from tfstiffness import cli
from tfstiffness.studies import influence as study

FLAGS, main, run = cli.study_binary(study.InfluenceConfig, study.run_influence, "influence",
                                    __doc__)

if __name__ == "__main__":
    run()
