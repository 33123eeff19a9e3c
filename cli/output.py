"""Where commands write: the console for people, JSON on stdout for scripts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

console = Console()


def compact_table(title: str | None = None, *, caption: str | None = None) -> Table:
    """A table without side borders or outer padding: the most columns in 80 characters."""
    return Table(title=title, caption=caption, box=box.SIMPLE_HEAD, show_edge=False,
                 pad_edge=False)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=1, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_written(paths: list[Path]) -> None:
    """Name the plot files a command wrote."""
    console.print("plots: " + ", ".join(str(p) for p in paths), soft_wrap=True)


def progress_bar(label: str, unit: str, *, on_stderr: bool = False):
    """A progress bar over episodes or updates (rich.progress is loaded only by commands that
    show one); ``on_stderr`` keeps standard output for a command's JSON."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn(unit), TimeElapsedColumn(),
                    console=Console(stderr=True) if on_stderr else console)
