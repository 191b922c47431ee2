"""docs/configuration.md is generated from the settings table and must be current."""

from pathlib import Path

from gateway import config

ROOT = Path(__file__).resolve().parents[3]


def test_configuration_doc_is_current() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc.rstrip("\n") == config.markdown().rstrip("\n"), (
        "regenerate: python -m gateway settings --markdown > docs/configuration.md")


def test_every_setting_is_a_field_with_the_same_default() -> None:
    settings = config.load({})
    for s in config.SETTINGS:
        assert getattr(settings, s.name) == s.default, s.name
