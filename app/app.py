# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The CAST hierarchy app as a Hugging Face Space (or `python app/app.py` in a source checkout).

A Space runs this file with the packages of `requirements.txt`; the app itself is `modeling_cast.commands.demo`
(the `cast-demo` command). On a Space it listens on 0.0.0.0, as Spaces require (`GRADIO_SERVER_NAME`); anywhere else
on 127.0.0.1. `CAST_DEMO_MODEL` names the model (a folder or an installed name); without it the default model of
`cast-demo` is used.
"""

import os
import sys
from pathlib import Path


# a source checkout (this file in app/) or a Space holding the package folders next to this file
for folder in (Path(__file__).resolve().parent.parent, Path(__file__).resolve().parent):
    if (folder / "modeling_cast").is_dir() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from modeling_cast.commands import demo  # noqa: E402


if __name__ == "__main__":
    model = os.environ.get("CAST_DEMO_MODEL") or str(demo.default_model())
    session = demo.DemoSession(model)
    session.model(model)  # fail at start, not at the first upload
    demo.launch(
        session,
        host=os.environ.get("GRADIO_SERVER_NAME", demo.DEFAULT_HOST),
        port=int(os.environ.get("GRADIO_SERVER_PORT", demo.DEFAULT_PORT)),
    )
