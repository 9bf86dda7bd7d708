"""Benchmarks that print tables (never asserted in tests). See bench/README.md."""
