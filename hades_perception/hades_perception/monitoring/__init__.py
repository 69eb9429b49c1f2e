"""Monitoring: per-frame signals (signals.py) and drift against a bundle's reference (drift.py)."""
