"""Benchmarks of coatcheck against bare Starlette and other session middleware (scripts/bench)."""
