"""Typed contracts between the pipeline steps, and between training and serving: the one definition of each.

Every document one step writes and another reads (a manifest in the S3 lake, an Airflow XCom, MLflow tags,
the metadata logged next to the model) is a pydantic model here, with its writer and its readers named in
its docstring. Writers build the model and serialise it (``model_dump(mode="json")``, :meth:`TagRecord.to_tags`);
readers validate it (``model_validate``, :meth:`TagRecord.from_tags`), so a malformed document is refused
with a message that names the model and the field. No key of these documents is spelled anywhere else.

The wire formats are those of the dict-based code these models replaced, byte for byte: lake documents are
written with sorted keys (:meth:`ml.lake.Lake.put_json`), so field order does not matter there; in the
``mlops.result`` tag (:class:`SearchOutcomeTags`) it does, and is the order of :class:`SearchResult`'s fields.

This module imports only pydantic and the standard library: the prediction API (which ships without
Airflow, MLflow or pandas) reads :class:`ModelMetadata`, :class:`ModelVersionTags` and :class:`GateTags`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_serializer,
)

JsonScalar = str | int | float | bool | None
Task = Literal["binary", "multiclass", "regression"]  # the values of ml.tasks.TaskType
Direction = Literal["maximize", "minimize"]  # ml.tasks.MetricInfo.direction


class Contract(BaseModel):
    """Base of the contracts: immutable, and unknown keys are refused (a typo is an error, not a default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# ------------------------------------------------------------------------------------------------- ETL: raw
class RawManifest(Contract):
    """One landed raw file: ``raw/<dataset>/<sha>/manifest.json``, and the ``extract`` task's XCom.

    Writer: :func:`ml.etl.extract` (written last, after ``data.csv``). Readers: :func:`ml.etl.validate`
    (from the lake) and :func:`ml.steps.validate_step` (the XCom, for the manifest's key).
    """

    dataset: str
    source: dict[str, Any]  # the spec's source (reader, path...) without the reader's rename option
    rows: int = Field(ge=0)
    columns: list[str]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)  # size of data.csv
    key: str  # lake key of data.csv
    extracted_at: str  # ISO 8601, UTC, as datetime.isoformat() wrote it


class RawPointer(Contract):
    """``raw/<dataset>/latest.json``: the newest raw manifest. Writer: :func:`ml.etl.extract`; reader: validate."""

    manifest: str  # lake key of the manifest
    sha256: str


# ------------------------------------------------------------------------------------------------- ETL: validated
class ValidationReport(Contract):
    """Validation of one raw file: ``validated/<dataset>/<v>/report.json``, and the ``validate`` task's XCom.

    Writer: :func:`ml.etl.validate`. Reader: :func:`ml.etl.split` (which rows, from which raw file).
    """

    dataset: str
    raw_manifest: str  # lake key of the raw manifest
    raw_sha256: str
    rows_in: int = Field(ge=0)
    rows_valid: int = Field(ge=0)
    rows_quarantined: int = Field(ge=0)
    invalid_fraction: float = Field(ge=0, le=1)
    max_invalid_fraction: float
    failures_by_field: dict[str, int]  # field -> failing rows, most failures first
    quarantine: str | None  # s3:// URI of the quarantined rows, None when no row failed
    data: str  # s3:// URI of the valid rows (Parquet)
    schema_hash: str


# ------------------------------------------------------------------------------------------------- ETL: processed
class SplitRows(Contract):
    """Row counts of a split."""

    train: int = Field(ge=0)
    test: int = Field(ge=0)


class SplitClassBalance(Contract):
    """Rows per target label in each part of a split."""

    train: dict[str, int]
    test: dict[str, int]


class TargetSummary(Contract):
    """Distribution of a numeric (regression) target in one part of a split."""

    count: int = Field(ge=0)
    mean: float
    std: float
    min: float
    q25: float
    median: float
    q75: float
    max: float


class SplitTargetSummary(Contract):
    """The regression target's distribution in each part of a split (what class balance is to classes)."""

    train: TargetSummary
    test: TargetSummary


