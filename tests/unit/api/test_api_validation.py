"""Every kind of bad input answers 422 naming the field and the reason, never 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.datasets import MIXED_RECORD, breast_cancer_record
from tests.unit.api.conftest import ClientFactory
from tests.unit.api.fakes import FakeRegistry

pytestmark = pytest.mark.unit

GOOD = breast_cancer_record()


def _without(record: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != key}


def _assert_422(response: Any, field: str, *reason: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body = response.json()
    fields = [item["field"] for item in body["detail"]]
    assert field in fields, body
    item = body["detail"][fields.index(field)]
    for words in reason:
        assert words.lower() in item["msg"].lower(), item
    assert field in body["message"]
    return body


# (name, request body as JSON text or object, field, words expected in the reason)
SINGLE_CASES: list[tuple[str, Any, str, tuple[str, ...]]] = [
    ("missing field", _without(GOOD, "mean_radius"), "mean_radius", ("field required",)),
    ("string for a number", GOOD | {"mean_radius": "13.4"}, "mean_radius", ("valid number",)),
    ("boolean for a number", GOOD | {"mean_radius": True}, "mean_radius", ("valid number",)),
    ("null for a required number", GOOD | {"mean_radius": None}, "mean_radius", ("valid number",)),
    ("list for a number", GOOD | {"mean_radius": [1.0]}, "mean_radius", ("valid number",)),
    ("above the maximum", GOOD | {"mean_radius": 75.0}, "mean_radius", ("less than or equal to 60",)),
    ("below the minimum", GOOD | {"mean_area": -1}, "mean_area", ("greater than or equal to 0",)),
    ("unknown field", GOOD | {"mean_radiuss": 1.0}, "mean_radiuss", ("extra inputs are not permitted",)),
    ("array instead of object", [GOOD], "body", ("valid dictionary", "object")),
    ("a bare number", 5, "body", ()),
]


@pytest.mark.parametrize(("case", "body", "field", "reason"), SINGLE_CASES, ids=[c[0] for c in SINGLE_CASES])
def test_single_record_errors(client: TestClient, case: str, body: Any, field: str, reason: tuple[str, ...]) -> None:
    response = client.post("/predict", json=body)
    if case == "array instead of object":  # pydantic's words differ between versions: accept either
        assert response.status_code == 422
        assert response.json()["detail"][0]["field"] == "body"
        return
    _assert_422(response, field, *reason)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{not json", "malformed json"),
        (b"", "malformed json"),
        (b'{"mean_radius": NaN}', "finite number"),
        (b'{"mean_radius": 1e999}', "finite number"),
    ],
    ids=["broken", "empty body", "NaN literal", "infinite number"],
)
def test_malformed_or_non_finite_json(client: TestClient, raw: bytes, words: str) -> None:
    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    item = response.json()["detail"][0]
    assert item["field"] in ("body", "mean_radius")
    assert words in item["msg"].lower()


def test_many_errors_are_all_named(client: TestClient) -> None:
    body = _assert_422(client.post("/predict", json={"mean_radius": 99}), "mean_radius", "less than or equal")
    assert len(body["detail"]) == 30  # one out of range + 29 missing
    assert "(and 27 more)" in body["message"]


BATCH_CASES: list[tuple[str, Any, str, tuple[str, ...]]] = [
    ("empty batch", {"records": []}, "records", ("at least 1",)),
    ("oversized batch", {"records": [GOOD] * 51}, "records", ("at most 50", "MLOPS_API_MAX_BATCH")),
    ("records missing", {"rows": [GOOD]}, "rows", ("extra inputs",)),
    ("records missing entirely", {}, "records", ("field required",)),
    ("records not a list", {"records": GOOD}, "records", ("valid list",)),
    ("body not an object", [GOOD], "body", ("object",)),
    ("bad value in the 3rd record", {"records": [GOOD, GOOD, GOOD | {"mean_texture": 500}]},
     "records[2].mean_texture", ("less than or equal to 80",)),
    ("missing field in a record", {"records": [_without(GOOD, "worst_area")]}, "records[0].worst_area",
     ("field required",)),
    ("record not an object", {"records": [GOOD, 3]}, "records[1]", ()),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "field", "reason"), BATCH_CASES, ids=[c[0] for c in BATCH_CASES])
def test_batch_errors(client: TestClient, case: str, body: Any, field: str, reason: tuple[str, ...]) -> None:
    _assert_422(client.post("/predict/batch", json=body), field, *reason)


def test_batch_malformed_json(client: TestClient) -> None:
    response = client.post("/predict/batch", content=b'{"records": [', headers={"content-type": "application/json"})
    _assert_422(response, "body", "malformed json")


def test_batch_error_list_is_bounded(client: TestClient) -> None:
    response = client.post("/predict/batch", json={"records": [{}] * 50})
    assert response.status_code == 422
    body = response.json()
    assert len(body["detail"]) == 50
    assert body["truncated"] is True
    assert body["message"].startswith("more than 50 invalid fields")


def test_wrong_method_and_unknown_path_are_not_500(client: TestClient) -> None:
    assert client.get("/predict").status_code == 405
    assert client.post("/nowhere", json={}).status_code == 404


MIXED_CASES: list[tuple[str, dict[str, Any], str, tuple[str, ...]]] = [
    ("unknown category", MIXED_RECORD | {"employment": "astronaut"}, "employment",
     ("'employed'", "'retired'")),
    ("category with other case", MIXED_RECORD | {"region": "North"}, "region", ("'north'",)),
    ("number for a category", MIXED_RECORD | {"employment": 1}, "employment", ("'employed'",)),
    ("0/1 for a boolean", MIXED_RECORD | {"owns_home": 1}, "owns_home", ("valid boolean",)),
    ("string for a boolean", MIXED_RECORD | {"owns_home": "true"}, "owns_home", ("valid boolean",)),
    ("null for a required boolean", MIXED_RECORD | {"owns_home": None}, "owns_home", ("valid boolean",)),
    ("missing required category", _without(MIXED_RECORD, "employment"), "employment", ("field required",)),
    ("nullable but out of range", MIXED_RECORD | {"age": 7}, "age", ("greater than or equal to 18",)),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "field", "reason"), MIXED_CASES, ids=[c[0] for c in MIXED_CASES])
def test_mixed_spec_errors(
    make_client: ClientFactory,
    registry: FakeRegistry,
    model_dirs: dict[str, Path],
    case: str,
    body: dict[str, Any],
    field: str,
    reason: tuple[str, ...],
) -> None:
    registry.publish("3", model_dirs["mixed"])
    client = make_client()
    _assert_422(client.post("/predict", json=body), field, *reason)
    _assert_422(client.post("/predict/batch", json={"records": [MIXED_RECORD, body]}), f"records[1].{field}", *reason)


def test_oversized_bodies_are_refused_before_parsing(make_client: ClientFactory) -> None:
    client = make_client(max_body_bytes=20_000)
    huge_record = GOOD | {"padding": "x" * 70_000}
    _assert_422(client.post("/predict", json=huge_record), "body", "more than the limit of 20000")
    _assert_422(client.post("/predict/batch", json={"records": [GOOD] * 40}), "body", "MLOPS_API_MAX_BODY_BYTES")

    def chunks() -> Any:  # no Content-Length: the limit applies while streaming
        yield b'{"records": ['
        for _ in range(40):
            yield (str(GOOD).replace("'", '"') + ",").encode()
        yield b"]}"

    _assert_422(client.post("/predict/batch", content=chunks()), "body", "more than the limit")
    assert client.post("/predict/batch", json={"records": [GOOD] * 10}).status_code == 200
