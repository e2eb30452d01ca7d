"""Speed benchmarks (run by `stingy bench`; never part of the test suite)."""
