"""Text and data tools of the studio tool server: statistics, chunking, JSON paths, CSV, tables, slugs."""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections import Counter
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

MAX_TEXT_CHARS = 5_000_000
"""Maximum length of any text argument, so one call cannot exhaust the server's memory."""

_WORD_PATTERN = re.compile(r"\w+(?:['’-]\w+)*")
_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]")


class WordCount(BaseModel):
    word: str
    count: int


class TextStats(BaseModel):
    characters: int = Field(description="Number of Unicode code points.")
    words: int
    lines: int = Field(description="Number of lines; a final line without a newline counts too.")
    paragraphs: int = Field(description="Number of blocks separated by blank lines.")
    top_words: list[WordCount] = Field(description="Most frequent words, lowercased, most frequent first.")


class TextChunks(BaseModel):
    chunks: list[str]
    count: int


class JsonQueryResult(BaseModel):
    found: bool = Field(description="False when the path does not exist and a default was returned.")
    value: Any = Field(description="The value at the path, or the default.")


class CsvTable(BaseModel):
    columns: list[str]
    rows: list[dict[str, str]]
    count: int


class MarkdownTable(BaseModel):
    markdown: str
    columns: list[str]


class Slug(BaseModel):
    slug: str


def check_text_size(name: str, text: str) -> None:
    """Raise ToolError when a text argument is longer than MAX_TEXT_CHARS."""
    if len(text) > MAX_TEXT_CHARS:
        raise ToolError(
            f"argument '{name}' has {len(text)} characters, more than the maximum of {MAX_TEXT_CHARS}; "
            "split the input into smaller parts"
        )


def text_stats(
    text: Annotated[str, Field(description="The text to measure.")],
    top: Annotated[int, Field(ge=0, le=1000, description="How many of the most frequent words to return.")] = 10,
) -> TextStats:
    """Count characters, words, lines and paragraphs of a text and list its most frequent words."""
    check_text_size("text", text)
    words = _WORD_PATTERN.findall(text)
    counter = Counter(word.lower() for word in words)
    # Ties are broken alphabetically so the output is deterministic.
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:top]
    paragraphs = [block for block in re.split(r"\n\s*\n", text) if block.strip()]
    return TextStats(
        characters=len(text),
        words=len(words),
        lines=len(text.splitlines()),
        paragraphs=len(paragraphs),
        top_words=[WordCount(word=word, count=count) for word, count in ranked],
    )


def _split_by_size(text: str, max_chars: int, overlap: int) -> list[str]:
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + max_chars, len(text))
        if end < len(text):
            # Prefer to cut after the last whitespace inside the window, so words stay whole.
            cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            if cut > start + overlap:
                end = cut + 1
        chunks.append(text[start:end])
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
    return chunks


