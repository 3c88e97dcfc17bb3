"""Several processes: `cluster` (tf.distribute strategies from TF_CONFIG, collectives, lost
workers) and `local_cluster` (several workers of one command on loopback)."""
