"""Shared test set-up: offline Hugging Face hub, deterministic seeds, tiny CAST configurations and inputs."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
FIXTURES = TESTS_DIR / "fixtures"
SHARED_REFERENCE = REPO_ROOT.parent / "shared" / "reference"
# First lines of every subprocess script that loads a saved folder with trust_remote_code=True: importing anything of
# this repository there fails, which proves the folder's own code files are enough (as on the Hub).
REMOTE_CODE_PRELUDE = textwrap.dedent(
    """
    import sys

    class BlockProjectPackages:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("modeling_cast", "processing"):
                raise ImportError(f"{name} must not be imported by remote code")

    sys.meta_path.insert(0, BlockProjectPackages())
    """
)

def run_remote_code(script: str, *args: str, workdir: Path) -> subprocess.CompletedProcess:
    """Run `REMOTE_CODE_PRELUDE + script` with `args` in a fresh interpreter, in `workdir`, without this repository on
    `PYTHONPATH`, offline and with its own modules cache (`workdir/modules`), as a Hub user without the package."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(workdir / "modules"))
    command = [sys.executable, "-c", REMOTE_CODE_PRELUDE + script, *args]
    return subprocess.run(command, cwd=workdir, env=environment, capture_output=True, text=True, check=False)


for path in (str(REPO_ROOT), str(TESTS_DIR)):
    if path not in sys.path:
        sys.path.insert(0, path)


def tiny_config_kwargs(**overrides) -> dict:
    """A CAST small enough for unit tests: 32 wide, two stages of one block, 6 then 3 segments."""
    kwargs = dict(
        hidden_size=32,
        num_attention_heads=4,
        pooling_num_attention_heads=4,
        depths=[1, 1],
        num_segments=[6, 3],
        mlp_ratio=37 / 32,
        image_size=32,
        num_labels=3,
    )
    kwargs.update(overrides)
    return kwargs


def block_superpixels(batch_size: int, height: int, width: int, block: int = 8, seed: int = 0) -> torch.Tensor:
    """Superpixel maps made of block x block squares with shuffled ids 0..K-1 (every id survives on the grid)."""
    generator = torch.Generator().manual_seed(seed)
    rows, cols = height // block, width // block
    maps = []
    for _ in range(batch_size):
        ids = torch.randperm(rows * cols, generator=generator).view(rows, cols)
        maps.append(ids.repeat_interleave(block, 0).repeat_interleave(block, 1))
    return torch.stack(maps)


def smooth_image(
    height: int, width: int, seed: int, *, channels: int = 3, cells: int = 3, noise_std: float = 6.0
) -> np.ndarray:
    """Channels-last uint8 image of `cells` x `cells` flat color blobs plus Gaussian noise, so that superpixels follow
    its content."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(cells, cells, channels)).astype(np.float64)
    rows = np.rint(np.linspace(0, cells - 1, height)).astype(int)
    cols = np.rint(np.linspace(0, cells - 1, width)).astype(int)
    noisy = coarse[rows][:, cols] + rng.normal(0, noise_std, size=(height, width, channels))
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


# Options of the example and benchmark scripts for a tiny run: seconds on a loaded 2-core machine, yet two levels of 8
# and 4 segments
TINY_SCRIPT_OPTIONS = {
    "--image_size": 48, "--n_segments": 24, "--hidden_size": 24, "--num_attention_heads": 2, "--depths": "1 1",
    "--num_segments": "8 4", "--max_steps": 2, "--batch_size": 4,
}


def import_script(folder: str, name: str):
    """Import the script `name` (a module name, no `.py`) of the repository folder `folder` (e.g. "benchmarks"), with
    that folder on `sys.path` so the script's own sibling imports resolve as when it runs from the command line."""
    directory = str(REPO_ROOT / folder)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return importlib.import_module(name)


def script_argv(options: dict) -> list[str]:
    """Command-line arguments from {option: value}; a value with spaces gives several arguments (`--depths 1 1`)."""
    argv = []
    for key, value in options.items():
        argv.append(key)
        argv.extend(str(value).split())
    return argv


@pytest.fixture
def restore_torch_threads():
    """Scripts that set torch's thread count leave it as it was for the tests after them."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# The untrained tiny classifier folder that the command-line and app tests segment with: 2 levels, 8 then 4 segments
TINY_CLASSIFIER_NUM_SEGMENTS = [8, 4]
TINY_CLASSIFIER_SIZE = 64


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from modeling_cast import CastConfig, CastForImageClassification, CastImageProcessor

    folder = tmp_path_factory.mktemp("tiny-cast")
    config = CastConfig(**tiny_config_kwargs(image_size=TINY_CLASSIFIER_SIZE, num_segments=TINY_CLASSIFIER_NUM_SEGMENTS))
    CastForImageClassification(config).save_pretrained(folder)
    size = {"height": TINY_CLASSIFIER_SIZE, "width": TINY_CLASSIFIER_SIZE}
    CastImageProcessor(size=size, n_segments=32).save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_config():
    from modeling_cast import CastConfig

    return CastConfig(**tiny_config_kwargs())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
