"""docs/deployment.md documents every setting of the service, with its real default."""

from __future__ import annotations

import pytest

from service.config import Settings
from tests.deploy.files import (
    code_names,
    docs_table,
    documented_default,
    known_setting,
    setting_env_names,
)

pytestmark = pytest.mark.unit

ROWS = docs_table("| setting | default | what |")


def documented() -> dict[str, str]:
    """Every variable of the service's table -> its default cell."""
    return {name: row[1] for row in ROWS for name in code_names(row[0])}


def test_every_setting_of_the_service_is_documented() -> None:
    missing = set(setting_env_names()) - set(documented())
    assert missing == set()
    assert {"PORT", "MLFLOW_TRACKING_URI"} <= set(documented())  # the usual names work too


def test_documented_settings_exist() -> None:
    unknown = {
        name
        for name in documented()
        if name not in ("PORT", "MLFLOW_TRACKING_URI") and not known_setting(name)
    }
    assert unknown == set()


def test_documented_defaults_are_the_settings_defaults() -> None:
    cells = documented()
    for env_name, field in setting_env_names().items():
        given = code_names(cells[env_name])
        if not given:  # described in words instead (a default that is being changed)
            continue
        expected = documented_default(Settings.model_fields[field].default)
        assert given == [expected], env_name
