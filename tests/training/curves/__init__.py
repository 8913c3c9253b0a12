"""Metric histories recorded from real runs, for the diagnostics tests."""
