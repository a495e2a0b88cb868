"""Qt-free logic of the Command Center: inbox rows, time formatting, form value conversion, task data."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from studio.model.templates import iter_references
from studio.model.workflow import AnyStep, Edge, ForEachStep, FormField, JsonValue, Workflow, template_fields
from studio.store import NotFoundError, Store, TaskRecord

logger = logging.getLogger(__name__)

COLUMNS = ("Title", "Workflow", "Run", "Step", "Age", "Time left", "Assignee")
TIME_LEFT_COLUMN = COLUMNS.index("Time left")
RUN_ID_CHARS = 8
"""Characters of a run id shown in the inbox; the CLI accepts any unique prefix of 4 or more."""
COMMENT_KEY = "comment"
"""Key of the reviewer's comment in the submitted values; the engine passes it on with the form values."""


class FieldValueError(ValueError):
    """A form value that cannot be converted to its field's type; the message explains the fix."""


@dataclass(frozen=True)
class InboxRow:
    """One pending human task as the inbox shows it. Times are Unix seconds."""

    task_id: str
    title: str
    workflow_id: str
    workflow_name: str
    run_id: str
    step_key: str
    assignee_role: str | None
    created_at: float
    due_at: float | None

    @property
    def run_short(self) -> str:
        return self.run_id[:RUN_ID_CHARS]

    def text(self, column: int, now: float) -> str:
        """Return the cell text of ``column`` (an index into :data:`COLUMNS`) at time ``now``."""
        values = (
            self.title,
            self.workflow_name,
            self.run_short,
            self.step_key,
            format_age(now - self.created_at),
            format_time_left(self.due_at, now),
            self.assignee_role or "anyone",
        )
        return values[column]

    def sort_key(self, column: int, now: float) -> str | float:
        """Return the value the inbox sorts ``column`` by: times as numbers, the rest as folded text."""
        if column == COLUMNS.index("Age"):
            return now - self.created_at
        if column == TIME_LEFT_COLUMN:
            return float("inf") if self.due_at is None else self.due_at - now
        return self.text(column, now).casefold()

    def matches(self, text: str) -> bool:
        """Return whether every word of ``text`` occurs (case-insensitively) in the title, workflow, run, step or role."""
        haystack = " ".join(
            (self.title, self.workflow_name, self.run_id, self.step_key, self.assignee_role or "", self.task_id)
        ).casefold()
        return all(word in haystack for word in text.casefold().split())


def inbox_rows(store: Store, workflow_names: dict[str, str] | None = None) -> list[InboxRow]:
    """Read every pending task of every run from ``store``, oldest first.

    ``workflow_names`` caches workflow names by id between calls; names missing from it are read
    from the store and added to it.
    """
    names = workflow_names if workflow_names is not None else {}
    tasks = store.list_tasks(statuses=("pending",))
    unknown = {task.workflow_id for task in tasks} - names.keys()
    if unknown:
        names.update(store.workflow_names(unknown))
    return [inbox_row(task, names.get(task.workflow_id, task.workflow_id)) for task in tasks]


def inbox_row(task: TaskRecord, workflow_name: str) -> InboxRow:
    return InboxRow(
        task_id=task.id,
        title=task.title or task.step_id,
        workflow_id=task.workflow_id,
        workflow_name=workflow_name,
        run_id=task.run_id,
        step_key=task.step_key,
        assignee_role=task.assignee_role,
        created_at=task.created_at,
        due_at=task.due_at,
    )


