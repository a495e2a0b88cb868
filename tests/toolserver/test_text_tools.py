"""Tests of the tool server's text, data and regex tools through an in-process MCP client."""

from __future__ import annotations

from mcp import Client

from tests.engine.mcp_fixtures import call_error, call_ok, inprocess_tools, tools_root

__all__ = ["inprocess_tools", "tools_root"]


async def test_text_stats_counts(inprocess_tools: Client) -> None:
    stats = await call_ok(inprocess_tools, "text_stats", {"text": "The cat saw the dog.\n\nThe end", "top": 2})

    assert stats["characters"] == 29
    assert stats["words"] == 7
    assert stats["lines"] == 3
    assert stats["paragraphs"] == 2
    assert stats["top_words"] == [{"word": "the", "count": 3}, {"word": "cat", "count": 1}]


async def test_split_text_by_paragraph(inprocess_tools: Client) -> None:
    text = "alpha beta\n\ngamma\n\n" + "delta " * 10

    result = await call_ok(inprocess_tools, "split_text", {"text": text, "max_chars": 20})

    assert result["chunks"][0] == "alpha beta\n\ngamma"
    assert all(len(chunk) <= 20 for chunk in result["chunks"])
    assert "".join(result["chunks"][1:]).split() == ["delta"] * 10
    assert result["count"] == len(result["chunks"])


async def test_split_text_by_size_overlap(inprocess_tools: Client) -> None:
    result = await call_ok(
        inprocess_tools, "split_text", {"text": "abcdefghij", "mode": "size", "max_chars": 4, "overlap": 1}
    )

    assert result["chunks"] == ["abcd", "defg", "ghij"]


async def test_split_text_rejects_overlap(inprocess_tools: Client) -> None:
    message = await call_error(
        inprocess_tools, "split_text", {"text": "abc", "mode": "size", "max_chars": 2, "overlap": 2}
    )

    assert "overlap (2) must be smaller than max_chars (2)" in message


async def test_regex_extract_groups(inprocess_tools: Client) -> None:
    result = await call_ok(
        inprocess_tools,
        "regex_extract",
        {"pattern": r"(?P<key>\w+)=(\d+)", "text": "a=1, B=22", "flags": ["IGNORECASE"]},
    )

    assert result["count"] == 2
    assert result["matches"][1] == {
        "match": "B=22",
        "start": 5,
        "end": 9,
        "groups": ["B", "22"],
        "named": {"key": "B"},
    }
    assert result["truncated"] is False


async def test_regex_extract_truncates(inprocess_tools: Client) -> None:
    result = await call_ok(inprocess_tools, "regex_extract", {"pattern": r"\d", "text": "12345", "max_matches": 2})

    assert [match["match"] for match in result["matches"]] == ["1", "2"]
    assert result["truncated"] is True


async def test_regex_rejects_nested_quantifier(inprocess_tools: Client) -> None:
    message = await call_error(inprocess_tools, "regex_extract", {"pattern": r"^(\w+\s?)*$", "text": "a" * 40})

    assert "nests an unbounded quantifier" in message


async def test_regex_stops_slow_pattern(inprocess_tools: Client) -> None:
    message = await call_error(inprocess_tools, "regex_extract", {"pattern": r"(a|aa)+$", "text": "a" * 60 + "b"})

    assert "took longer than 2.0 s" in message


async def test_regex_rejects_invalid_pattern(inprocess_tools: Client) -> None:
    message = await call_error(inprocess_tools, "regex_extract", {"pattern": "(unclosed", "text": "x"})

    assert "invalid regular expression '(unclosed'" in message


async def test_json_query_paths(inprocess_tools: Client) -> None:
    data = {"items": [{"name": "first"}, {"name": "second", "tags": ["x", "y"]}]}

    by_bracket = await call_ok(inprocess_tools, "json_query", {"data": data, "path": "items[1].tags[-1]"})
    by_dot = await call_ok(inprocess_tools, "json_query", {"data": data, "path": "items.0.name"})
    missing = await call_ok(inprocess_tools, "json_query", {"data": data, "path": "items[5]", "default": "none"})
    whole = await call_ok(inprocess_tools, "json_query", {"json_text": "[1, 2]", "path": ""})

    assert by_bracket == {"found": True, "value": "y"}
    assert by_dot == {"found": True, "value": "first"}
    assert missing == {"found": False, "value": "none"}
    assert whole == {"found": True, "value": [1, 2]}


async def test_json_query_bad_input(inprocess_tools: Client) -> None:
    bad_json = await call_error(inprocess_tools, "json_query", {"json_text": "{oops", "path": "a"})
    bad_path = await call_error(inprocess_tools, "json_query", {"data": {}, "path": "a[x"})

    assert "'json_text' is not valid JSON" in bad_json
    assert "invalid path 'a[x'" in bad_path


async def test_csv_parse_rows(inprocess_tools: Client) -> None:
    text = 'name,note\nAda,"likes, commas"\nBob\n'

    table = await call_ok(inprocess_tools, "csv_parse", {"text": text})
    plain = await call_ok(inprocess_tools, "csv_parse", {"text": "1;2\n", "delimiter": ";", "has_header": False})

    assert table["columns"] == ["name", "note"]
    assert table["rows"] == [{"name": "Ada", "note": "likes, commas"}, {"name": "Bob", "note": ""}]
    assert plain["rows"] == [{"column_1": "1", "column_2": "2"}]


async def test_markdown_table_escapes(inprocess_tools: Client) -> None:
    rows = [{"a": "x|y", "b": 2}, {"a": "line\nbreak"}]

    table = await call_ok(inprocess_tools, "render_markdown_table", {"rows": rows})

    assert table["markdown"] == "| a | b |\n| --- | --- |\n| x\\|y | 2 |\n| line<br>break |  |\n"


async def test_slugify_text(inprocess_tools: Client) -> None:
    result = await call_ok(inprocess_tools, "slugify", {"text": "  Crème Brûlée: A Recipe! "})
    empty = await call_error(inprocess_tools, "slugify", {"text": "!!!"})

    assert result == {"slug": "creme-brulee-a-recipe"}
    assert "no ASCII letters or digits" in empty


async def test_current_time_zone(inprocess_tools: Client) -> None:
    kolkata = await call_ok(inprocess_tools, "current_time", {"timezone": "Asia/Kolkata"})
    unknown = await call_error(inprocess_tools, "current_time", {"timezone": "Mars/Olympus"})

    assert kolkata["utc_offset"] == "+05:30"
    assert kolkata["iso"].endswith("+05:30")
    assert "time zone 'Mars/Olympus' was not found" in unknown
