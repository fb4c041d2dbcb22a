# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Fetch on first use: download a released model's official checkpoint, convert it and install it in the cache.

`from_pretrained("cast-base")` on a machine where the name is not cached (see `registry.explain_missing_models`) and
`cast-convert --model-name cast-base --download` call `fetch_named_model`:

1. `huggingface_hub.hf_hub_download` fetches the official file from `twke/CAST` into the Hub cache (resumable, with
   its progress bar; `HF_ENDPOINT`, `HF_TOKEN` and `token=` are respected) and its sha256 is checked against the
   Hub's etag;
2. the file is read with `torch.load(weights_only=True)`, memory-mapped, and only the base encoder is converted and
   checked (layout, `arch`, every key and shape, finite values);
3. the converted folder is staged next to the cache and installed under the name (`cache.install_to_cache`, every
   step written under a temporary name first), so an interrupted or failed run leaves nothing that resolves.

A download that is corrupt or unreadable is removed from the cache, so that a second attempt starts clean; any
failure raises `FetchError` (an `OSError`) naming the file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch
from filelock import FileLock
from huggingface_hub import hf_hub_download, is_offline_mode, try_to_load_from_cache
from huggingface_hub.file_download import repo_folder_name
from transformers.utils import logging

from .cache import hub_cache_dir, install_to_cache, make_shareable
from .registry import (
    OFFICIAL_HUB_REPOSITORY,
    MissingModelError,
    NamedModel,
    get_named_model,
    missing_model_message,
    official_file_url,
)

__all__ = ["FetchError", "download_official_checkpoint", "fetch_named_model", "remove_downloaded_checkpoint"]

logger = logging.get_logger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HASH_CHUNK = 16 * 1024 * 1024


class FetchError(MissingModelError):
    """A released model that could not be fetched: the download, the conversion or the installation failed."""


def download_official_checkpoint(
    entry: NamedModel, cache_dir: str | os.PathLike | None = None, token: bool | str | None = None
) -> Path:
    """Download (or find in the Hub cache) the official checkpoint of `entry` and check its sha256 against the
    Hub's etag. Returns the cached file. Raises FetchError for a name without a published file, a failed download
    or a corrupt file (which is removed from the cache)."""
    if entry.official_file is None:
        raise FetchError(missing_model_message(entry.name, cache_dir))
    try:
        path = Path(hf_hub_download(
            OFFICIAL_HUB_REPOSITORY, entry.official_file, cache_dir=hub_cache_dir(cache_dir), token=token
        ))
    except OSError as error:  # huggingface_hub's HTTP, offline and file-system errors are all OSErrors
        raise FetchError(
            f"could not download the official {entry.name} checkpoint {official_file_url(entry)}: {error}"
        ) from error
    _check_sha256(entry, path)
    return path


