"""The prediction API deployed as a Lambda in the stack's LocalStack (host mode, local-process executor).

Through the Function URL and the REST API (v1): the same predictions and the same 422s as the API process;
a newly promoted champion served after the next cold start; Lambda's package limits respected; both
endpoints listed by ``status``; ``up`` again changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import time
from typing import Any

import psutil
import pytest
from mlflow.tracking import MlflowClient

from infra import catalog
from infra.aws_lambda import local_service, localstack_deploy, localstack_endpoints, package_cache
from infra.aws_lambda.spec import LAMBDA, function_environment, source_code_hash
from infra.local.quickstart import sample_request, wait_until_served
from ml.settings import MLSettings
from ml.spec import get_spec
from tests.integration.localstack.lambda_stack import (
    ENDPOINT_NAMES,
    LambdaStack,
    lambda_stack_of,
    served_version,
    wait_for,
)
from tests.integration.stack.stack_helpers import cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SETTINGS = MLSettings()


@pytest.fixture(scope="module")
def lambda_stack(trained_stack: tuple[Any, Any]) -> LambdaStack:
    """The session stack after ``make up``'s pipeline, with the Lambda serving the champion."""
    return lambda_stack_of(trained_stack)


def _batch() -> dict[str, Any]:
    record = sample_request(SETTINGS)
    return {"records": [record, record | {"mean_radius": 20.5, "worst_radius": 25.0}, record | {"mean_texture": 30.0}]}


@pytest.mark.parametrize("endpoint", ENDPOINT_NAMES)
def test_predictions_equal_the_process_apis(lambda_stack: LambdaStack, endpoint: str) -> None:
    for path, body in (("/predict", sample_request(SETTINGS)), ("/predict/batch", _batch())):
        expected = lambda_stack.process_api("POST", path, json=body)
        got = lambda_stack.call(endpoint, "POST", path, json=body)
        assert expected.status_code == got.status_code == 200, (got.status_code, got.text)
        assert got.json() == expected.json()
        assert got.headers["content-type"] == expected.headers["content-type"]
    assert got.json()["model"]["version"] == lambda_stack.champion


@pytest.mark.parametrize("endpoint", ENDPOINT_NAMES)
def test_every_model_is_served_through_the_lambda_as_by_the_process(lambda_stack: LambdaStack, endpoint: str) -> None:
    """Same app, same routes: /models and each model's predictions equal the process API's; 404 for a stranger.

    A warm environment finds models registered after it started at its next due check (it never waits for
    one), so the listing is polled until every active dataset appears.
    """
    datasets = SETTINGS.active_datasets()
    deadline = time.monotonic() + 180
    while True:
        listing = lambda_stack.call(endpoint, "GET", "/models")
        served = {m["name"] for m in listing.json().get("models", []) if m.get("version")}
        if (listing.status_code == 200 and served >= set(datasets)) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert served >= set(datasets), listing.text
    for dataset in datasets:
        body = get_spec(dataset).example_record()
        expected = lambda_stack.process_api("POST", f"/models/{dataset}/predict", json=body)
        got = lambda_stack.call(endpoint, "POST", f"/models/{dataset}/predict", json=body)
        assert expected.status_code == got.status_code == 200, (dataset, got.text)
        assert got.json() == expected.json()
    unknown = lambda_stack.call(endpoint, "POST", "/models/no_such_model/predict", json={})
    assert unknown.status_code == 404 and set(datasets) <= set(unknown.json()["models"])


def test_the_rest_apis_other_path_form_answers_the_same(lambda_stack: LambdaStack) -> None:
    import httpx

    body = sample_request(SETTINGS)
    alt = httpx.post(lambda_stack.clients["rest_v1"]["alt_url"] + "/predict", json=body, timeout=60)
    assert alt.status_code == 200 and alt.json() == lambda_stack.process_api("POST", "/predict", json=body).json()


@pytest.mark.parametrize("endpoint", ENDPOINT_NAMES)
def test_a_bad_request_is_the_same_422(lambda_stack: LambdaStack, endpoint: str) -> None:
    record = sample_request(SETTINGS)
    cases: list[dict[str, Any]] = [
        {"json": record | {"mean_radius": 10_000}},
        {"json": {k: v for k, v in record.items() if k != "worst_area"}},
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
    ]
    for case in cases:
        expected = lambda_stack.process_api("POST", "/predict", **case)
        got = lambda_stack.call(endpoint, "POST", "/predict", **case)
        assert expected.status_code == got.status_code == 422
        assert got.json() == expected.json()


def test_curl_reaches_both_endpoints_as_status_prints_them(lambda_stack: LambdaStack, tmp_path: Any) -> None:
    if not shutil.which("curl"):
        pytest.skip("no curl here")
    (tmp_path / "request.json").write_text(json.dumps(sample_request(SETTINGS)))
    expected = lambda_stack.process_api("POST", "/predict", json=sample_request(SETTINGS)).json()
    for endpoint in lambda_stack.clients.values():
        command = endpoint["curl"].replace("curl ", "curl -sS --fail-with-body ", 1)
        done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert json.loads(done.stdout) == expected, command


