"""The closing summary of ``make up``: the champion line built from the API's ``GET /model``."""

from __future__ import annotations

import pytest

from infra.local.quickstart import champion_line

pytestmark = pytest.mark.unit


def test_champion_line_reports_family_cv_and_test_metrics() -> None:
    model = {
        "name": "breast_cancer_classifier",
        "version": "3",
        "family": "logreg",
        "metrics": {"metric": "f1", "cv_score": 0.98123, "test": {"f1": 0.9861, "precision": 0.97, "roc_auc": 0.998}},
        "data_version": "0123456789abcdef0123",
    }
    assert champion_line(model) == (
        "breast_cancer_classifier v3 (logreg); CV f1 0.981; test f1 0.986, roc_auc 0.998; data 0123456789ab"
    )


def test_champion_line_without_metrics() -> None:
    assert champion_line({"name": "m", "version": "1", "family": None}) == "m v1 (None)"
