"""Speed benchmarks (run by `python -m stingy.benchmarks.run`; never part of the test suite)."""