def test_status_lists_both_lambda_endpoints(lambda_stack: LambdaStack) -> None:
    stack = lambda_stack.stack
    entry = stack.status()["services"][catalog.LOCALSTACK]
    assert entry["healthy"], entry["detail"]
    assert "answers GET /health via its Function URL" in entry["detail"]
    info = entry["lambda"]
    assert info["function_name"] == LAMBDA.function_name
    assert set(info["endpoints"]) == set(ENDPOINT_NAMES)
    assert info["endpoints"] == lambda_stack.clients == stack.lambda_endpoints()
    url = info["endpoints"]["function_url"]["url"]
    port = stack.settings.localstack_port
    ids = localstack_endpoints.custom_ids(LAMBDA)  # fixed: the same URLs after every LocalStack restart
    assert url == f"http://{ids['function_url']}.lambda-url.{catalog.REGION}.localhost:{port}/"
    assert info["rest_api_id"] == ids["rest_api"]
    assert info["endpoints"]["rest_v1"]["url"] == (
        f"http://127.0.0.1:{port}/restapis/{ids['rest_api']}/{LAMBDA.stage_name}/_user_request_"
    )
    code, out, err = cli(stack.settings, "status", "--json")
    assert code == 0, err
    assert json.loads(out)["services"][catalog.LOCALSTACK]["lambda"]["endpoints"] == info["endpoints"]
    code, out, err = cli(stack.settings, "status")
    assert code == 0, err
    assert f"Function URL     {url}" in out and info["endpoints"]["rest_v1"]["url"] in out


def test_the_package_respects_lambdas_limits_and_goes_through_s3(lambda_stack: LambdaStack) -> None:
    package = LAMBDA.zip_file()
    zipped = package.stat().st_size
    unzipped = package_cache.unzipped_size(package)
    print(f"Lambda zip: {zipped / 2**20:.1f} MiB zipped, {unzipped / 2**20:.1f} MiB unzipped")
    assert unzipped < package_cache.UNZIPPED_LIMIT  # 250 MiB, layers included (there are none)
    # Above the 50 MB direct-upload limit, so it must come from S3; that LocalStack refuses a larger direct
    # upload is tested in tests/integration/localstack (test_direct_upload_over_50_mb_is_rejected).
    assert zipped > package_cache.DIRECT_UPLOAD_LIMIT
    gateway = lambda_stack.endpoints.gateway
    head = localstack_endpoints.aws_client("s3", gateway).head_object(Bucket=LAMBDA.code_bucket, Key=LAMBDA.code_key)
    assert head["ContentLength"] == zipped
    config = localstack_endpoints.aws_client("lambda", gateway).get_function_configuration(
        FunctionName=LAMBDA.function_name
    )
    assert config["CodeSize"] == zipped
    assert config["CodeSha256"] == source_code_hash(package)
    assert config["Runtime"] == LAMBDA.runtime and config["Handler"] == LAMBDA.handler


def test_up_again_changes_nothing(lambda_stack: LambdaStack) -> None:
    stack = lambda_stack.stack
    pid = stack.supervisor().info(catalog.LOCALSTACK).pid
    stack.up()
    assert stack.supervisor().info(catalog.LOCALSTACK).pid == pid
    # The deployer, with the environment the stack gives the function, finds everything in place.
    package = package_cache.ensure_zip()
    assert not package.built
    env = function_environment(stack.credentials(), topo=stack.topology)
    result = localstack_deploy.deploy(
        lambda_stack.endpoints.gateway, env, zip_path=package.path, code_sha256=package.code_sha256
    )
    assert result.changed == []
    assert result.endpoints == lambda_stack.endpoints


