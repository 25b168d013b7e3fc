"""An inference shortcut for the pipelines :mod:`ml.model.pipeline` builds, verified against scikit-learn.

For one record, scikit-learn spends most of ``Pipeline.predict_proba`` in per-call bookkeeping of the
``ColumnTransformer`` (input validation, tags, dispatch to each branch): about 0.7 ms, often more than
the estimator itself. The arithmetic of the fitted preprocessing is tiny, so this module re-expresses
it with NumPy from the fitted attributes, for exactly the steps the training library uses:

* ``SimpleImputer`` (NaN -> ``statistics_``; no indicator, no dropped empty features),
* ``StandardScaler`` (``(x - mean_) / scale_``, the same floating-point operations),
* ``OneHotEncoder`` (dense, unknown categories ignored, nothing dropped, no infrequent categories),

arranged in a ``ColumnTransformer`` over column positions with ``remainder="drop"``. The estimator at
the end (logistic regression, SVC, forests, boosting, ridge...) still runs as scikit-learn's own
``predict_proba`` (classifiers, binary or multi-class) or ``predict`` (regressors) on the transformed array.

Nothing is trusted blindly: :func:`compile_pipeline` refuses any other step or setting, and then checks,
on generated records covering every feature (and missing values where the spec allows them), that the
shortcut's transform is bit-for-bit equal to scikit-learn's and that the probabilities (a regressor: the
predictions) are identical.
Any difference and the bundle keeps using the plain pipeline. ``MLOPS_API_FAST_PREPROCESSING=false``
turns the shortcut off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Block = Callable[[np.ndarray], np.ndarray]


class UnsupportedPipelineError(ValueError):
    """The model contains a step or setting the shortcut does not reproduce."""


@dataclass(frozen=True)
class CompiledPipeline:
    """The preprocessing as NumPy functions, one per ``ColumnTransformer`` branch, plus the fitted estimator."""

    blocks: tuple[Block, ...]
    estimator: Any
    description: str

    def transform(self, x: np.ndarray) -> np.ndarray:
        """What the pipeline's preprocessing step returns for ``x``."""
        if len(self.blocks) == 1:
            return self.blocks[0](x)
        return np.hstack([block(x) for block in self.blocks])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """The estimator's probabilities for ``x`` (a classifier: one column per class)."""
        return np.asarray(self.estimator.predict_proba(self.transform(x)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The estimator's predictions for ``x`` (a regressor's values)."""
        return np.asarray(self.estimator.predict(self.transform(x)))

    def output(self, method: str) -> Callable[[np.ndarray], np.ndarray]:
        """The shortcut of the pipeline's ``method``: ``predict_proba`` (classifiers) or ``predict`` (regressors)."""
        if method not in ("predict_proba", "predict"):
            raise ValueError(f"no shortcut for {method!r}: use 'predict_proba' or 'predict'")
        return self.predict_proba if method == "predict_proba" else self.predict


def _imputer(step: Any, numeric: bool) -> np.ndarray:
    from sklearn.impute import SimpleImputer

    if type(step) is not SimpleImputer:
        raise UnsupportedPipelineError(f"{type(step).__name__} is not a SimpleImputer")
    missing = step.missing_values
    if not (isinstance(missing, float) and np.isnan(missing)) or step.add_indicator:
        raise UnsupportedPipelineError("SimpleImputer must impute NaN without an indicator")
    stats = np.asarray(step.statistics_)
    if numeric:
        stats = stats.astype(np.float64)
        if np.isnan(stats).any():  # a feature with no observed value: scikit-learn drops the column
            raise UnsupportedPipelineError("SimpleImputer learned no value for a feature")
    elif any(not isinstance(v, str) for v in stats):
        raise UnsupportedPipelineError("categorical SimpleImputer learned a non-string value")
    return stats


def _scaler(step: Any, width: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.preprocessing import StandardScaler

    if type(step) is not StandardScaler:
        raise UnsupportedPipelineError(f"{type(step).__name__} is not a StandardScaler")
    mean = np.asarray(step.mean_, dtype=np.float64) if step.with_mean else np.zeros(width)
    scale = np.asarray(step.scale_, dtype=np.float64) if step.with_std else np.ones(width)
    return mean, scale


def _onehot(step: Any) -> list[np.ndarray]:
    from sklearn.preprocessing import OneHotEncoder

    if type(step) is not OneHotEncoder:
        raise UnsupportedPipelineError(f"{type(step).__name__} is not a OneHotEncoder")
    if step.handle_unknown != "ignore" or step.drop_idx_ is not None or step.sparse_output:
        raise UnsupportedPipelineError("OneHotEncoder must be dense, ignore unknown categories and drop nothing")
    if getattr(step, "_infrequent_enabled", False) or np.dtype(step.dtype) != np.float64:
        raise UnsupportedPipelineError("OneHotEncoder must not group infrequent categories and must output float64")
    return [np.asarray(c, dtype=object) for c in step.categories_]


def _fill(block: np.ndarray, stats: np.ndarray, missing: np.ndarray) -> np.ndarray:
    if missing.any():
        rows, cols = np.nonzero(missing)
        block[rows, cols] = stats[cols]
    return block


def _numeric_block(cols: list[int], steps: Sequence[Any]) -> Block:
    stats = _imputer(steps[0], numeric=True)
    if len(steps) == 1:

        def impute(x: np.ndarray) -> np.ndarray:
            block = np.array(x[:, cols], dtype=np.float64)
            return _fill(block, stats, np.isnan(block))

        return impute
    if len(steps) != 2:
        raise UnsupportedPipelineError("a numeric branch must be an imputer, optionally followed by a scaler")
    mean, scale = _scaler(steps[1], len(cols))

    def impute_scale(x: np.ndarray) -> np.ndarray:
        block = np.array(x[:, cols], dtype=np.float64)
        block = _fill(block, stats, np.isnan(block))
        block -= mean  # the same two in-place operations as StandardScaler.transform
        block /= scale
        return block

    return impute_scale


def _categorical_block(cols: list[int], steps: Sequence[Any]) -> Block:
    if len(steps) != 2:
        raise UnsupportedPipelineError("a categorical branch must be an imputer followed by a one-hot encoder")
    stats = _imputer(steps[0], numeric=False)
    categories = _onehot(steps[1])
    width = sum(len(c) for c in categories)

    def encode(x: np.ndarray) -> np.ndarray:
        out = np.zeros((x.shape[0], width), dtype=np.float64)
        offset = 0
        for j, (col, cats) in enumerate(zip(cols, categories, strict=True)):
            values = np.array([v if isinstance(v, str) else stats[j] for v in x[:, col]], dtype=object)
            out[:, offset : offset + len(cats)] = values[:, None] == cats[None, :]
            offset += len(cats)
        return out

    return encode


def _branch(transformer: Any, cols: list[int], categorical: bool) -> Block:
    from sklearn.pipeline import Pipeline

    steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    if categorical:
        return _categorical_block(cols, steps)
    return _numeric_block(cols, steps)


def compile_pipeline(model: Any, categorical_positions: set[int]) -> CompiledPipeline:
    """The shortcut for ``model`` (``Pipeline([preprocess: ColumnTransformer, model: estimator])``), unverified.

    ``categorical_positions`` are the input columns that hold category strings. Raises
    :class:`UnsupportedPipelineError` for anything else.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        raise UnsupportedPipelineError("the model is not a two-step Pipeline (preprocessing, estimator)")
    preprocess, estimator = model.steps[0][1], model.steps[1][1]
    if type(preprocess) is not ColumnTransformer:
        raise UnsupportedPipelineError("the first step is not a ColumnTransformer")
    if preprocess.sparse_output_:
        raise UnsupportedPipelineError("the ColumnTransformer produces sparse output")
    blocks: list[Block] = []
    for name, transformer, columns in preprocess.transformers_:
        if isinstance(transformer, str):
            if transformer == "drop":
                continue
            raise UnsupportedPipelineError(f"branch {name!r} is {transformer!r}")
        raw = [] if isinstance(columns, slice) or callable(columns) else list(np.asarray(columns).ravel())
        if not raw or any(isinstance(c, bool | np.bool_) or not isinstance(c, int | np.integer) for c in raw):
            raise UnsupportedPipelineError(f"branch {name!r} does not select columns by position")
        cols = [int(c) for c in raw]
        kinds = {c in categorical_positions for c in cols}
        if len(kinds) != 1:
            raise UnsupportedPipelineError(f"branch {name!r} mixes categorical and other columns")
        blocks.append(_branch(transformer, cols, kinds.pop()))
    if not blocks:
        raise UnsupportedPipelineError("the ColumnTransformer has no branch")
    return CompiledPipeline(tuple(blocks), estimator, f"NumPy preprocessing + {type(estimator).__name__}")


def verify(compiled: CompiledPipeline, model: Any, x: np.ndarray, method: str = "predict_proba") -> None:
    """Raise :class:`UnsupportedPipelineError` unless the shortcut equals scikit-learn exactly on ``x``.

    ``method`` is the output that is compared: ``predict_proba`` (every class's column) or ``predict``.
    """
    expected = np.asarray(model.steps[0][1].transform(x), dtype=np.float64)
    got = compiled.transform(x)
    if got.shape != expected.shape or not np.array_equal(got, expected, equal_nan=True):
        raise UnsupportedPipelineError("the shortcut's transform differs from scikit-learn's")
    if not np.array_equal(compiled.output(method)(x), np.asarray(getattr(model, method)(x))):
        what = "probabilities" if method == "predict_proba" else "predictions"
        raise UnsupportedPipelineError(f"the shortcut's {what} differ from scikit-learn's")
