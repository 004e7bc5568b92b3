"""The README's API tour runs as written, and says what it prints."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    """The ```python fenced blocks of a Markdown text."""
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_api_tour_runs_and_its_comments_state_what_it_computes(tmp_path):
    (tour,) = python_blocks(README.read_text())
    # The tour's comments give some results; check them by printing the same expressions.
    checks = textwrap.dedent(
        """
        print("minima", minima.counts())
        print("best", (best.kind, best.label, best.loss))
        print("found", found.counts(), found.completeness.unseen_estimate)
        """
    )
    script = tmp_path / "tour.py"
    body = textwrap.indent(tour + checks, "    ")
    script.write_text('if __name__ == "__main__":\n' + body)
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    printed = [line.partition(" ") for line in run.stdout.splitlines()]
    lines = {key: value for key, _, value in printed if key in ("minima", "best", "found")}
    assert lines["minima"] == "{'good': 1, 'bad': 4}" and "{'good': 1, 'bad': 4}" in tour
    assert lines["best"].startswith("('minimum', 'good', -0.229993749999") and "('minimum', 'good', -0.2299937" in tour
    assert lines["found"] == "{'good': 1, 'bad': 21} 0.0" and "{'good': 1, 'bad': 21}" in tour
    for name in ("spectral.csv", "spectral.csv.meta.json", "spectral.json", "claim3.sqlite", "claim3.png"):
        assert (tmp_path / name).stat().st_size > 0, name
