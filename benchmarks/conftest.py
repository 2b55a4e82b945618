"""Benchmarks are scripts, not tests: keep pytest (and --doctest-modules) away from them."""

collect_ignore_glob = ["*.py"]