def _split_by_paragraph(text: str, max_chars: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for paragraph in (block.strip() for block in re.split(r"\n\s*\n", text)):
        if not paragraph:
            continue
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if len(candidate) <= max_chars:
            current = candidate
            continue
        if current:
            chunks.append(current)
        # A single paragraph longer than the limit is cut by size.
        pieces = _split_by_size(paragraph, max_chars, 0) if len(paragraph) > max_chars else [paragraph]
        chunks.extend(pieces[:-1])
        current = pieces[-1]
    if current:
        chunks.append(current)
    return chunks


def split_text(
    text: Annotated[str, Field(description="The text to split.")],
    mode: Annotated[
        Literal["size", "paragraph"],
        Field(description="'size' cuts windows of max_chars; 'paragraph' packs whole paragraphs."),
    ] = "paragraph",
    max_chars: Annotated[int, Field(ge=1, le=1_000_000, description="Maximum characters per chunk.")] = 2000,
    overlap: Annotated[
        int, Field(ge=0, description="Characters repeated between consecutive chunks ('size' mode only).")
    ] = 0,
) -> TextChunks:
    """Split a text into chunks of at most max_chars characters, by size or by paragraph."""
    check_text_size("text", text)
    if overlap >= max_chars:
        raise ToolError(f"overlap ({overlap}) must be smaller than max_chars ({max_chars})")
    chunks = _split_by_size(text, max_chars, overlap) if mode == "size" else _split_by_paragraph(text, max_chars)
    return TextChunks(chunks=chunks, count=len(chunks))


def parse_json_path(path: str) -> list[str | int]:
    """Parse a path such as `items[0].name` or `items.0.name` into keys and list indexes.

    Raises:
        ToolError: The path has a character sequence that is not a key or an `[index]`.
    """
    tokens: list[str | int] = []
    position = 0
    stripped = path.strip()
    while position < len(stripped):
        match = _PATH_TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            raise ToolError(
                f"invalid path {path!r} at character {position + 1}; use keys separated by dots and "
                "list indexes in brackets, for example 'items[0].name'"
            )
        key, index = match.group(1), match.group(2)
        tokens.append(int(index) if index is not None else key)
        position = match.end()
    return tokens


def _step_into(current: Any, token: str | int) -> tuple[bool, Any]:
    if isinstance(current, dict):
        key = str(token)
        return (key in current, current.get(key))
    if isinstance(current, list):
        try:
            index = int(token)
        except ValueError:
            return (False, None)
        if -len(current) <= index < len(current):
            return (True, current[index])
    return (False, None)


def json_query(
    path: Annotated[str, Field(description="Dot/bracket path, e.g. 'items[0].name'; '' selects the whole value.")],
    data: Annotated[Any, Field(description="The JSON value to query.")] = None,
    # A plain `str` with "" for "not given": the SDK decodes JSON-looking strings for any other annotation.
    json_text: Annotated[str, Field(description="The JSON document as text; use instead of 'data'.")] = "",
    default: Annotated[Any, Field(description="Value returned when the path does not exist.")] = None,
) -> JsonQueryResult:
    """Select the value at a dot/bracket path inside a JSON value."""
    if json_text:
        if data is not None:
            raise ToolError("pass either 'data' or 'json_text', not both")
        check_text_size("json_text", json_text)
        try:
            data = json.loads(json_text)
        except json.JSONDecodeError as exc:
            raise ToolError(f"'json_text' is not valid JSON: {exc}; check the quoting and commas") from None
        except RecursionError:
            raise ToolError("'json_text' is nested too deeply to parse; flatten the document") from None
    current = data
    for token in parse_json_path(path):
        found, current = _step_into(current, token)
        if not found:
            return JsonQueryResult(found=False, value=default)
    return JsonQueryResult(found=True, value=current)


def csv_parse(
    text: Annotated[str, Field(description="CSV text.")],
    delimiter: Annotated[str, Field(min_length=1, max_length=1, description="Field separator.")] = ",",
    has_header: Annotated[
        bool,
        Field(description="True when the first row contains column names; otherwise they are column_1, column_2, ..."),
    ] = True,
) -> CsvTable:
    """Parse CSV text into a list of row objects keyed by column name."""
    check_text_size("text", text)
    try:
        records = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise ToolError(f"the CSV text could not be parsed: {exc}") from None
    records = [record for record in records if record]
    if not records:
        return CsvTable(columns=[], rows=[], count=0)
    width = max(len(record) for record in records)
    if has_header:
        header, body = records[0], records[1:]
        columns = [name.strip() or f"column_{i + 1}" for i, name in enumerate(header)]
        columns += [f"column_{i + 1}" for i in range(len(columns), width)]
    else:
        body = records
        columns = [f"column_{i + 1}" for i in range(width)]
    rows = [{column: (record[i] if i < len(record) else "") for i, column in enumerate(columns)} for record in body]
    return CsvTable(columns=columns, rows=rows, count=len(rows))


def _markdown_cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")


def render_markdown_table(
    rows: Annotated[list[dict[str, Any]], Field(description="Row objects; keys are column names.")],
    columns: Annotated[
        list[str] | None, Field(description="Column order; default: keys in order of first appearance.")
    ] = None,
) -> MarkdownTable:
    """Render a list of row objects as a GitHub-flavoured Markdown table."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    if not columns:
        raise ToolError("no columns to render: pass 'columns' or rows with at least one key")
    lines = [
        "| " + " | ".join(_markdown_cell(column) for column in columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    for row in rows:
        cells = [_markdown_cell(row[column]) if row.get(column) is not None else "" for column in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return MarkdownTable(markdown="\n".join(lines) + "\n", columns=columns)


def slugify(
    text: Annotated[str, Field(description="Text to turn into a URL- and file-name-safe slug.")],
    separator: Annotated[str, Field(max_length=3, description="String placed between words.")] = "-",
    max_length: Annotated[int, Field(ge=1, le=1000, description="Maximum slug length in characters.")] = 80,
) -> Slug:
    """Turn a text into a lowercase ASCII slug such as 'hello-world'."""
    check_text_size("text", text)
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = separator.join(words)[:max_length]
    if separator:
        slug = slug.strip(separator)
    if not slug:
        raise ToolError(f"text {text[:80]!r} has no ASCII letters or digits to build a slug from")
    return Slug(slug=slug)


def register(server: MCPServer) -> None:
    """Add the text and data tools to a server."""
    for tool in (text_stats, split_text, json_query, csv_parse, render_markdown_table, slugify):
        server.add_tool(tool)
