"""Benchmark entries: every module here is imported on first use of the registry."""
