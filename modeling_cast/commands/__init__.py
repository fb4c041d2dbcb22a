"""Command lines: `cast-convert` (`convert`), `cast-segment` (`segment`), `cast-export` (`export`), `cast-demo`
(`demo`, the hierarchy app) and the hub_configs generator (`python -m modeling_cast.commands.hub_configs`)."""
