"""Benchmarks: each module is runnable with `python -m bench.<name>` and exposes `main()` returning rows."""
