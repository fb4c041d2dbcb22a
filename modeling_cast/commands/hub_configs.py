# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Regenerate `hub_configs/`: one folder per named CAST model with its `config.json`, `preprocessor_config.json`
and model card `README.md`, all generated from the table in `modeling_cast/hub/registry.py`.

    python -m modeling_cast.commands.hub_configs --output hub_configs [--name cast-base ...]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from modeling_cast.hub.folders import generate_hub_configs
from modeling_cast.hub.registry import NAMED_MODELS

__all__ = ["main"]

PROGRAM = "python -m modeling_cast.commands.hub_configs"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the hub_configs folders; exit status 0 (2 for bad arguments)."""
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, metavar="DIR", help="folder receiving one folder per name")
    parser.add_argument("--name", action="append", choices=sorted(NAMED_MODELS), help="only this model (repeatable)")
    args = parser.parse_args(argv)
    written = generate_hub_configs(args.output, args.name)
    print(f"wrote {len(written)} files under {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