def _check_sha256(entry: NamedModel, path: Path) -> None:
    # The Hub names an LFS file (every checkpoint) by its sha256, and so does the cache's blob: a mismatch is a
    # corrupt or truncated download.
    blob = path.resolve()
    if not _SHA256.match(blob.name):
        return
    digest = hashlib.sha256()
    with open(blob, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    if digest.hexdigest() != blob.name:
        remove_downloaded_checkpoint(path)
        raise FetchError(
            f"the download of {official_file_url(entry)} is corrupt or truncated (sha256 {digest.hexdigest()}, the "
            f"Hub says {blob.name}); it was removed from the cache, try again"
        )


def remove_downloaded_checkpoint(path: str | os.PathLike) -> None:
    """Remove a downloaded file from the Hub cache: its snapshot entry and the blob it points to."""
    path = Path(path)
    blob = path.resolve()
    if path.is_symlink():
        path.unlink()
    blob.unlink(missing_ok=True)


def _is_cached(name: str, cache_dir: str | os.PathLike | None) -> bool:
    return isinstance(try_to_load_from_cache(name, "config.json", cache_dir=hub_cache_dir(cache_dir)), str)


def fetch_named_model(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    token: bool | str | None = None,
    keep_original: bool = True,
) -> Path:
    """
    Put the released model `name` into the local Hugging Face cache: download its official checkpoint, convert it
    and install the converted folder under `name`, so that `from_pretrained(name)` loads it, also offline.

    Args:
        name (`str`): a released model name, e.g. "cast-base".
        cache_dir (`str` or `os.PathLike`, *optional*): the Hub cache (default `HF_HUB_CACHE`).
        token (`bool` or `str`, *optional*): Hub token for the download (default: huggingface_hub's own setting).
        keep_original (`bool`, *optional*, defaults to `True`): keep the downloaded training checkpoint in the cache
            (as the Hub cache does); `False` removes it once the conversion is installed.

    Returns the installed snapshot folder. Raises MissingModelError offline (the message names the file to fetch) and
    FetchError when the download, the conversion or the installation fails; nothing half-written stays in the cache.
    """
    entry = get_named_model(name)
    if is_offline_mode():
        raise MissingModelError(missing_model_message(name, cache_dir))
    cache = hub_cache_dir(cache_dir)
    lock_path = cache / ".locks" / repo_folder_name(repo_id=name, repo_type="model") / "cast-fetch.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path)):  # another process may be fetching the same model
        if _is_cached(name, cache_dir):
            return Path(try_to_load_from_cache(name, "config.json", cache_dir=cache)).parent
        logger.warning(
            "%s is not in the local Hugging Face cache: downloading the official checkpoint %s once, then converting "
            "it (the next loads are offline)", name, official_file_url(entry),
        )
        original = download_official_checkpoint(entry, cache_dir, token)
        snapshot = _convert_and_install(entry, original, cache)
    if not keep_original:
        remove_downloaded_checkpoint(original)
    logger.warning("%s: converted %s and installed it in the cache as %s", name, original.name, snapshot)
    return snapshot


def _convert_and_install(entry: NamedModel, original: Path, cache: Path) -> Path:
    # the conversion tooling is imported only here: `import modeling_cast` must not load it
    from modeling_cast.conversion.convert_cast_original_to_hf import (
        CheckpointError,
        check_checkpoint_matches,
        convert_official_checkpoint,
        detect_checkpoint_layout,
        load_official_checkpoint,
        write_converted_folder,
    )

    where = f"the official {entry.name} checkpoint {official_file_url(entry)} (cached as {original})"
    try:
        checkpoint = load_official_checkpoint(original)
    except CheckpointError as error:
        remove_downloaded_checkpoint(original)  # unreadable: the next attempt downloads it again
        raise FetchError(f"{where} cannot be read, so it was removed from the cache; try again: {error}") from error
    # staged on the cache's file system, so that installing moves files instead of copying them
    staging = Path(tempfile.mkdtemp(prefix=".cast-fetch-", dir=cache))
    try:
        make_shareable(staging)
        official = detect_checkpoint_layout(checkpoint)
        del checkpoint
        official.training_state_dict = None  # the momentum encoder, projector and predictor are not converted
        check_checkpoint_matches(official, entry)
        tensors, _ = convert_official_checkpoint(official, entry)
        official = None  # release the memory-mapped file before writing
        _check_finite(tensors)
        folder = write_converted_folder(staging / entry.name, entry, tensors)
        del tensors
        return install_to_cache(folder, entry.name, cache, move=True)
    except CheckpointError as error:
        raise FetchError(f"{where} cannot be converted: {error}") from error
    except OSError as error:  # a full disk, permissions: the converted folder is not installed
        raise FetchError(f"{where} was downloaded, but converting and installing it failed: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_finite(tensors: dict[str, torch.Tensor]) -> None:
    from modeling_cast.conversion.convert_cast_original_to_hf import CheckpointError

    broken = [name for name, tensor in tensors.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if broken:
        raise CheckpointError(f"the weights hold NaN or infinite values in {sorted(broken)[:10]}")
