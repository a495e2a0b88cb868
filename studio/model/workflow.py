"""Pydantic models of a workflow document: steps, their typed configs, edges and canvas layout."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import JsonValue as JsonValue  # re-exported: the JSON value type of the whole core

SCHEMA_VERSION = 1
"""Version of the workflow document format written by this release."""

SUPPORTED_SCHEMA_VERSIONS = frozenset({1})


STEP_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
StepId = Annotated[str, Field(pattern=STEP_ID_PATTERN)]
"""Step id: 1-64 lower-case letters, digits, '-' and '_', starting with a letter or digit."""

ErrorKind = Literal["timeout", "transient", "tool_error", "any"]
"""Kinds of failure that a retry policy can retry.

- ``timeout``: the step ran past its timeout.
- ``transient``: connection failures, HTTP 429 and 5xx, a crashed MCP server.
- ``tool_error``: an MCP tool returned ``isError`` or a Lua script raised an error.
- ``any``: every failure.
"""


class _Strict(BaseModel):
    """Base for document models: unknown keys are errors, so typos in hand-written files surface.

    NaN and infinite numbers are errors too: JSON cannot represent them, so a document holding one
    could be neither hashed for publishing nor stored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


def _default_retry_on() -> list[ErrorKind]:
    return ["timeout", "transient"]


def _empty_object_schema() -> dict[str, JsonValue]:
    return {"type": "object", "properties": {}}


class RetryPolicy(_Strict):
    """How often a failing step is tried again and how long to wait between attempts."""

    max_attempts: int = Field(default=1, ge=1, le=100)
    backoff_base_s: float = Field(default=1.0, ge=0.0, le=3600.0)
    backoff_max_s: float = Field(default=60.0, ge=0.0, le=86400.0)
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)
    """Fraction of each delay that is randomised, to spread retries of parallel steps."""
    retry_on: list[ErrorKind] = Field(default_factory=_default_retry_on)

    def delay_s(self, failed_attempt: int) -> float:
        """Return the delay before the attempt after ``failed_attempt`` (1-based), without jitter."""
        return float(min(self.backoff_max_s, self.backoff_base_s * (2 ** (failed_attempt - 1))))


class Position(_Strict):
    """Top-left corner of a node on the canvas, in scene units."""

    x: float = 0.0
    y: float = 0.0


class Edge(_Strict):
    """An explicit dependency: ``target`` starts only after ``source`` has finished."""

    source: StepId
    target: StepId


class McpCallConfig(_Strict):
    """Call one tool on an MCP server.

    ``instance_id`` names a local MCP instance. ``server_url`` identifies the server in shared graphs
    (an ``http(s)://`` URL for remote servers or a ``stdio:`` command line for local ones), and
    import maps it to a local instance. At least one of the two is required.
    """

    instance_id: str | None = None
    server_url: str | None = None
    tool: str = ""
    arguments: dict[str, JsonValue] = Field(default_factory=dict)


class LlmCallConfig(_Strict):
    """Send a prompt to a chat model and keep its reply as the step result."""

    connection_id: str | None = None
    provider: Literal["openai", "anthropic", "ollama"] = "openai"
    model: str = ""
    system_prompt: str = ""
    prompt: str = ""
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    output_schema: dict[str, JsonValue] | None = None
    """JSON Schema of the reply. When set, the reply is parsed as JSON and validated against it."""


FormFieldType = Literal["text", "multiline", "number", "boolean", "choice", "json"]


