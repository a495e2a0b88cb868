"""Child-process side of regex_extract; imports only the standard library so workers start fast."""

from __future__ import annotations

import multiprocessing.connection
import re
from typing import Any


def collect_matches(pattern: str, flags: int, text: str, max_matches: int) -> dict[str, Any]:
    """Return up to max_matches matches of pattern in text as JSON-ready dicts, plus a truncation flag."""
    compiled = re.compile(pattern, flags)
    matches: list[dict[str, Any]] = []
    truncated = False
    for found in compiled.finditer(text):
        if len(matches) == max_matches:
            truncated = True
            break
        matches.append(
            {
                "match": found.group(0),
                "start": found.start(),
                "end": found.end(),
                "groups": list(found.groups()),
                "named": found.groupdict(),
            }
        )
    return {"matches": matches, "count": len(matches), "truncated": truncated}


def match_worker(
    connection: multiprocessing.connection.Connection, pattern: str, flags: int, text: str, max_matches: int
) -> None:
    """Send the matches through connection; the target of the worker process."""
    connection.send(collect_matches(pattern, flags, text, max_matches))
    connection.close()
