"""Segmentation metrics (`metrics`) and the `evaluate` modules that wrap them (`evaluate_metrics/`)."""
