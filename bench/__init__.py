"""The benchmarks: each scenario a module run from the project's root as `python -m bench.<scenario>` (the Makefile's
bench-* targets name them), on the harness they, chaos/ and the tests share (bench/harness/).
"""
