"""The README's Python snippets run as written, so they cannot rot.

Each ```python block runs in a fresh interpreter, in a temporary folder (so the snippets'
``sqlite:///coplay.db`` is a new database there) with ``$COPLAY_DB`` pointing into it too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def snippets() -> list[tuple[str, str]]:
    """(the heading above it, code) for every Python block of the README."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        headings = re.findall(r"^#+ (.+)$", text[: match.start()], re.MULTILINE)
        found.append((headings[-1] if headings else "top", match.group(1)))
    return found


def test_the_readme_has_python_snippets() -> None:
    assert len(snippets()) >= 2


@pytest.mark.parametrize(("heading", "code"), snippets(), ids=[h for h, _ in snippets()])
def test_readme_snippet_runs(heading: str, code: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COPLAY_DB": f"sqlite:///{tmp_path / 'env.db'}",
           "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"the snippet under '{heading}' failed:\n{done.stderr}"
    assert done.stdout.strip(), "every snippet prints what it shows"
    if "sqlite:///coplay.db" in code:
        assert (tmp_path / "coplay.db").is_file()  # the snippet's database, in the temporary folder
