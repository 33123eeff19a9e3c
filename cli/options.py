"""The options several commands share, each defined once so they read and behave the same
everywhere.

This module imports only typer: it is loaded for every command, including ``--help``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from scenarios.loading import Override

# The same names as memory.db's; restated here so that `--help` need not import the database
# layer (tests/test_cli.py checks that they agree).
DB_ENV_VAR = "COPLAY_DB"
DEFAULT_DB_URL = "sqlite:///coplay.db"
EMBEDDER_ENV_VAR = "COPLAY_EMBEDDER"

DbOption = Annotated[str, typer.Option(
    "--db", envvar=DB_ENV_VAR, show_envvar=True,
    help="SQLAlchemy URL of the store, e.g. sqlite:///coplay.db or postgresql+psycopg://...",
)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SeedOption = Annotated[int | None, typer.Option(
    min=0, help="The random seed (of a scenario: overrides its own).")]
OutOption = Annotated[Path | None, typer.Option(
    help="Folder for the plots (and checkpoints) [default: one per run, under the working "
         "folder].")]
PlotsOption = Annotated[bool, typer.Option(help="Write PNG plots.")]
PlotsFolderOption = Annotated[Path | None, typer.Option(
    "--plots", help="Also write the plots into this folder.")]
EmbedderOption = Annotated[str, typer.Option(
    "--embedder", envvar=EMBEDDER_ENV_VAR, show_envvar=True,
    help="'hashing' (built in, no model), 'hashing:DIM', or a local sentence-transformers "
         "model directory.",
)]
LimitOption = Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")]
RecordTrajectoriesOption = Annotated[bool, typer.Option(
    "--record-trajectories", help="Also store every episode's actions (and beliefs).")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE",
    help="Override any scenario field by its dotted path, e.g. --set run.episodes=10 "
         "(repeatable; VALUE is read as YAML).",
)]


def overrides(settings: list[str] | None, options: list[Override]) -> list[Override]:
    """The ``--set`` overrides, then the options the user gave (value not None), which win:
    the scenario file is validated once with all of them in place."""
    from scenarios.loading import Override

    return [Override.parse(text) for text in settings or []] + [
        option for option in options if option.value is not None]
