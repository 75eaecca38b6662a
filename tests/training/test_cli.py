"""The ddnn-train CLI: every --help works, configuration is resolved in order, errors are clear."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from training.__main__ import COMMANDS, build_parser, build_settings, main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_of_every_subcommand(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"ddnn-train {command}" in capsys.readouterr().out


def test_module_entry_point_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "training", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout


def test_make_paper_flags_are_accepted(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["run-all", "--profile", "paper", "--data", "x.csv", "--top-k", "16"]
        + ["--activity", "internet", "--out", str(tmp_path)]
    )
    settings = build_settings(args)
    assert settings.data.top_k == 16 and settings.data.activity == "internet"
    assert settings.data.source == str(Path("x.csv").resolve())
    assert (settings.model.n_steps, settings.model.cloud_hidden) == (144, (256, 128))
    assert settings.model.head_hidden == (128, 64, 32)


def test_flags_override_the_file_which_overrides_the_profile(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"train": {"epochs": 7, "lr": 0.01}, "model": {"n_steps": 30}}))
    args = build_parser().parse_args(
        ["train", "--config", str(config), "--epochs", "3", "--w-local", "0.8", "--device", "cpu"]
    )
    settings = build_settings(args)
    assert (settings.train.epochs, settings.train.lr, settings.model.n_steps) == (3, 0.01, 30)
    assert settings.weight_pairs == (0.8,) and settings.device == "cpu"
    assert settings.model.cloud_hidden == (64, 32)  # from the small profile


def test_unknown_config_key_is_an_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"trian": {"epochs": 1}}))
    with caplog.at_level(logging.ERROR):
        code = main(["train", "--config", str(config), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "unknown key(s) ['trian']" in caplog.text


def test_bad_data_path_exits_with_a_message_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "nowhere" / "demand.csv"
    with caplog.at_level(logging.ERROR):
        code = main(["train", "--data", str(missing), "--out", str(tmp_path / "out")])
    assert code == 2
    assert str(missing) in caplog.text and "does not exist" in caplog.text


def test_csv_with_wrong_columns_exits_with_a_message_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "demand.csv"
    bad.write_text("cell,time,load\n1,2013-11-01T00:00:00Z,3.0\n")
    with caplog.at_level(logging.ERROR):
        code = main(["train-baselines", "--data", str(bad), "--out", str(tmp_path / "out")])
    assert code == 2
    assert str(bad) in caplog.text


def test_missing_activity_column_names_the_file_and_the_columns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "demand.csv"
    bad.write_text("cell_id,timestamp,record_count\n1,2013-11-01T00:00:00Z,3.0\n")
    with caplog.at_level(logging.ERROR):
        code = main(["sweep", "--data", str(bad), "--out", str(tmp_path / "out")])
    assert code == 2
    assert str(bad) in caplog.text and "record_count" in caplog.text
