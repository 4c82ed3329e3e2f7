"""Benchmarks: run them from the repository root (see bench_overhead.py)."""
