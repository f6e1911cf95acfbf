"""Evaluate a tracker on a benchmark: dataset layouts, tracking through sam2_plus.batch, scores and report."""
