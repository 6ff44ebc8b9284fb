"""Benchmarks: each compares alternatives side by side in one run, prints a table and writes JSON."""
