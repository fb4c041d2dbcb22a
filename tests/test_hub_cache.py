"""The local Hugging Face cache layout (`modeling_cast.hub.cache`) that makes `from_pretrained("<name>")` work
offline."""

from __future__ import annotations

import json
import os

import pytest
from huggingface_hub import hf_hub_download

from modeling_cast.hub.cache import install_to_cache


def _fake_model_folder(folder):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "cast"}))
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def test_install_to_cache_lays_out_hub_snapshot(tmp_path):
    folder = _fake_model_folder(tmp_path / "model")
    cache = tmp_path / "cache"
    snapshot = install_to_cache(folder, "cast-base", cache)
    repo = cache / "models--cast-base"
    commit = (repo / "refs" / "main").read_text()
    assert snapshot == repo / "snapshots" / commit and len(commit) == 40
    weights = snapshot / "model.safetensors"
    assert weights.is_symlink() and weights.resolve().parent == (repo / "blobs").resolve()
    assert weights.read_bytes() == b"weights"
    resolved = hf_hub_download("cast-base", "config.json", cache_dir=cache, local_files_only=True)
    assert os.path.samefile(resolved, snapshot / "config.json")
    assert install_to_cache(folder, "cast-base", cache) == snapshot  # deterministic commit hash
    assert not [path for path in repo.rglob("*") if "incomplete" in path.name]


def test_install_to_cache_rejects_invalid_name_and_non_model_folder(tmp_path):
    folder = _fake_model_folder(tmp_path / "model")
    with pytest.raises(ValueError, match=r"`name`.*not a valid Hugging Face repo id"):
        install_to_cache(folder, "cast base!", tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"`folder`.*no config.json"):
        install_to_cache(tmp_path / "empty", "cast-base", tmp_path / "cache")
