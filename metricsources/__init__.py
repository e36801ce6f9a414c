"""Metric sources: fetch baseline and canary series from where users keep them."""
