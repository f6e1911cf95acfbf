"""Evaluate a tracker on a benchmark: read a dataset's layout, track it through ``sam2_plus.batch``, score it."""