def format_age(seconds: float) -> str:
    """Format a duration in the past as ``12 s``, ``4 min``, ``3 h 05 min`` or ``2 d 4 h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def format_time_left(due_at: float | None, now: float) -> str:
    """Format the time until ``due_at`` as ``45 s``, ``4:05 min`` or ``2 h 10 min``.

    Returns ``no timeout`` for a task without one, and ``timing out`` once ``due_at`` has passed:
    the engine applies the timeout policy within about a second of it.
    """
    if due_at is None:
        return "no timeout"
    left = int(due_at - now + 0.999)
    if left <= 0:
        return "timing out"
    if left < 60:
        return f"{left} s"
    minutes, seconds = divmod(left, 60)
    if minutes < 60:
        return f"{minutes}:{seconds:02d} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


# -- forms ----------------------------------------------------------------------------------------


def form_fields(task: TaskRecord) -> list[FormField]:
    """Return the task's form fields; a stored field that is no longer valid is skipped with a warning."""
    fields: list[FormField] = []
    for data in task.fields:
        try:
            fields.append(FormField.model_validate(data))
        except ValidationError as error:
            logger.warning("Skipping invalid form field %r of task %s: %s", data.get("name"), task.id, error)
    return fields


def field_label(form_field: FormField) -> str:
    """Return the label shown next to the field, with `` *`` appended when the field is required."""
    label = form_field.label or form_field.name.replace("_", " ").capitalize()
    return f"{label} *" if form_field.required else label


def initial_text(form_field: FormField) -> str:
    """Return the editor text that shows the field's default (empty when it has none)."""
    default = form_field.default
    if default is None:
        return ""
    if form_field.type == "json":
        return json.dumps(default, indent=2, ensure_ascii=False)
    if isinstance(default, str):
        return default
    if form_field.type == "number" and isinstance(default, float) and default.is_integer():
        return str(int(default))
    return json.dumps(default, ensure_ascii=False)


def initial_bool(form_field: FormField) -> bool:
    default = form_field.default
    if isinstance(default, str):
        return default.strip().lower() in ("true", "yes", "1", "on")
    return bool(default)


def parse_number(text: str) -> int | float:
    """Parse a number field's text; integral values stay ``int`` (``3`` and ``3.0`` give ``3``).

    Raises FieldValueError for text that is not a finite number.
    """
    cleaned = text.strip().replace("_", "")
    try:
        number = float(cleaned)
    except ValueError:
        raise FieldValueError(f"'{text.strip()}' is not a number; enter digits such as 3 or 2.5") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise FieldValueError(f"'{text.strip()}' is not a finite number; enter digits such as 3 or 2.5")
    if number.is_integer() and "e" not in cleaned.lower() and abs(number) < 2**53:
        return int(number)
    return number


