"""The benchmarks: each scenario a module run from the project's root as `python -m bench.<scenario>` (the Makefile's
bench-* targets name them), on the harness they share (bench/harness.py) and, for --balanced, bench/stack.py.
"""
