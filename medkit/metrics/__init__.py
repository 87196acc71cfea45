"""Metrics and reports: classification figures, plots."""
