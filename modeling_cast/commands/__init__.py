"""Command lines: `cast-convert` (`convert`), `cast-segment` (`segment`) and the hub_configs generator
(`python -m modeling_cast.commands.hub_configs`)."""