def test_lambda_environments_listen_on_the_stacks_ports_only(lambda_stack: LambdaStack) -> None:
    lambda_stack.call("function_url", "GET", "/health")  # an environment is up
    localstack = psutil.Process(lambda_stack.stack.supervisor().info(catalog.LOCALSTACK).pid)
    listening = {
        (c.laddr.ip, c.laddr.port)
        for p in (localstack, *localstack.children(recursive=True))
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    ports = {port for _, port in listening}
    settings = lambda_stack.stack.settings
    assert {ip for ip, _ in listening} == {"127.0.0.1"}
    assert settings.localstack_port in ports
    assert ports - {settings.localstack_port} <= set(settings.lambda_ports())
    assert len(ports) >= 3  # the gateway and the two servers of at least one execution environment


def _cold_start(ls: LambdaStack, env: dict[str, str], marker: str) -> tuple[float, dict[str, Any]]:
    """Change the function's environment (LocalStack then starts a new execution environment) and time the
    first request after it: ``(seconds, /predict answer)``."""
    lam = localstack_endpoints.aws_client("lambda", ls.endpoints.gateway)
    lam.update_function_configuration(
        FunctionName=LAMBDA.function_name, Environment={"Variables": {**env, "MLOPS_TEST_COLD_START": marker}}
    )
    lam.get_waiter("function_updated_v2").wait(
        FunctionName=LAMBDA.function_name, WaiterConfig={"Delay": 0.25, "MaxAttempts": 240}
    )
    started = time.perf_counter()
    response = ls.call("function_url", "POST", "/predict", json=sample_request(SETTINGS))
    seconds = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return seconds, response.json()


def test_a_new_champion_is_served_after_the_next_cold_start(lambda_stack: LambdaStack) -> None:
    ls, stack = lambda_stack, lambda_stack.stack
    env = function_environment(stack.credentials(), topo=stack.topology)
    # Alias checks off (only at init, i.e. a cold start), so that nothing else can swap the model in.
    frozen = {**env, "MLOPS_API_POLL_INTERVAL_S": "0"}
    cold, answer = _cold_start(ls, frozen, "1")
    assert answer["model"]["version"] == ls.champion
    warm = []
    for _ in range(20):
        started = time.perf_counter()
        assert ls.call("function_url", "POST", "/predict", json=sample_request(SETTINGS)).status_code == 200
        warm.append(time.perf_counter() - started)
    print(f"Function URL: cold start {cold:.2f} s, warm median {statistics.median(warm) * 1000:.1f} ms")

    client = MlflowClient(tracking_uri=stack.url(catalog.MLFLOW))
    name = get_spec(SETTINGS.dataset).registered_model
    current = client.get_model_version(name, ls.champion)
    new = client.create_model_version(
        name,
        current.source,
        run_id=current.run_id,
        tags={"test": "lambda-cold-start"},
        model_id=current.source.removeprefix("models:/"),
    )
    client.set_registered_model_alias(name, "champion", new.version)
    try:
        assert served_version(ls) == ls.champion  # warm: still the model loaded at init
        cold, answer = _cold_start(ls, frozen, "2")
        assert answer["model"]["version"] == str(new.version)
        print(f"new champion v{new.version} served after a cold start of {cold:.2f} s")
        assert served_version(ls, "rest_v1") == str(new.version)
    finally:
        client.set_registered_model_alias(name, "champion", ls.champion)
        wait_until_served(stack, ls.champion)
        # The stack's own configuration again (the deployer's update path on a live LocalStack).
        package = package_cache.ensure_zip()
        result = localstack_deploy.deploy(
            ls.endpoints.gateway, env, zip_path=package.path, code_sha256=package.code_sha256
        )
        assert result.changed == [f"lambda function {LAMBDA.function_name} configuration (Environment)"]
        wait_for(lambda: served_version(ls) == ls.champion, 60, f"the Lambda to serve v{ls.champion} again")


def test_a_restarted_localstack_redeploys_the_lambda_itself(lambda_stack: LambdaStack) -> None:
    """LocalStack forgets everything when it restarts (here: killed, restarted by supervisord); its ready hook
    deploys the function again, at the same URLs, serving the champion, without `up`. `up` then changes
    nothing."""
    stack = lambda_stack.stack
    old = stack.supervisor().info(catalog.LOCALSTACK).pid
    runtimes = [p.pid for p in psutil.Process(old).children(recursive=True)]
    os.kill(old, signal.SIGKILL)
    wait_for(
        lambda: (i := stack.supervisor().info(catalog.LOCALSTACK)).state == "RUNNING" and i.pid != old,
        60,
        "supervisord to restart LocalStack",
    )
    hook_log = stack.paths.log(local_service.REDEPLOY_LOG)
    # The hook's last line is printed once the whole deployment (function, URL, REST front) answered; the
    # status turns healthy earlier, as soon as the function itself answers.
    took = wait_for(
        lambda: f"{LAMBDA.function_name} redeployed" in hook_log.read_text(),
        180,
        lambda: f"LocalStack's ready hook to redeploy the Lambda; its log:\n{hook_log.read_text()}",
    )
    print(f"Lambda redeployed by LocalStack's ready hook {took:.1f} s after the restart")
    assert stack.status()["services"][catalog.LOCALSTACK]["healthy"]
    assert not [pid for pid in runtimes if psutil.pid_exists(pid)], "function runtimes outlived LocalStack"
    assert stack.lambda_endpoints() == lambda_stack.clients  # same URLs
    assert served_version(lambda_stack) == lambda_stack.champion
    # `up` finds everything in place: LocalStack keeps running, the deployer changes nothing.
    pid = stack.supervisor().info(catalog.LOCALSTACK).pid
    stack.up()
    assert stack.supervisor().info(catalog.LOCALSTACK).pid == pid
    env = function_environment(stack.credentials(), topo=stack.topology)
    assert localstack_deploy.deploy(lambda_stack.endpoints.gateway, env, zip_path=LAMBDA.require_zip()).changed == []
