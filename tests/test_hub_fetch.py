"""Fetch on first use (`modeling_cast.hub.fetch`): `from_pretrained("cast-small")` and `pipeline(model="cast-small")`
download the official checkpoint, convert and cache it, against a fake Hub endpoint on 127.0.0.1.

The served checkpoint is a real `cast_small` (the official `small_224` reference weights, cast to float32) wrapped the
MoCo-v3 way: `module.base_encoder.*` with a projector head, a momentum encoder and a predictor, `arch`, `epoch`,
optimizer and scaler state. No other address is contacted: every socket connection elsewhere fails the test.
"""

from __future__ import annotations

import errno
import hashlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import pytest
import torch
from conftest import SHARED_REFERENCE
from huggingface_hub import constants
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModel, pipeline

from modeling_cast import CastModel
from modeling_cast.commands import convert as convert_command
from modeling_cast.conversion import convert_cast_original_to_hf as converter
from modeling_cast.hub.fetch import FetchError
from modeling_cast.hub.registry import NAMED_MODELS, OFFICIAL_HUB_REPOSITORY, MissingModelError

REFERENCE = SHARED_REFERENCE / "small_224.safetensors"
ALONE = SHARED_REFERENCE / "small_224_alone.safetensors"
TINY_MOCO = SHARED_REFERENCE / "moco_tiny_checkpoint.pth.tar"
NAME = "cast-small"
OFFICIAL_FILE = NAMED_MODELS[NAME].official_file
COMMIT = "0123456789abcdef0123456789abcdef01234567"
ATOL = RTOL = 1e-4

pytestmark = pytest.mark.skipif(not REFERENCE.exists(), reason=f"{REFERENCE} not found (../shared/reference)")


class FakeHub(ThreadingHTTPServer):
    """The HEAD/GET routes `hf_hub_download` uses (`/<repo>/resolve/<revision>/<path>`), for the files in `files`
    (served as LFS files: etag = sha256, unless `etags` says otherwise); anything else is a 404 "RepoNotFound". Every
    request is recorded in `requests`."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _FakeHubHandler)
        self.files: dict[str, Path] = {}
        self.etags: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def serve(self, path: str, file: Path, etag: str | None = None) -> None:
        self.files[f"{OFFICIAL_HUB_REPOSITORY}/{path}"] = file
        self.etags[f"{OFFICIAL_HUB_REPOSITORY}/{path}"] = etag or _sha256(file)

    def downloads(self) -> int:
        return sum(method == "GET" and path.endswith(OFFICIAL_FILE) for method, path in self.requests)


class _FakeHubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args):  # quiet test output
        pass

    def _route(self, with_body: bool) -> None:
        self.server.requests.append((self.command, self.path))
        match = re.match(r"^/(.+?/.+?)/resolve/[^/]+/(.+)$", self.path.split("?")[0])
        key = f"{match.group(1)}/{match.group(2)}" if match else None
        if key not in self.server.files:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound" if key is None else "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = self.server.files[key].read_bytes()
        start = int(re.match(r"bytes=(\d+)-", self.headers.get("Range", "bytes=0-")).group(1))
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("X-Linked-Etag", f'"{self.server.etags[key]}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("ETag", f'"{self.server.etags[key]}"')
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if with_body:
            self.wfile.write(data[start:])

    def do_HEAD(self):
        self._route(with_body=False)

    def do_GET(self):
        self._route(with_body=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def official_checkpoint(tmp_path_factory) -> Path:
    """The official-format MoCo-v3 checkpoint of cast_small, written once per test module."""
    data = load_file(str(REFERENCE))
    encoder = {key[len("state_dict."):]: value.float() for key, value in data.items()
               if key.startswith("state_dict.") and not key.startswith("state_dict.head.")}
    projector = {"head.0.weight": torch.randn(32, 384), "head.1.weight": torch.ones(32),
                 "head.1.bias": torch.zeros(32), "head.3.weight": torch.randn(16, 32)}
    state_dict = {}
    for prefix in ("module.base_encoder.", "module.momentum_encoder."):  # the same tensors: stored once
        state_dict.update({prefix + key: value for key, value in {**encoder, **projector}.items()})
    state_dict.update({"module.predictor.0.weight": torch.randn(32, 16), "module.predictor.3.weight": torch.randn(16, 32)})
    path = tmp_path_factory.mktemp("official") / "checkpoint_0099.pth.tar"
    torch.save({"epoch": 100, "arch": "cast_small", "state_dict": state_dict,
                "optimizer": {"state": {}, "param_groups": []}, "scaler": {"scale": 65536.0}}, path)
    return path


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An online machine whose Hub is the fake endpoint, with an empty cache; connecting anywhere else fails."""
    server = FakeHub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    connect = socket.socket.connect

    def local_only(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"a test tried to reach {address}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # huggingface_hub reads these at import: set what the environment above would have given
    monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    yield server
    server.shutdown()
    server.server_close()


def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def _converted_snapshots(cache: Path) -> list[Path]:
    return list((cache / f"models--{NAME}" / "snapshots").glob("*/config.json"))


def _left_behind(cache: Path) -> list[Path]:
    return [path for path in cache.rglob("*") if "incomplete" in path.name or path.name.startswith(".cast-fetch-")]


def _assert_reproduces_reference(model) -> None:
    data, alone = load_file(str(REFERENCE)), load_file(str(ALONE))
    with torch.no_grad():
        for index in range(2):  # each image alone: its own token count (batch-independent by design)
            outputs = model(data["inputs.pixel_values"][index:index + 1], data["inputs.superpixels"][index:index + 1])
            torch.testing.assert_close(outputs.pooler_output, alone[f"image{index}.pooled"], atol=ATOL, rtol=RTOL)


def test_from_pretrained_fetches_converts_caches_and_then_loads_offline(hub, official_checkpoint, tmp_path,
                                                                        monkeypatch):
    cache = tmp_path / "hub"
    # first attempt: the endpoint serves a truncated file (its etag is the full file's): clear error, nothing cached
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(official_checkpoint.read_bytes()[: 1 << 20])
    hub.serve(OFFICIAL_FILE, truncated, etag=_sha256(official_checkpoint))
    with pytest.raises(FetchError, match=rf"(?s){re.escape(OFFICIAL_HUB_REPOSITORY + '/' + OFFICIAL_FILE)}.*corrupt"):
        AutoModel.from_pretrained(NAME)
    assert _converted_snapshots(cache) == [] and _left_behind(cache) == []
    assert not [path for path in (cache / "models--twke--CAST" / "blobs").iterdir()]  # the bad download is gone

    # second attempt starts clean: download, convert, install, load
    hub.serve(OFFICIAL_FILE, official_checkpoint)
    model = AutoModel.from_pretrained(NAME).eval()
    assert type(model) is CastModel and hub.downloads() == 2
    _assert_reproduces_reference(model)
    assert len(_converted_snapshots(cache)) == 1 and _left_behind(cache) == []
    snapshot = _converted_snapshots(cache)[0].parent
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md"} <= {
        path.name for path in snapshot.iterdir()}
    assert (cache / "models--twke--CAST" / "snapshots" / COMMIT / OFFICIAL_FILE).exists()  # kept by default

    # the next loads, online or offline, read the cache: no download, and offline not a single request
    AutoModel.from_pretrained(NAME)
    assert hub.downloads() == 2
    _offline(monkeypatch)
    requests = len(hub.requests)
    again = AutoModel.from_pretrained(NAME).eval()
    segments = pipeline("image-segmentation", model=NAME)(Image.new("RGB", (64, 48), (200, 30, 30)))
    assert len(hub.requests) == requests and segments
    _assert_reproduces_reference(again)


