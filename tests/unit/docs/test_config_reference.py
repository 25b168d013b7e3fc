"""The configuration reference in docs/ is generated from the settings classes and must be current."""

from __future__ import annotations

from infra import config_reference


def test_the_configuration_reference_is_current() -> None:
    """docs/configuration-reference.md equals what the settings classes render (else: regenerate it)."""
    assert config_reference.REFERENCE.read_text() == config_reference.render(), (
        "docs/configuration-reference.md is stale: run `python -m infra.config_reference` (or `make docs`)"
    )


def test_every_settings_field_is_documented() -> None:
    """Each field of every settings class has a description and appears in the reference by its variable."""
    text = config_reference.render()
    for section in config_reference.sections():
        for name, field in section.cls.model_fields.items():
            assert field.description, f"{section.cls.__name__}.{name} has no description"
            for env in config_reference.env_names(section.cls, name, field):
                assert f"`{env}`" in text, env


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch) -> None:
    """``--check`` exits 1 on a stale file and 0 on a current one."""
    stale = tmp_path / "configuration-reference.md"
    stale.write_text("old\n")
    monkeypatch.setattr(config_reference, "REFERENCE", stale)
    monkeypatch.setattr(config_reference, "REPO_ROOT", tmp_path)
    assert config_reference.main(["--check"]) == 1
    assert config_reference.main([]) == 0
    assert config_reference.main(["--check"]) == 0
