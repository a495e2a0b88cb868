"""Bad input given to the ``studio`` command line: each case gets a one-line error and exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

EXIT_USAGE = 2


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 5_000 + "1" + "}" * 5_000])
def test_deeply_nested_json_rejected(tmp_path: Path, command: str, text: str) -> None:
    path = tmp_path / "deep.workflow.json"
    path.write_text(text, encoding="utf-8")

    result = run_cli(tmp_path / "studio.db", command, str(path))

    assert result.returncode == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr
    assert "nested too deeply" in result.stderr
    assert str(path) in result.stderr
