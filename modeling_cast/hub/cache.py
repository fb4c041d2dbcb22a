# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The local Hugging Face cache: install a model folder under a repo id, laid out exactly as a Hub download, so that
`from_pretrained("<name>")` works offline (`cast-convert --install-to-cache`)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import constants
from huggingface_hub.errors import HFValidationError
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import validate_repo_id

__all__ = ["hub_cache_dir", "install_to_cache", "make_shareable"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
_LFS_MIN_BYTES = 10 * 1024 * 1024  # the Hub stores files from 10 MiB on through LFS (blob name = sha256)
_HASH_CHUNK = 16 * 1024 * 1024


def hub_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The Hugging Face hub cache: `cache_dir`, else `HF_HUB_CACHE` (which honours `HF_HOME`)."""
    return Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)


def _file_digests(path: Path) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file, read in chunks."""
    sha256, git_sha1 = hashlib.sha256(), hashlib.sha1()
    git_sha1.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            sha256.update(chunk)
            git_sha1.update(chunk)
    return sha256.hexdigest(), git_sha1.hexdigest()


def _blob_name(path: Path, digests: tuple[str, str]) -> str:
    # Hub downloads name a blob by its etag: the sha256 for LFS files (weights, large files), the git sha1 otherwise
    is_lfs = path.suffix in _WEIGHT_SUFFIXES or path.stat().st_size >= _LFS_MIN_BYTES
    return digests[0] if is_lfs else digests[1]


def make_shareable(folder: Path) -> None:
    """Give a folder made by `tempfile.mkdtemp` (mode 0700) the permissions of an ordinary new folder."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)


def _link_or_copy(blob: Path, target: Path) -> None:
    try:
        os.symlink(os.path.relpath(blob, target.parent), target)
    except OSError:  # file systems without symlinks: huggingface_hub then stores copies in the snapshot too
        shutil.copyfile(blob, target)


def install_to_cache(
    folder: str | os.PathLike, name: str, cache_dir: str | os.PathLike | None = None, move: bool = False
) -> Path:
    """Place the files of a model folder in the local Hugging Face cache under the repo id `name`, laid out as a Hub
    download would (`models--<name>/{blobs, snapshots/<commit>, refs/main}`), so that `from_pretrained(name)` works
    with `HF_HUB_OFFLINE=1`. The commit hash is the sha1 of the files' names and contents (deterministic). Every
    step writes to a temporary name first, so an interrupted install never leaves a snapshot that resolves.
    `move=True` moves the files instead of copying them (a folder staged on the cache's file system: no second copy
    of the weights on disk). Returns the snapshot folder."""
    try:
        validate_repo_id(name)
    except HFValidationError as error:
        raise ValueError(f"`name` {name!r} is not a valid Hugging Face repo id: {error}") from error
    files = sorted(path for path in Path(folder).iterdir() if path.is_file())
    if not any(path.name == "config.json" for path in files):
        raise ValueError(f"`folder` {str(folder)!r} holds no config.json: not a model folder")
    repo_dir = hub_cache_dir(cache_dir) / repo_folder_name(repo_id=name, repo_type="model")
    blobs_dir = repo_dir / "blobs"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    commit_hash = hashlib.sha1()
    blob_names = {}
    for path in files:
        blob_names[path.name] = _blob_name(path, _file_digests(path))
        commit_hash.update(f"{path.name}\0{blob_names[path.name]}\n".encode())
        blob = blobs_dir / blob_names[path.name]
        if not blob.exists():
            partial = blobs_dir / f"{blob.name}.incomplete"
            (shutil.move if move else shutil.copyfile)(path, partial)
            os.replace(partial, blob)
    commit = commit_hash.hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    if not snapshot.exists():
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{commit}.incomplete-", dir=snapshot.parent))
        make_shareable(staging)
        for filename, blob_name in blob_names.items():
            _link_or_copy(blobs_dir / blob_name, staging / filename)
        os.replace(staging, snapshot)
    refs = repo_dir / "refs"
    refs.mkdir(exist_ok=True)
    partial_ref = refs / "main.incomplete"
    partial_ref.write_text(commit)
    os.replace(partial_ref, refs / "main")
    return snapshot
