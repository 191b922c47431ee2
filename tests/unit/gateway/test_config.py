"""The settings table is the single source: docs/configuration.md is generated from it and
current, and the ``Settings`` defaults are the table's defaults."""

from __future__ import annotations

import msgspec
import pytest

from gateway import config
from tests.support.server import ROOT

REGENERATE = "python -m gateway settings --markdown > docs/configuration.md"


def test_configuration_doc_is_current() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc == config.markdown(), f"docs/configuration.md is stale: run `{REGENERATE}`"


def test_settings_defaults_equal_the_table() -> None:
    fields = {f.name: f for f in msgspec.structs.fields(config.Settings)}
    table = {s.name: s for s in config.SETTINGS}
    assert set(fields) == set(table), set(fields) ^ set(table)
    for name, setting in table.items():
        assert fields[name].default == setting.default, name
        assert isinstance(setting.default, setting.type), name
    assert config.Settings() == config.load(env={})


def test_environment_and_aliases() -> None:
    s = config.load(env={"PORT": "5000", "SECRET_KEY_BASE": "k", "CONVERGER_ACCESS_LOG": "yes"})
    assert (s.port, s.secret_key, s.access_log) == (5000, "k", True)
    # The first variable of a setting wins over its alias; flags win over both.
    s = config.load(env={"CONVERGER_PORT": "1", "PORT": "2"})
    assert s.port == 1
    assert config.load(env={"CONVERGER_PORT": "1"}, port=3).port == 3
    with pytest.raises(config.ConfigError):
        config.load(env={"CONVERGER_PORT": "eighty"})
    with pytest.raises(config.ConfigError):
        config.load(env={"CONVERGER_SYNCHRONOUS": "OFF"})


@pytest.mark.parametrize("env", [
    {"CONVERGER_DELIVERY_RETENTION_DAYS": "-1"}, {"CONVERGER_HEALTH_RETENTION_DAYS": "0"},
    {"CONVERGER_DELIVERY_CONCURRENCY": "0"}, {"CONVERGER_WEBHOOK_TIMEOUT": "0"},
    {"CONVERGER_PIPELINE": "kafka"}, {"CONVERGER_DB_MAX_PAGES": "-5"},
    {"CONVERGER_ADMIN_IP_WHITELIST": "10.0.0.0/33"},
])
def test_unusable_values_are_refused_with_the_variable_named(env: dict[str, str]) -> None:
    [(var, _)] = env.items()
    with pytest.raises(config.ConfigError, match=var.removeprefix("CONVERGER_").lower()
                       if var.endswith("WHITELIST") else var):
        config.load(env=env)


@pytest.mark.parametrize(("env", "message"), [
    ({"CONVERGER_PIPELINE": "kafka"}, "must be one of queue, inline, rabbitmq, nats"),
    ({"CONVERGER_PIPELINE": "rabbitmq"}, "needs CONVERGER_PIPELINE_URL"),
    ({"CONVERGER_PIPELINE": "nats", "CONVERGER_PIPELINE_URL": "nats://h:notaport"}, "malformed"),
    ({"CONVERGER_PIPELINE": "nats", "CONVERGER_PIPELINE_URL": "amqp://h:5672/"},
     "must start with nats:// or tls://"),
    ({"CONVERGER_PIPELINE": "rabbitmq", "CONVERGER_PIPELINE_URL": "amqp://"}, "names no host"),
])
def test_a_broker_pipeline_needs_a_usable_url_of_its_broker(env: dict[str, str],
                                                            message: str) -> None:
    with pytest.raises(config.ConfigError, match=message):
        config.load(env=env)


def test_broker_pipelines_load() -> None:
    s = config.load(env={"CONVERGER_PIPELINE": "nats", "CONVERGER_PIPELINE_URL": "nats://h:4222",
                         "CONVERGER_PIPELINE_CONSUME": "0"})
    assert (s.pipeline, s.pipeline_url, s.pipeline_consume) == ("nats", "nats://h:4222", False)
    s = config.load(env={"CONVERGER_PIPELINE": "rabbitmq",
                         "CONVERGER_PIPELINE_URL": "amqps://u:p@h/vhost"})
    assert s.pipeline_consume is True
