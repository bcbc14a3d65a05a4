"""``make bench``: sending throughput against a same-run baseline (see bench/README.md)."""