class SplitManifest(Contract):
    """One processed split: ``processed/<dataset>/<v>/manifest.json``, and the ``split`` task's XCom.

    Writer: :func:`ml.etl.split`. Readers: :func:`ml.etl.split.load_split` (the search, the gate),
    :func:`ml.search.prepare_search` (data version, row counts) and :func:`ml.search_finish.finish_search` (which
    logs it to the parent run as ``split_manifest.json``). Classification splits carry ``class_balance``,
    regression splits ``target_summary`` instead; the absent one is left out of the JSON, so a
    classification manifest is written exactly as before regression existed.
    """

    dataset: str
    data_version: str
    schema_hash: str
    raw_sha256: str
    seed: int
    test_size: float
    rows: SplitRows
    class_balance: SplitClassBalance | None = None  # classification: rows per class
    train: str  # s3:// URI (Parquet)
    test: str  # s3:// URI (Parquet)
    target_summary: SplitTargetSummary | None = None  # regression: the target's distribution

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in ("class_balance", "target_summary"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class SplitPointer(Contract):
    """``processed/<dataset>/current.json``: the current split. Writer: split; readers: load_split, prepare_search."""

    manifest: str  # lake key of the manifest
    data_version: str


# ------------------------------------------------------------------------------------------------- search
class SearchHandle(Contract):
    """Everything a worker or the final step needs to find a search again.

    Writer: :func:`ml.search.prepare_search` (also into the Optuna study's user attributes, where a retried
    prepare finds it again). Readers: :func:`ml.search.run_worker`, :func:`ml.search_finish.finish_search`.
    """

    study_name: str
    parent_run_id: str
    experiment_id: str
    data_version: str
    split_manifest: str  # lake key of the split's manifest


class SearchPlan(SearchHandle):
    """The ``prepare`` task's XCom: the search handle and the trial budget of this DAG run.

    Writer: :func:`ml.steps.prepare_step`. Readers: :func:`ml.steps.tune_step`, :func:`ml.steps.finish_step`
    and :func:`ml.steps.gate_step` (the split the gate scores on).
    """

    n_trials: int = Field(ge=1)


class WorkerReport(Contract):
    """What one tuning worker did: the ``tune`` tasks' XComs. Writer: :func:`ml.search.run_worker`; read by people."""

    worker: int
    seconds: float
    trials_in_study: int
    child_runs_logged: int
    logging_errors: int


class SearchResult(Contract):
    """The logged model of a finished search: the ``finish`` task's XCom and the ``mlops.result`` run tag.

    Writer: :func:`ml.search_finish.finish_search`. Readers: :func:`ml.registry.register_and_gate` (the XCom) and
    a retried :func:`ml.search_finish.finish_search` (the tag). Field order is the tag's JSON key order.
    """

    model_uri: str
    model_id: str
    run_id: str
    data_version: str
    family: str
    best_params: dict[str, JsonScalar]
    cv_score: float
    test_metrics: dict[str, float]


class SearchRun(Contract):
    """A whole search in one call (:func:`ml.search.run_search`, for notebooks, tests and benchmarks)."""

    handle: SearchHandle
    workers: list[WorkerReport]
    search_seconds: float
    result: SearchResult | None  # None when the search was not finished


# ------------------------------------------------------------------------------------------------- gate
class GateDecision(Contract):
    """Outcome of the registry gate for one model version: the ``gate`` task's XCom.

    Writer: :func:`ml.registry.register_and_gate` (from its own scores, or from the version's
    :class:`GateTags` when the gate already ran). Read by people and tests.
    """

    model_name: str
    version: str
    promoted: bool
    reason: str
    metric: str
    challenger_score: float
    champion_score: float | None
    champion_version: str | None
    data_version: str
    direction: Direction | None = None  # of the metric: "minimize" for losses and errors
    min_score: float | None = None  # the first-model threshold applied (None: none)
    margin: float | None = None  # the promotion margin applied


# ------------------------------------------------------------------------------------------------- MLflow tags
class TagRecord(Contract):
    """Base of records stored as MLflow tags: field ``x`` is the tag ``TAG_PREFIX + "x"``, every value a string.

    :meth:`to_tags` and :meth:`from_tags` are the only way these tags are written and read; :meth:`tag_key`
    names one tag (for a presence check or a search filter). Tags with the prefix that are not fields
    (another record's, sharing the prefix) are ignored when reading.
    """

    TAG_PREFIX: ClassVar[str]

    @classmethod
    def tag_key(cls, field: str) -> str:
        """The tag key of ``field``; KeyError if the record has no such field."""
        if field not in cls.model_fields:
            raise KeyError(f"{cls.__name__} has no field {field!r} (fields: {list(cls.model_fields)})")
        return cls.TAG_PREFIX + field

    def to_tags(self) -> dict[str, str]:
        """The tags, in field order; fields that are None (and have no tag form for it) are left out."""
        tags: dict[str, str] = {}
        for field, value in self.model_dump(mode="json").items():
            if value is None:
                continue
            if not isinstance(value, str):  # a field without a string form: a bug in the record, not in the data
                raise TypeError(f"{type(self).__name__}.{field} serialises to {type(value).__name__}, not str")
            tags[self.TAG_PREFIX + field] = value
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Self:
        """Read the record from an MLflow entity's tags; pydantic's ValidationError names a malformed tag."""
        prefix = cls.TAG_PREFIX
        return cls.model_validate({name: tags[prefix + name] for name in cls.model_fields if prefix + name in tags})


class SearchRunTags(TagRecord):
    """Tags of a search's MLflow parent run, set when it is created.

    Writer: :func:`ml.search.prepare_search`. Readers: people (MLflow UI searches) and the fault tests.
    """

    TAG_PREFIX: ClassVar[str] = "mlops."

    dataset: str
    data_version: str
    study: str  # the Optuna study name
    kind: Literal["search"] = "search"


class SearchOutcomeTags(TagRecord):
    """Tags of a search's parent run once the model is logged; their presence marks the search as finished.

    Writer: :func:`ml.search_finish.finish_search`. Reader: a retried :func:`ml.search_finish.finish_search`, which
    returns the recorded :class:`SearchResult` instead of refitting.
    """

    TAG_PREFIX: ClassVar[str] = "mlops."

    model_id: str
    result: SearchResult

    @field_validator("result", mode="before")
    @classmethod
    def _parse_result(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    @field_serializer("result")
    def _dump_result(self, value: SearchResult) -> str:
        return json.dumps(value.model_dump(mode="json"))  # json.dumps' separators: the tag's historic bytes


class ModelVersionTags(TagRecord):
    """Tags of a registered model version: where it came from.

    Writer: :func:`ml.registry.register`. Readers: :func:`ml.registry.register` (``model_id``: is this model
    registered already?) and the prediction API (``data_version`` of a snapshot when the model's metadata
    has none). Every field may be missing on versions registered by other means.
    """

    TAG_PREFIX: ClassVar[str] = "mlops."

    model_id: str | None = None
    data_version: str | None = None
    family: str | None = None
    schema_hash: str | None = None


class RegisteredModelTags(TagRecord):
    """Tags of a registered model (not of a version): which dataset and task its versions serve.

    Writer: :func:`ml.registry.register` (on every registration). Reader: the prediction API, which
    discovers the registered models of the datasets by these tags (``mlops.dataset``, ``mlops.task``;
    :data:`DATASET_TAG`, :data:`TASK_TAG`, e.g. in ``search_registered_models(filter_string=...)``).
    """

    TAG_PREFIX: ClassVar[str] = "mlops."

    dataset: str
    task: Task


DATASET_TAG = RegisteredModelTags.tag_key("dataset")  # "mlops.dataset"
TASK_TAG = RegisteredModelTags.tag_key("task")  # "mlops.task"


def dataset_filter(dataset: str) -> str:
    """An MLflow ``search_registered_models`` filter for the registered model(s) of ``dataset``."""
    return f"tags.`{DATASET_TAG}` = '{dataset}'"


NONE_TAG = "none"  # how the gate writes a missing score or version


class GateTags(TagRecord):
    """The registry gate's decision on a model version, as tags (``gate.*``); ``decision`` is written last.

    Writer: :func:`ml.registry.register_and_gate` and :func:`ml.registry.regate` (``python -m ml gate``).
    Readers: a retried gate (which reports the recorded decision), the prediction API (``reason``, a
    sentence, explains why a dataset has no champion), people, the tests. ``metric`` and ``direction``
    say what was compared and which way is better, ``min_score`` (the first-model threshold, absent when
    the spec sets none) and ``margin`` what it was compared against. Scores are written with 6 decimals, a
    missing score or champion version as ``"none"``. The defaults only fill in for tags missing on versions
    an older gate wrote.
    """

    TAG_PREFIX: ClassVar[str] = "gate."

    metric: str | None = None
    reason: str = ""
    challenger_score: float = math.nan
    champion_score: float | None = None
    champion_version: str | None = None
    margin: float | None = None
    min_score: float | None = None
    data_version: str = ""
    direction: Direction | None = None
    decision: Literal["promoted", "rejected"]

    @field_validator("champion_score", "champion_version", mode="before")
    @classmethod
    def _none_tag(cls, value: Any) -> Any:
        return None if value == NONE_TAG else value

    @field_serializer("challenger_score", "champion_score")
    def _dump_score(self, value: float | None) -> str:
        return NONE_TAG if value is None else f"{value:.6f}"

    @field_serializer("champion_version")
    def _dump_version(self, value: str | None) -> str:
        return NONE_TAG if value is None else value

    @field_serializer("margin", "min_score")
    def _dump_setting(self, value: float | None) -> str | None:
        return None if value is None else str(value)

    @property
    def promoted(self) -> bool:
        """Whether the gate made this version champion."""
        return self.decision == "promoted"


# ------------------------------------------------------------------------------------------------- the model
class ModelMetadata(BaseModel):
    """The ``metadata`` of the logged model's MLmodel file: what serving needs to know about the model.

    Writer: :func:`ml.search_finish.finish_search` (all fields). Readers: :func:`api.bundle.build_bundle` (the
    dataset spec, checked by :func:`ml.spec.parse_spec`; the rest for GET /model) and
    :mod:`api.model_store` (the data version recorded with a champion snapshot). Unknown keys are ignored
    and every field but the spec may be missing, so models logged by other versions or by hand still load.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    dataset_spec: dict[str, Any]
    data_version: str | None = None
    schema_hash: str | None = None
    task: Task | None = None  # None: a model logged before tasks existed (binary)
    metric: str | None = None
    cv_score: float | None = None
    test_metrics: dict[str, float] | None = None
    family: str | None = None
