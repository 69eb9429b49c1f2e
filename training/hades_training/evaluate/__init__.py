"""Evaluation of trained models: metrics (pure numpy/scipy) and the `evaluate` command."""