def test_pipeline_fetches_on_first_use(hub, official_checkpoint, tmp_path):
    hub.serve(OFFICIAL_FILE, official_checkpoint)
    segments = pipeline("image-segmentation", model=NAME)(Image.new("RGB", (64, 48), (20, 90, 200)))
    assert segments and all(segment["label"].startswith("level ") for segment in segments)
    assert hub.downloads() == 1 and len(_converted_snapshots(tmp_path / "hub")) == 1


def test_unreadable_download_is_removed_and_named(hub, official_checkpoint, tmp_path):
    """A truncated file the Hub itself serves (consistent etag): the unpickling fails, the file is removed."""
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(official_checkpoint.read_bytes()[: 1 << 20])
    hub.serve(OFFICIAL_FILE, truncated)
    with pytest.raises(FetchError, match=rf"(?s){re.escape(OFFICIAL_FILE)}.*cannot be read.*truncated or corrupt"):
        AutoModel.from_pretrained(NAME)
    cache = tmp_path / "hub"
    assert _converted_snapshots(cache) == [] and _left_behind(cache) == []
    assert not list((cache / "models--twke--CAST" / "blobs").iterdir())


def test_wrong_architecture_is_refused(hub, tmp_path):
    hub.serve(OFFICIAL_FILE, TINY_MOCO)  # an official-format checkpoint of another architecture
    with pytest.raises(FetchError, match=rf"(?s){re.escape(OFFICIAL_FILE)}.*arch 'cast_tiny_test' does not match"):
        AutoModel.from_pretrained(NAME)
    assert _converted_snapshots(tmp_path / "hub") == [] and _left_behind(tmp_path / "hub") == []


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk-full", "interrupted"])
def test_failed_conversion_leaves_nothing_half_written(hub, official_checkpoint, tmp_path, failure):
    hub.serve(OFFICIAL_FILE, official_checkpoint)
    with mock.patch.object(converter, "write_model_folder", side_effect=failure):
        with pytest.raises(FetchError if isinstance(failure, OSError) else KeyboardInterrupt) as raised:
            AutoModel.from_pretrained(NAME)
    if isinstance(failure, OSError):
        assert OFFICIAL_FILE in str(raised.value) and "No space left on device" in str(raised.value)
    cache = tmp_path / "hub"
    assert _converted_snapshots(cache) == [] and _left_behind(cache) == []


def test_offline_miss_names_the_file_to_fetch(hub, tmp_path, monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(MissingModelError, match=rf"(?s)not in the local.*{re.escape(OFFICIAL_FILE)}.*cast-convert"):
        AutoModel.from_pretrained(NAME)
    with pytest.raises(MissingModelError, match=r"published no checkpoint for cast-base-deep"):
        AutoModel.from_pretrained("cast-base-deep")
    assert hub.requests == []


def test_cli_download_installs_and_can_remove_the_original(hub, official_checkpoint, tmp_path, capsys):
    hub.serve(OFFICIAL_FILE, official_checkpoint)
    assert convert_command.main(["--model-name", NAME, "--download", "--remove-original", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "installed in the Hugging Face cache" in out and "removed" in out
    cache = tmp_path / "hub"
    assert len(_converted_snapshots(cache)) == 1
    assert not list((cache / "models--twke--CAST" / "blobs").iterdir())  # the training pickle is gone
    assert convert_command.main(["--model-name", "cast-base-deep", "--download"]) == 1
    assert "has none: pass its file with --checkpoint" in capsys.readouterr().err
