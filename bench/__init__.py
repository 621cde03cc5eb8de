"""The load and latency harness: `.venv/bin/python -m bench` (see bench/README.md)."""
