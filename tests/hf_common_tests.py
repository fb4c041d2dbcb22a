"""Make transformers' own common test mixins importable.

The pip wheel of transformers ships no tests; its source distribution does. This module downloads the sdist
of the *installed* transformers version with pip (once, into a cache folder), extracts the top-level test
mixins into a package named ``transformers_tests`` and adds the small stand-ins for the sub-folders the sdist
leaves out. Nothing from the sdist is committed to this repository. It also holds what every CAST test class that
runs `ModelTesterMixin` shares: `CastModelTesterBase` (the tiny sizes) and `CastModelTestMixin` (settings, skips).

Usage inside a test module::

    from hf_common_tests import import_common
    test_modeling_common = import_common("test_modeling_common")
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tarfile
import tempfile
import unittest
from pathlib import Path

import torch
import transformers
from conftest import tiny_config_kwargs

from modeling_cast import CastConfig

__all__ = ["CastModelTestMixin", "CastModelTesterBase", "common_tests_root", "import_common"]

PACKAGE = "transformers_tests"

# Files the sdist's mixins import relatively but that the sdist does not contain. Each stand-in holds only
# what the mixins read; the real ones hold exporter/generation tests that do not apply to a vision encoder.
_STUBS = {
    f"{PACKAGE}/__init__.py": "",
    f"{PACKAGE}/exporters/__init__.py": "",
    f"{PACKAGE}/exporters/test_export.py": "class ExportTesterMixin:\n    pass\n",
    f"{PACKAGE}/generation/__init__.py": "",
    f"{PACKAGE}/generation/test_utils.py": "class GenerationTesterMixin:\n    pass\n",
    f"{PACKAGE}/utils/__init__.py": "",
    f"{PACKAGE}/utils/test_configuration_utils.py": (
        "config_common_kwargs = {\n"
        '    "return_dict": False, "output_hidden_states": True, "output_attentions": True,\n'
        '    "dtype": "float16", "chunk_size_feed_forward": 5, "architectures": ["BertModel"],\n'
        '    "id2label": {0: "label"}, "label2id": {"label": "0"}, "problem_type": "regression",\n'
        "}\n"
    ),
    # test_image_processing_common appends <root>/utils to sys.path for this hub helper; offline, URLs stay as is.
    "utils/fetch_hub_objects_for_ci.py": "def url_to_local_path(url, *args, **kwargs):\n    return url\n",
}


def _cache_dir() -> Path:
    base = os.environ.get("CAST_TEST_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(base) / "cast-transformers" / f"transformers-{transformers.__version__}-tests"


def _download_sdist(destination: Path) -> Path:
    version = transformers.__version__
    command = [
        sys.executable, "-m", "pip", "download", f"transformers=={version}",
        "--no-binary", ":all:", "--no-deps", "--quiet", "-d", str(destination),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    archives = sorted(destination.glob("transformers-*.tar.gz"))
    if result.returncode != 0 or not archives:
        raise RuntimeError(
            f"could not fetch the transformers {version} source distribution with pip "
            f"(exit {result.returncode}): {result.stderr.strip()[-2000:]}"
        )
    return archives[0]


def common_tests_root() -> Path:
    """Return a folder holding the ``transformers_tests`` package, fetching it on first use."""
    root = _cache_dir()
    marker = root / ".complete"
    if marker.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = _download_sdist(Path(tmp))
        package = root / PACKAGE
        package.mkdir(exist_ok=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                # keep only <sdist>/tests/<file>.py: the mixins, not the per-model test folders
                if len(parts) == 3 and parts[1] == "tests" and parts[2].endswith(".py") and member.isfile():
                    source = tar.extractfile(member)
                    (package / parts[2]).write_bytes(source.read())
    for relative, text in _STUBS.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    marker.write_text(transformers.__version__)
    return root


def import_common(module: str):
    """Import ``transformers_tests.<module>`` from the cached sdist."""
    root = str(common_tests_root())
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(f"{PACKAGE}.{module}")


class CastModelTesterBase:
    """The `model_tester` of a CAST ModelTesterMixin test: transformers' tiny sizes (batch 13) on conftest's tiny
    CAST config, 32x32 images; subclasses give the config and the inputs."""

    def __init__(self, parent, batch_size=13, image_size=32, is_training=True, **config_overrides):
        self.parent = parent
        self.batch_size = batch_size
        self.image_size = image_size
        self.is_training = is_training
        # every 8x8 cell is its own superpixel (conftest.block_superpixels): a token budget of exactly that many
        # tokens, so that the common tests' sequence lengths hold
        grid_cells = (image_size // 8) ** 2
        self.kwargs = tiny_config_kwargs(image_size=image_size, max_superpixel_tokens=grid_cells, **config_overrides)
        self.num_channels = 3
        self.hidden_size = self.kwargs["hidden_size"]
        self.num_attention_heads = self.kwargs["num_attention_heads"]
        self.num_hidden_layers = sum(self.kwargs["depths"])
        self.num_labels = self.kwargs["num_labels"]
        self.seq_length = grid_cells + 1  # plus the class token

    def get_config(self) -> CastConfig:
        return CastConfig(**self.kwargs, attn_implementation="eager")


class CastModelTestMixin:
    """Mix in before `ModelTesterMixin`: CAST's settings of the common tests, and skips of the tests that assume
    token ids and an embedding table, which no CAST model has (its tokens are built from pixels and superpixels)."""

    test_resize_embeddings = False
    test_mismatched_shapes = False
    has_attentions = True
    # The last stage's grouping only produces the coarsest level of the hierarchy through an argmax, so its
    # centering block receives no gradient from an image-level loss (official CAST freezes it for that reason).
    test_all_params_have_gradient = False

    def test_torch_export(self):
        """`test_torch_exportable`: every model class exports with `torch.export` (the sdist lacks transformers'
        exporter mixin, so CAST runs its own check) and the exported program reproduces the eager outputs."""
        if not self.test_torch_exportable:
            self.skipTest(reason="test_torch_exportable is False")
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            with self.subTest(model_class.__name__):
                model = model_class(config).eval()
                inputs = self._prepare_for_class(inputs_dict, model_class)
                program = torch.export.export(model, (), inputs, strict=False)
                with torch.no_grad():
                    exported, eager = program.module()(**inputs), model(**inputs)
                for name, value in eager.items():
                    if isinstance(value, torch.Tensor):
                        torch.testing.assert_close(exported[name], value, atol=1e-5, rtol=1e-5, msg=name)

    @unittest.skip(reason="CAST has no inputs_embeds: tokens are built from pixels and superpixels")
    def test_inputs_embeds(self):
        pass

    @unittest.skip(reason="CAST has no token embedding table (the test asserts nn.Embedding)")
    def test_model_get_set_embeddings(self):
        pass

    @unittest.skip(reason="CAST has no inputs_embeds")
    def test_inputs_embeds_matches_input_ids(self):
        pass
