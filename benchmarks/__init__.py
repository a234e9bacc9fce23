"""Benchmarks: radio tasks B1–B7 and performance scripts (built on glue_radiollava.core)."""