class FormField(_Strict):
    """One input on a human task's form."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    label: str = ""
    type: FormFieldType = "text"
    required: bool = False
    default: JsonValue = None
    choices: list[str] = Field(default_factory=list)
    help: str = ""

    @model_validator(mode="after")
    def _check_choices(self) -> FormField:
        if self.type == "choice" and not self.choices:
            raise ValueError(f"form field '{self.name}' has type 'choice' but no choices; add at least one")
        problem = self._default_problem()
        if problem is not None:
            raise ValueError(f"form field '{self.name}' has default {self.default!r}, {problem}")
        return self

    def _default_problem(self) -> str | None:
        # An approval without a value uses the default unconverted, so it must already fit the type.
        # A default that contains a template is rendered at run time and cannot be checked here.
        default = self.default
        if default is None or (isinstance(default, str) and "{{" in default):
            return None
        if self.type == "number":
            if isinstance(default, bool) or not isinstance(default, int | float) or not math.isfinite(default):
                return "which is not a number; give a JSON number or remove the default"
        elif self.type == "boolean" and not isinstance(default, bool):
            return "which is not a boolean; give true or false or remove the default"
        elif self.type == "choice" and default not in self.choices:
            return "which is not one of its choices; give one of the choices or remove the default"
        return None


class HumanTaskConfig(_Strict):
    """Pause the run until a person approves or rejects, optionally filling in a form."""

    title: str = ""
    instructions: str = ""
    fields: list[FormField] = Field(default_factory=list)
    assignee_role: str | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    on_timeout: Literal["fail", "default", "reject"] = "fail"
    """Outcome when the task is not resolved within ``timeout_s``: fail the step, approve with the
    fields' defaults, or reject."""

    @field_validator("fields")
    @classmethod
    def _unique_field_names(cls, fields: list[FormField]) -> list[FormField]:
        seen: set[str] = set()
        for form_field in fields:
            if form_field.name in seen:
                raise ValueError(f"form field name '{form_field.name}' is used twice; rename one of them")
            seen.add(form_field.name)
        return fields


class LuaScriptConfig(_Strict):
    """Run inline Lua in a sandbox.

    ``inputs`` are templates rendered before the script runs and passed to it as Lua values.
    The ``source`` itself is never rendered, so data can never become code.
    """

    source: str = ""
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    timeout_s: float = Field(default=5.0, gt=0, le=3600)
    memory_limit_mb: int = Field(default=64, ge=1, le=4096)
    output_schema: dict[str, JsonValue] | None = None
    """JSON Schema of the value the script returns: a result that does not match fails the step, and
    the editor completes ``{{steps.<id>.result...}}`` paths from it."""


class ForEachConfig(_Strict):
    """Run a body sub-graph once per item of a list, with bounded parallelism.

    The step's result is ``{"items": [...], "errors": [...]}``: one entry in ``items`` per input item,
    in input order, holding the result of the body's output step (``null`` for an item that failed
    under ``error_mode='continue'``), and one entry in ``errors`` per failed item.
    """

    items: JsonValue = None
    """A template such as ``{{steps.fetch.result.rows}}`` or a literal list."""
    steps: list[Step] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    output: StepId | None = None
    """Body step whose result becomes the item's result; defaults to the body's only sink."""
    max_parallelism: int = Field(default=4, ge=1, le=1000)
    error_mode: Literal["fail_fast", "continue"] = "fail_fast"


class _StepBase(_Strict):
    id: StepId
    name: str = ""
    description: str = ""
    position: Position | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_s: float | None = Field(default=None, gt=0)
    """Limit for one attempt, in seconds. ``None`` means no limit (human tasks use their own timeout)."""
    continue_on_error: bool = False
    """When true, a failure of this step does not fail the run; downstream steps still run and see
    ``null`` as its result."""
    layout_pinned: bool = False
    """When true, auto-layout leaves this node where it is and places the other nodes around it."""

    @property
    def title(self) -> str:
        return self.name or self.id


class McpCallStep(_StepBase):
    type: Literal["mcp_call"] = "mcp_call"
    config: McpCallConfig = Field(default_factory=McpCallConfig)


class LlmCallStep(_StepBase):
    type: Literal["llm_call"] = "llm_call"
    config: LlmCallConfig = Field(default_factory=LlmCallConfig)


class HumanTaskStep(_StepBase):
    type: Literal["human_task"] = "human_task"
    config: HumanTaskConfig = Field(default_factory=HumanTaskConfig)


class LuaScriptStep(_StepBase):
    type: Literal["lua_script"] = "lua_script"
    config: LuaScriptConfig = Field(default_factory=LuaScriptConfig)


class ForEachStep(_StepBase):
    type: Literal["for_each"] = "for_each"
    config: ForEachConfig = Field(default_factory=ForEachConfig)


