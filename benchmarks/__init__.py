"""Speed benchmarks (run by `python -m benchmarks.run`; never part of the test suite)."""