def parse_json_text(text: str) -> JsonValue:
    """Parse a json field's text; raise FieldValueError naming the line and column of the first error."""
    try:
        value: JsonValue = json.loads(text)
    except json.JSONDecodeError as error:
        raise FieldValueError(
            f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    return value


def convert_value(form_field: FormField, raw: str | bool) -> JsonValue:
    """Convert an editor's value (text, or a bool from a check box) to the field's JSON type.

    Returns None for an empty editor. Raises FieldValueError when the text does not fit the type.
    """
    if form_field.type == "boolean":
        return bool(raw)
    text = str(raw)
    if form_field.type not in ("text", "multiline") and not text.strip():
        return None
    if form_field.type == "number":
        return parse_number(text)
    if form_field.type == "json":
        return parse_json_text(text)
    if form_field.type == "choice":
        if text not in form_field.choices:
            raise FieldValueError(f"'{text}' is not one of the choices: {', '.join(form_field.choices)}")
        return text
    return text if text.strip() else None


def collect_values(
    fields: Iterable[FormField], raw_values: Mapping[str, str | bool], decision: str
) -> tuple[dict[str, JsonValue], dict[str, str]]:
    """Convert the form's editor values and check required fields; return ``(values, errors)``.

    ``errors`` maps field names to messages for inline display. Required fields are checked only
    when ``decision`` is ``approve``, as the engine does. Empty optional fields are left out.
    """
    values: dict[str, JsonValue] = {}
    errors: dict[str, str] = {}
    for form_field in fields:
        raw = raw_values.get(form_field.name, "")
        try:
            value = convert_value(form_field, raw)
        except FieldValueError as error:
            errors[form_field.name] = str(error)
            continue
        if value is None:
            if form_field.required and decision == "approve":
                errors[form_field.name] = "required: fill it in to approve"
            continue
        values[form_field.name] = value
    return values, errors


# -- how a task ended -----------------------------------------------------------------------------

_TIMEOUT_OUTCOMES = {
    "timeout": "the step failed",
    "approve": "it was approved with the field defaults",
    "reject": "it was rejected",
}


def describe_resolution(task: TaskRecord) -> str:
    """Return a sentence saying how a task that is no longer pending was resolved, and by whom."""
    if task.status == "pending":
        return "This task is still pending."
    if task.status == "timed_out":
        outcome = _TIMEOUT_OUTCOMES.get(task.decision or "", f"the decision was {task.decision}")
        return f"This task timed out: nobody resolved it in time, so {outcome} (its on_timeout policy)."
    if task.status == "cancelled" and task.resolved_by not in (None, "system"):
        return f"This input request was cancelled by {task.resolved_by}."
    if task.status == "cancelled":
        return "This task was cancelled because its run ended."
    return f"This task was already resolved by {task.resolved_by or 'someone else'} ({task.decision or task.status})."


# -- the data a task is about ---------------------------------------------------------------------

_SCOPE_SEGMENT = re.compile(r"([^.\[\]]+)\[(\d+)\]\.")


def task_subject(store: Store, task: TaskRecord) -> dict[str, JsonValue]:
    """Collect the data a reviewer needs: the for_each item, the upstream results and the run input.

    Upstream results are those of the steps the task's step depends on (edges and template
    references), read from the store. Parts that cannot be read are left out.
    """
    subject: dict[str, JsonValue] = {}
    context = task.context
    if isinstance(context, dict) and context.get("item") is not None:
        subject["item"] = context["item"]
    try:
        run = store.get_run(task.run_id)
        workflow = store.get_version(run.version_id).workflow
    except NotFoundError as error:
        logger.warning("Cannot read the run of task %s: %s", task.id, error)
        return subject
    upstream = _upstream_results(store, workflow, task)
    if upstream:
        subject["upstream results"] = upstream
    if run.inputs:
        subject["run input"] = dict(run.inputs)
    return subject


def _upstream_results(store: Store, workflow: Workflow, task: TaskRecord) -> dict[str, JsonValue]:
    located = _locate_step(workflow, task.step_key)
    if located is None:
        return {}
    step, edges, prefixes = located
    dependencies = {edge.source for edge in edges if edge.target == step.id}
    for _path, value in template_fields(step):
        for reference in iter_references(value):
            if reference.step_id is not None and reference.step_id != step.id:
                dependencies.add(reference.step_id)
    step_runs = store.step_runs(task.run_id)
    results: dict[str, JsonValue] = {}
    for dependency in sorted(dependencies):
        # The innermost scope that ran a step of that id is the one the templates read from.
        for prefix in prefixes:
            record = step_runs.get(prefix + dependency)
            if record is not None:
                results[dependency] = record.result
                break
    return results


def _locate_step(workflow: Workflow, step_key: str) -> tuple[AnyStep, list[Edge], list[str]] | None:
    """Find the step of ``step_key`` and the edges of its scope.

    Also returns the key prefixes of its scopes, innermost first (``loop[2].`` then the empty one).
    """
    steps: list[AnyStep] = list(workflow.steps)
    edges: list[Edge] = list(workflow.edges)
    prefixes = [""]
    position = 0
    for match in _SCOPE_SEGMENT.finditer(step_key):
        if match.start() != position:
            return None
        fan_out = next((s for s in steps if s.id == match.group(1)), None)
        if not isinstance(fan_out, ForEachStep):
            return None
        steps, edges = list(fan_out.config.steps), list(fan_out.config.edges)
        position = match.end()
        prefixes.insert(0, step_key[:position])
    step = next((s for s in steps if s.id == step_key[position:]), None)
    return None if step is None else (step, edges, prefixes)
