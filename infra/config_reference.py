"""The configuration reference (``docs/configuration-reference.md``), generated from the settings classes.

Every environment variable the platform reads through pydantic-settings is a field of one of
:data:`SETTINGS`; this module renders them (variable names, type, default, description) as Markdown, so
the reference cannot drift from the code. ``tests/unit/docs`` fails when the file is stale.

    python -m infra.config_reference          # rewrite docs/configuration-reference.md
    python -m infra.config_reference --check  # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import enum
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
REFERENCE = REPO_ROOT / "docs" / "configuration-reference.md"


@dataclass(frozen=True)
class SettingsSection:
    """One settings class and who reads it."""

    title: str
    cls: type[BaseSettings]
    read_by: str


def sections() -> list[SettingsSection]:
    """The settings classes of the platform, in the order of the reference."""
    from api.settings import ApiSettings
    from infra.local.settings import StackSettings
    from ml.settings import MLSettings, S3Settings

    return [
        SettingsSection(
            "ML library, DAGs and training", MLSettings, "`ml/` (the ETL and training DAGs, `python -m ml`)"
        ),
        SettingsSection("S3 connection", S3Settings, "`ml/` and the DAGs (the data lake, MLflow's artifacts)"),
        SettingsSection("Prediction API", ApiSettings, "`api/` (process, container and Lambda)"),
        SettingsSection("Embedded stack", StackSettings, "`infra/local` (`make up`, `make status`, `make down`)"),
    ]


def env_names(cls: type[BaseSettings], name: str, field: FieldInfo) -> list[str]:
    """The environment variables that set ``field`` (its aliases, else the prefixed field name)."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    prefix = str(cls.model_config.get("env_prefix", ""))
    return [f"{prefix}{name}".upper()]


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    for noise in ("typing.", "pathlib.", "pydantic.types.", "<class '", "'>"):
        text = text.replace(noise, "")
    return text.replace("NoneType", "None")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "computed"
    value = field.default
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, Path):
        try:
            return f"`<repo>/{value.relative_to(REPO_ROOT)}`"
        except ValueError:
            return f"`{value}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    """The whole reference as Markdown."""
    lines = [
        "# Configuration reference",
        "",
        "Every environment variable read through the settings classes, generated from them by",
        "`python -m infra.config_reference` (do not edit by hand; `tests/unit/docs` fails when this file is stale).",
        "Where a row names several variables, the first one set wins. Back to the [README](../README.md).",
    ]
    for section in sections():
        cls = section.cls
        lines += [
            "",
            f"## {section.title}",
            "",
            f"`{cls.__module__}.{cls.__name__}`, read by {section.read_by}. {_cell(cls.__doc__ or '')}",
            "",
            "| Variable | Type | Default | Meaning |",
            "| --- | --- | --- | --- |",
        ]
        for name, field in cls.model_fields.items():
            variables = " or ".join(f"`{env}`" for env in env_names(cls, name, field))
            row = [variables, f"`{_type_name(field.annotation)}`", _default(field), _cell(field.description or "")]
            lines.append(
                "| " + " | ".join(cell.replace("|", "\\|") if i == 1 else cell for i, cell in enumerate(row)) + " |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the reference, or with ``--check`` report whether the file on disk is current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale instead of writing it")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = REFERENCE.read_text() if REFERENCE.exists() else ""
        if current != text:
            print(f"{REFERENCE.relative_to(REPO_ROOT)} is stale: run `python -m infra.config_reference`")
            return 1
        return 0
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(text)
    print(f"wrote {REFERENCE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