Step = Annotated[
    McpCallStep | LlmCallStep | HumanTaskStep | LuaScriptStep | ForEachStep,
    Field(discriminator="type"),
]
STEP_TYPES: tuple[str, ...] = ("mcp_call", "llm_call", "human_task", "lua_script", "for_each")
ForEachConfig.model_rebuild()


class StickyNote(_Strict):
    """A free text note on the canvas; it takes no part in execution."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    text: str = ""
    position: Position = Field(default_factory=Position)
    width: float = Field(default=220.0, gt=0)
    height: float = Field(default=120.0, gt=0)
    color: str = "#fff3a8"


class Group(_Strict):
    """A titled frame around some steps of one scope on the canvas; it takes no part in execution."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    title: str = ""
    step_ids: list[StepId] = Field(default_factory=list)
    color: str = "#9ab8e8"


def _new_id() -> str:
    return str(uuid.uuid4())


class Workflow(_Strict):
    """A workflow document: the unit that is edited as a draft, published as a version and run."""

    schema_version: int = Field(default=SCHEMA_VERSION, strict=True)
    id: str = Field(default_factory=_new_id)
    name: str = Field(default="Untitled workflow", min_length=1, max_length=200)
    description: str = ""
    input_schema: dict[str, JsonValue] = Field(default_factory=_empty_object_schema)
    """JSON Schema of the run input (an object). Property defaults are the run setup defaults."""
    steps: list[Step] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    notes: list[StickyNote] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    @field_validator("schema_version")
    @classmethod
    def _known_schema_version(cls, version: int) -> int:
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            supported = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))
            raise ValueError(
                f"schema_version {version} is not supported; this release reads version {supported}. "
                "Open the file with the Workflow Studio release that wrote it, or upgrade"
            )
        return version

    def step(self, step_id: str) -> AnyStep:
        """Return the step with ``step_id`` at any depth; raise KeyError naming the id if absent."""
        for step in self.iter_steps():
            if step.id == step_id:
                return step
        raise KeyError(f"no step with id '{step_id}' in workflow '{self.name}'")

    def iter_steps(self) -> Iterator[AnyStep]:
        """Yield every step, including the bodies of ``for_each`` steps, depth first."""
        yield from iter_steps(self.steps)

    def input_defaults(self) -> dict[str, JsonValue]:
        """Return the default of each input property that declares one."""
        properties = self.input_schema.get("properties")
        defaults: dict[str, JsonValue] = {}
        if isinstance(properties, dict):
            for name, spec in properties.items():
                if isinstance(spec, dict) and "default" in spec:
                    defaults[name] = spec["default"]
        return defaults


AnyStep: TypeAlias = McpCallStep | LlmCallStep | HumanTaskStep | LuaScriptStep | ForEachStep


def iter_steps(steps: list[AnyStep]) -> Iterator[AnyStep]:
    """Yield ``steps`` and, depth first, the bodies of any ``for_each`` among them."""
    for step in steps:
        yield step
        if isinstance(step, ForEachStep):
            yield from iter_steps(step.config.steps)


def template_fields(step: AnyStep) -> Iterator[tuple[str, Any]]:
    """Yield ``(field path, value)`` for every config field of ``step`` that may hold templates.

    The path is relative to the step, for example ``config.arguments.query``. Lua ``source`` is
    deliberately absent: it is code and is never rendered.
    """
    if isinstance(step, McpCallStep):
        yield from _walk("config.arguments", step.config.arguments)
    elif isinstance(step, LlmCallStep):
        yield "config.model", step.config.model
        yield "config.system_prompt", step.config.system_prompt
        yield "config.prompt", step.config.prompt
    elif isinstance(step, HumanTaskStep):
        yield "config.title", step.config.title
        yield "config.instructions", step.config.instructions
        for index, form_field in enumerate(step.config.fields):
            yield from _walk(f"config.fields[{index}].default", form_field.default)
    elif isinstance(step, LuaScriptStep):
        yield from _walk("config.inputs", step.config.inputs)
    elif isinstance(step, ForEachStep):
        yield from _walk("config.items", step.config.items)


def _walk(path: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(f"{path}.{key}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(f"{path}[{index}]", item)
    elif isinstance(value, str):
        yield path, value
