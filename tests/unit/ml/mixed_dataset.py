"""A small generated mixed-type dataset (numeric, categorical, boolean, missing values) and its spec.

It proves that adding a dataset means adding a spec: nothing in the library knows about it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ml.spec import DatasetSpec, load_spec_file

SPEC = {
    "name": "churn_demo",
    "title": "Generated churn demo",
    "description": "Synthetic customers with mixed feature types and missing values.",
    "source": {"reader": "csv", "options": {"path": "PLACEHOLDER", "na_values": ["?"]}},
    "target": {"name": "churned", "description": "Whether the customer left.", "classes": ["no", "yes"],
               "positive_class": "yes"},
    "features": [
        {"name": "age", "kind": "numeric", "description": "Age of the customer.", "unit": "years",
         "minimum": 18, "maximum": 110, "nullable": True, "example": 41},
        {"name": "monthly_spend", "kind": "numeric", "description": "Average monthly spend.", "unit": "EUR",
         "minimum": 0, "maximum": 10000, "example": 55.0},
        {"name": "plan", "kind": "categorical", "description": "Subscription plan.",
         "categories": ["basic", "plus", "pro"], "example": "plus"},
        {"name": "region", "kind": "categorical", "description": "Sales region.",
         "categories": ["north", "south", "east", "west"], "nullable": True, "example": "north"},
        {"name": "has_support_ticket", "kind": "boolean", "description": "Opened a ticket last month.",
         "nullable": True, "example": False},
    ],
}  # fmt: skip


def make_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Rows whose churn depends on spend, plan and tickets, with some missing values (as text, like a CSV)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, rows).astype(float)
    spend = np.round(rng.gamma(2.0, 30.0, rows), 2)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    region = rng.choice(["north", "south", "east", "west"], rows).astype(object)
    ticket = rng.random(rows) < 0.3
    logit = -1.0 + 0.02 * (spend - 60) + 1.6 * ticket + (plan == "basic") * 1.0 - (plan == "pro") * 0.8
    churned = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame(
        {
            "age": age,
            "monthly_spend": spend,
            "plan": plan,
            "region": region,
            "has_support_ticket": np.where(ticket, "true", "false").astype(object),
            "churned": churned,
        }
    )
    frame.loc[rng.random(rows) < 0.08, "age"] = np.nan
    frame.loc[rng.random(rows) < 0.08, "region"] = "?"
    frame.loc[rng.random(rows) < 0.05, "has_support_ticket"] = np.nan
    return frame


def write_dataset(directory: Path, frame: pd.DataFrame | None = None) -> DatasetSpec:
    """Write the CSV and its spec YAML into ``directory`` and return the loaded spec."""
    frame = make_frame() if frame is None else frame
    csv_path = directory / "churn_demo.csv"
    frame.to_csv(csv_path, index=False)
    spec = SPEC | {"source": {"reader": "csv", "options": {"path": str(csv_path), "na_values": ["?"]}}}
    spec_path = directory / "churn_demo.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_spec_file(spec_path)
