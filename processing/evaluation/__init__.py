"""Segmentation metrics (`metrics`) and the `evaluate` modules that wrap them (`evaluate_metrics/`, built on the
shared `map_metric.MapMetric`)."""
