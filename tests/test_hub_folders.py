"""The named models' folders (`modeling_cast.hub.folders`): hub_configs/ is generated from the table."""

from __future__ import annotations

from conftest import REPO_ROOT

from modeling_cast.hub.folders import generate_hub_configs
from modeling_cast.hub.registry import NAMED_MODELS

HUB_CONFIGS = REPO_ROOT / "hub_configs"


def test_hub_configs_are_up_to_date(tmp_path):
    """hub_configs/ is generated from the table: regenerate with `python -m modeling_cast.commands.hub_configs
    --output hub_configs` when this fails."""
    generate_hub_configs(tmp_path)
    assert sorted(path.name for path in HUB_CONFIGS.iterdir()) == sorted(NAMED_MODELS)
    for name in NAMED_MODELS:
        for filename in ("config.json", "preprocessor_config.json", "README.md"):
            expected = (tmp_path / name / filename).read_text()
            assert (HUB_CONFIGS / name / filename).read_text() == expected, f"hub_configs/{name}/{filename} is stale"
        assert sorted(path.name for path in (HUB_CONFIGS / name).iterdir()) == [
            "README.md", "config.json", "preprocessor_config.json"
        ]
