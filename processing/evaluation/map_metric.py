# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""What the local `evaluate` modules (`evaluate_metrics/<name>/<name>.py`) share: [`MapMetric`], an `evaluate.Metric`
whose inputs are lists of 2-D integer maps and whose scores come from one function of `processing.evaluation.metrics`.

A module script then only describes its metric:

```python
from processing.evaluation import map_metric  # the module, not the class: evaluate picks a script's first Metric
from processing.evaluation.metrics import region_mean_iou

class RegionMeanIoU(map_metric.MapMetric):
    description, inputs_description, citation = _DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION
    score = staticmethod(region_mean_iou)
```

Needs `evaluate` and `datasets` (the `train` extra); `processing.evaluation.metrics` does not.
"""

from __future__ import annotations

from collections.abc import Callable

import datasets
import evaluate
import numpy as np


__all__ = ["MapMetric"]

# one image's map: rows of int64 labels
_MAP_FEATURE = datasets.List(datasets.List(datasets.Value("int64")))


class MapMetric(evaluate.Metric):
    """
    An `evaluate` metric over `predictions` and `references`, each a list of 2-D integer maps. Subclasses set
    `description`, `inputs_description`, `citation` (the texts of `evaluate.MetricInfo`, also the class docstring)
    and `score`, a metrics function called with the maps as int64 arrays and the keyword arguments given to
    `compute`; numpy arrays in its result become lists.
    """

    description: str = ""
    inputs_description: str = ""
    citation: str = ""
    score: Callable[..., dict]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # what evaluate's module template writes with `add_start_docstrings`
        cls.__doc__ = cls.description + "\n\n" + cls.inputs_description

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=self.description,
            citation=self.citation,
            inputs_description=self.inputs_description,
            features=datasets.Features({"predictions": _MAP_FEATURE, "references": _MAP_FEATURE}),
        )

    def _compute(self, predictions, references, **kwargs) -> dict:
        # read from the class: a plain function stored as `score` must not become a bound method
        result = type(self).score(
            [np.asarray(item, dtype=np.int64) for item in predictions],
            [np.asarray(item, dtype=np.int64) for item in references],
            **kwargs,
        )
        return {key: value.tolist() if isinstance(value, np.ndarray) else value for key, value in result.items()}
