"""`python -m modeling_cast.commands.hub_configs`: the generator of hub_configs/."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT

from modeling_cast.commands.hub_configs import main


def test_named_models_generator_cli_writes_one_model(tmp_path):
    assert main(["--output", str(tmp_path), "--name", "cast-small"]) == 0
    assert sorted(path.name for path in (tmp_path / "cast-small").iterdir()) == [
        "README.md", "config.json", "preprocessor_config.json"
    ]


def test_generator_runs_as_module_and_rejects_unknown_name(tmp_path):
    command = [sys.executable, "-m", "modeling_cast.commands.hub_configs", "--output", str(tmp_path)]
    result = subprocess.run([*command, "--name", "cast-huge"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice: 'cast-huge'" in result.stderr
    assert not list(tmp_path.iterdir())
