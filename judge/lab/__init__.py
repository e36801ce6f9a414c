"""Tools for notebooks and benchmarks: labelled canaries, backtests, plots."""
