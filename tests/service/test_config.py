"""Unit tests of service.config: prefix, aliases, .env, validation, caching."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ddnn.config import PAPER_RTT_MS
from ddnn.policies import DEFAULT_POLICY, ONLINE_POLICY_NAMES
from service.config import Settings, get_settings

pytestmark = pytest.mark.unit


def test_settings_defaults_match_the_paper_and_the_readme(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "DDNN_PORT", "MLFLOW_TRACKING_URI", "DDNN_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.rtt_ms == pytest.approx(42.46)
    assert settings.alias == "champion" and settings.device == "auto" and settings.role == "both"
    assert settings.tracking_uri is None and settings.admin_api_key is None


def test_settings_defaults_come_from_their_owners(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DDNN_RTT_MS", raising=False)
    monkeypatch.delenv("DDNN_DEFAULT_POLICY", raising=False)
    settings = Settings(_env_file=None)
    assert settings.rtt_ms == PAPER_RTT_MS
    assert settings.default_policy == DEFAULT_POLICY


@pytest.mark.parametrize("name", ONLINE_POLICY_NAMES)
def test_settings_accept_every_online_policy(name: str) -> None:
    assert Settings(_env_file=None, default_policy=name).default_policy == name


def test_settings_read_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDNN_RTT_MS", "10.5")
    monkeypatch.setenv("DDNN_DEFAULT_POLICY", "ml")
    monkeypatch.setenv("DDNN_ADMIN_API_KEY", "s3cret")
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///x.db")
    settings = Settings(_env_file=None)
    assert settings.rtt_ms == 10.5 and settings.default_policy == "ml" and settings.port == 9123
    assert settings.tracking_uri == "sqlite:///x.db"
    assert settings.admin_api_key is not None
    assert settings.admin_api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_settings_prefixed_tracking_uri_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///other.db")
    monkeypatch.setenv("DDNN_TRACKING_URI", "http://127.0.0.1:5000")
    assert Settings(_env_file=None).tracking_uri == "http://127.0.0.1:5000"


def test_settings_read_dotenv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DDNN_ALIAS", raising=False)
    env = tmp_path / ".env"
    env.write_text("DDNN_ALIAS=challenger\nDDNN_CLOUD_URL=http://cloud:8001/\n")
    settings = Settings(_env_file=env)
    assert settings.alias == "challenger" and settings.cloud_url == "http://cloud:8001"


@pytest.mark.parametrize(
    "overrides",
    [
        {"default_policy": "oracle"},
        {"device": "tpu"},
        {"rtt_ms": -1},
        {"cloud_url": "cloud:8001"},
        {"role": "proxy"},
        {"load_retry_initial_s": 10, "load_retry_max_s": 1},
    ],
)
def test_settings_invalid_values_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **overrides)  # type: ignore[arg-type]


def test_get_settings_is_cached() -> None:
    get_settings.cache_clear()
    try:
        assert get_settings() is get_settings()
    finally:
        get_settings.cache_clear()
