"""Loading and validating monitoring/drift.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
import yaml

from bookrecs.exceptions import ConfigError
from monitoring.config import DEFAULT_CONFIG_PATH, CatMethod, DriftConfig, NumMethod


def write(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "drift.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def default_values() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def test_default_config_loads():
    config = DriftConfig.from_yaml()
    assert config.check("rating_distribution").threshold == pytest.approx(0.1)
    assert config.check("latency_p95").retrain is False


def test_unknown_top_key_rejected(tmp_path):
    values = default_values() | {"alpah": 0.05}
    with pytest.raises(ConfigError, match="alpah"):
        DriftConfig.from_yaml(write(tmp_path, values))


def test_unknown_check_rejected(tmp_path):
    values = default_values()
    values["checks"]["rating_drift"] = {"threshold": 0.1}
    with pytest.raises(ConfigError, match="rating_drift"):
        DriftConfig.from_yaml(write(tmp_path, values))


def test_unknown_check_key_rejected(tmp_path):
    values = default_values()
    values["checks"]["rating_distribution"]["treshold"] = 0.2
    with pytest.raises(ConfigError, match="treshold"):
        DriftConfig.from_yaml(write(tmp_path, values))


def test_alpha_out_of_range(tmp_path):
    with pytest.raises(ConfigError, match="alpha"):
        DriftConfig.from_yaml(write(tmp_path, default_values() | {"alpha": 1.5}))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        DriftConfig.from_yaml(tmp_path / "absent.yaml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "drift.yaml"
    path.write_text("alpha: [0.01\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        DriftConfig.from_yaml(path)


def test_missing_check_named(tmp_path):
    values = default_values()
    del values["checks"]["fallback_rate"]
    config = DriftConfig.from_yaml(write(tmp_path, values))
    with pytest.raises(ConfigError, match="checks.fallback_rate is missing"):
        config.check("fallback_rate")


@pytest.mark.parametrize(("key", "value"), [("num_method", "bogus"), ("cat_method", "ks")])
def test_unknown_evidently_method_rejected(tmp_path, key, value):
    values = default_values()
    values["evidently"][key] = value
    with pytest.raises(ConfigError, match=f"evidently.{key}") as caught:
        DriftConfig.from_yaml(write(tmp_path, values))
    assert repr(value) in str(caught.value)
    assert "wasserstein" in str(caught.value) or "chisquare" in str(caught.value)


def test_methods_match_evidently():
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
    from evidently.legacy.core import ColumnType

    def registered(column_type: ColumnType) -> set[str]:
        return {name for name, tests in _registered_stat_tests.items() if column_type in tests}

    assert set(get_args(NumMethod)) == registered(ColumnType.Numerical)
    assert set(get_args(CatMethod)) == registered(ColumnType.Categorical)
