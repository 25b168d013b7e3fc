"""Command line of the embedded stack: ``python -m infra.local up|down|destroy|status|logs|env|pipeline|gate|...``.

Settings come from the environment (``MLOPS_STACK_*``, see :class:`~infra.local.settings.StackSettings`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from infra import catalog
from infra.local.stack import Stack, StackError, tail

app = typer.Typer(add_completion=False, no_args_is_help=True, help="The embedded MLOps stack (local processes).")


def _stack() -> Stack:
    return Stack(out=lambda msg: typer.echo(msg, err=False))


def _die(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(1)


def _print_table(status: dict) -> None:
    rows = [("SERVICE", "STATE", "HEALTH", "URL", "DETAIL")]
    for name, s in status["services"].items():
        rows.append((name, s["state"], "healthy" if s["healthy"] else "UNHEALTHY", s.get("url", "-"), s["detail"]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4][:100])
    runs = status.get("dag_runs") or {}
    for run in runs.get("stuck", []):
        typer.echo(
            f"STUCK DAG run {run['dag_id']} {run['run_id']}: no progress for {run['no_progress_s']} s "
            f"(waiting: {', '.join(run['waiting']) or 'nothing'}); see `make logs ARGS=airflow-scheduler`"
        )
    _print_ports(status.get("ports") or {})
    eps = status["services"].get(catalog.LOCALSTACK, {}).get("lambda")
    if eps:
        _print_lambda(eps)


def _print_ports(ports: dict[str, int]) -> None:
    """Every port the stack listens on (derived ones too: SeaweedFS' gRPC twins, the Lambda range), compactly."""
    if not ports:
        return
    lambda_ports = sorted(p for owner, p in ports.items() if owner.startswith("localstack lambda environments"))
    named = [f"{owner} {port}" for owner, port in ports.items() if not owner.startswith("localstack lambda")]
    if lambda_ports:
        named.append(f"localstack lambda environments {lambda_ports[0]}-{lambda_ports[-1]}")
    typer.echo("\nPorts (127.0.0.1; MLOPS_STACK_PORT_OFFSET moves them all): " + ", ".join(named))


def _print_lambda(info: dict) -> None:
    """The API deployed as a Lambda in LocalStack: both endpoints and how to call them."""
    url, rest = info["endpoints"]["function_url"], info["endpoints"]["rest_v1"]
    typer.echo(f"\nLambda {info['function_name']} in LocalStack (append /predict, /ready, /docs...):")
    typer.echo(f"  Function URL     {url['url']}")
    host = url["headers"]["Host"]
    typer.echo(f"                   (curl and browsers resolve *.localhost; else {url['base_url']}/ + 'Host: {host}')")
    typer.echo(f"  REST API (v1)    {rest['url']}/")
    typer.echo(f"                   or {rest['alt_url']}/")
    typer.echo(f"  e.g.             {url['curl']}")


@app.command()
def up(
    services_only: Annotated[
        bool, typer.Option("--services-only", help="Only start the services; no training, no sample prediction.")
    ] = False,
    retrain: Annotated[
        bool, typer.Option("--retrain", help="Run every active pipeline, also of models with a champion.")
    ] = False,
) -> None:
    """Start the stack (idempotent), train every active model without a champion, serve the champions, summarise."""
    from infra.local.quickstart import run

    stack = _stack()
    typer.echo(f"starting the stack in {stack.paths.root}")
    try:
        if services_only:
            stack.up()
        else:
            run(stack, retrain=retrain, out=typer.echo)
            return
    except (StackError, RuntimeError, ValueError, OSError) as e:
        _die(e)
    topo = stack.topology
    typer.echo("")
    for name in stack.services():
        if catalog.SERVICES[name].port:
            typer.echo(f"  {name:<22} {topo.url(name)}")
    typer.echo(
        f"\n  Airflow UI user '{catalog.AIRFLOW_ADMIN_USER}'; secrets in {stack.paths.credentials} "
        "(`python -m infra.local env` prints client variables)."
    )


@app.command()
def down() -> None:
    """Stop every service, keep all data."""
    try:
        _stack().down()
    except (StackError, RuntimeError, OSError) as e:
        _die(e)


@app.command()
def destroy() -> None:
    """Stop every service and delete the state directory (data, logs, credentials)."""
    try:
        _stack().destroy()
    except (StackError, RuntimeError, OSError) as e:
        _die(e)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Health of every service; exit status 1 unless all are healthy."""
    st = Stack().status()
    if as_json:
        typer.echo(json.dumps(st, indent=2))
    else:
        sup = st["supervisord"]
        typer.echo(
            f"state dir {st['state_dir']}; supervisord {'pid ' + str(sup['pid']) if sup['running'] else 'not running'}"
        )
        _print_table(st)
    raise typer.Exit(0 if st["healthy"] else 1)


@app.command()
def logs(
    service: Annotated[str | None, typer.Argument(help="Service (or job) name; default: all.")] = None,
    lines: Annotated[int, typer.Option("-n", "--lines", help="Lines to show per log.")] = 40,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines (Ctrl-C stops).")] = False,
) -> None:
    """Show the last lines of a service's log (all services by default)."""
    stack = Stack()
    logdir = stack.paths.logs
    if service:
        files = [stack.log_path(service)]
        if not files[0].exists():
            known = sorted(p.stem for p in logdir.glob("*.log"))
            matches = [k for k in known if service in k]
            if len(matches) != 1:  # "scheduler" is enough for airflow-scheduler
                _die(ValueError(f"no log for {service!r} in {logdir}; known: {', '.join(known) or 'none'}"))
            files = [stack.log_path(matches[0])]
    else:
        files = sorted(logdir.glob("*.log"))
    for f in files:
        if len(files) > 1:
            typer.echo(f"==> {f} <==")
        typer.echo(tail(f, lines))
    if follow:
        _follow(files)


def _follow(files: list[Path]) -> None:
    offsets = {f: f.stat().st_size if f.exists() else 0 for f in files}
    try:
        while True:
            for f in files:
                try:
                    size = f.stat().st_size
                except OSError:
                    continue
                if size < offsets[f]:  # rotated
                    offsets[f] = 0
                if size > offsets[f]:
                    with f.open("rb") as fh:
                        fh.seek(offsets[f])
                        data = fh.read().decode(errors="replace")
                    offsets[f] = size
                    prefix = f"[{f.stem}] " if len(files) > 1 else ""
                    for line in data.splitlines():
                        typer.echo(prefix + line)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


@app.command("redeploy-lambda")
def redeploy_lambda(
    settings_file: Annotated[
        Path | None,
        typer.Option("--settings-file", help="Stack settings as JSON (LocalStack's ready hook passes a snapshot)."),
    ] = None,
) -> None:
    """Deploy the API's Lambda into the running LocalStack again if it is missing.

    LocalStack runs this itself whenever it becomes ready outside `up` (e.g. after supervisord restarted it).
    """
    from infra.local.settings import StackSettings

    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        settings = StackSettings.model_validate_json(settings_file.read_text()) if settings_file else None
        stack = Stack(settings, out=lambda msg: typer.echo(f"{stamp} {msg}"))
        typer.echo(f"{stamp} {stack.redeploy_lambda()}")
    except (StackError, OSError, ValueError) as e:
        _die(e)


@app.command()
def env() -> None:
    """Print `export` lines of the client environment (S3, MLflow, Optuna). Contains secrets."""
    import shlex

    try:
        variables = Stack().client_env()
    except StackError as e:
        _die(e)
    for k, v in sorted(variables.items()):
        typer.echo(f"export {k}={shlex.quote(v)}")


@app.command()
def memory() -> None:
    """Proportional set size (PSS) of the stack's processes."""
    m = Stack().memory()
    for name, mb in sorted(m["by_program"].items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {name:<24} {mb:8.1f} MB")
    typer.echo(f"  {'total':<24} {m['total_mb']:8.1f} MB in {m['processes']} processes")


@app.command()
def pipeline(
    datasets: Annotated[
        list[str] | None, typer.Argument(help="Datasets whose pipelines to run (default: every active one).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Bound on each DAG run, seconds.")] = 900.0,
) -> None:
    """Trigger etl_<dataset> of each dataset at once, follow it and the training_<dataset> run it schedules."""
    from dags.pipeline_ids import pipeline as dag_ids
    from infra.local.pipeline import print_progress, run_pipelines
    from ml.settings import MLSettings

    try:
        names = datasets or catalog.active_datasets(MLSettings())
        pipelines = [(etl, (training,)) for etl, training in map(dag_ids, names)]
        results = run_pipelines(Stack(), pipelines, on_progress=print_progress, timeout=timeout)
    except Exception as e:
        _die(e)
    ok = all(r.state == "success" for r in results)
    for r in results:
        typer.echo(f"  {r.dag_id:<32} {r.run_id:<48} {r.state:<11} {r.seconds:6.1f} s")
    raise typer.Exit(0 if ok else 1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def gate(ctx: typer.Context) -> None:
    """Re-run the registry gate of a model on the running stack: `python -m ml gate <dataset> [--version N]`.

    Runs with the training pipeline's environment (its S3 keys and MLflow user, which may move aliases).
    """
    import os
    import subprocess

    try:
        env = os.environ | Stack().client_env()
    except StackError as e:
        _die(e)
    done = subprocess.run([sys.executable, "-m", "ml", "gate", *ctx.args], env=env, check=False)
    raise typer.Exit(done.returncode)


def main() -> None:
    """Entry point of ``python -m infra.local``."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
