"""The model: a scikit-learn Pipeline (preprocessing + estimator) built from the dataset spec."""

from ml.model.matrix import to_matrix, to_target
from ml.model.pipeline import build_pipeline
from ml.model.search_space import FAMILIES, estimator_from_params, families_for, suggest_params

__all__ = [
    "FAMILIES",
    "build_pipeline",
    "estimator_from_params",
    "families_for",
    "suggest_params",
    "to_matrix",
    "to_target",
]
