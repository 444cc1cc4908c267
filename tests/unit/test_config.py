"""Every YAML under configs/ loads, and bad values fail on load with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest
from detector.config import ConfigError, FrontEndConfig, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_the_front_end_config_loads():
    assert isinstance(load_config(CONFIGS / "frontend.yaml"), FrontEndConfig)


def test_the_server_config_writes_out_every_default():
    from serve.config import ServeConfig, load_serve_config

    cfg = load_serve_config(CONFIGS / "serve.yaml")
    # every setting is written out and equals its built-in default: the starter models included
    assert cfg == ServeConfig() and (cfg.visual, cfg.audio) == ("starter", "starter")


def test_every_config_is_tested():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == ["frontend.yaml", "serve.yaml"]


def written_out(model, data: dict, prefix: str = "") -> list[str]:
    """Settings of `model` (nested ones too) that `data` leaves to the defaults."""
    from pydantic import BaseModel

    absent = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if name not in data:
            absent.append(prefix + name)
        elif isinstance(value, BaseModel):
            absent += written_out(value, data[name], f"{prefix}{name}.")
    return absent


def test_serve_yaml_lists_every_setting():
    import yaml

    from serve.config import ServeConfig

    assert written_out(ServeConfig(), yaml.safe_load((CONFIGS / "serve.yaml").read_text())) == []


def test_frontend_yaml_states_the_built_in_defaults():
    assert load_config(CONFIGS / "frontend.yaml") == FrontEndConfig()


def test_unknown_keys_and_bad_values_fail(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("faces:\n  crop_sise: 224\n")
    with pytest.raises(ConfigError, match=f"^{bad}: faces.crop_sise: Extra inputs are not permitted$"):
        load_config(bad)
    with pytest.raises(ConfigError, match="exactly one"):
        load_config(None, {"sampling.fps": 5})
    with pytest.raises(ConfigError, match="detect_scale"):
        load_config(None, {"faces.detect_scale": 2})
