"""Pure document edits an editor needs: find usages, rename with reference rewriting, new steps, fragments.

Every function returns new data and leaves its input unchanged, so the Qt undo commands and the
Autopilot can share them. Bad input raises :class:`EditError` with a message that names the value
and the fix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from studio.model.edit_errors import EditError
from studio.model.edit_fields import with_field
from studio.model.edit_fragments import FRAGMENT_KIND, Fragment, copy_fragment, paste_fragment
from studio.model.edit_ids import check_new_step_id, slug_step_id, unique_step_id
from studio.model.edit_references import rewrite_step
from studio.model.templates import TemplateError, parse_reference, parse_template
from studio.model.workflow import (
    STEP_TYPES,
    AnyStep,
    Edge,
    ForEachConfig,
    ForEachStep,
    HumanTaskConfig,
    HumanTaskStep,
    LlmCallStep,
    LuaScriptConfig,
    LuaScriptStep,
    McpCallConfig,
    McpCallStep,
    Workflow,
    template_fields,
)

__all__ = [
    "FRAGMENT_KIND",
    "EditError",
    "Fragment",
    "Usage",
    "copy_fragment",
    "find_usages",
    "new_step",
    "paste_fragment",
    "rename_step",
    "unique_step_id",
    "with_field",
]

logger = logging.getLogger(__name__)

NEW_LUA_SOURCE = "-- The value this script returns becomes the step result.\nreturn nil\n"


@dataclass(frozen=True)
class Usage:
    """One place that reads a step's result: the reading step and the field path inside it."""

    step_id: str
    field_path: str
    """Path relative to the step, such as ``config.arguments.query`` or ``config.output``."""


def find_usages(workflow: Workflow, step_id: str) -> list[Usage]:
    """Return every templated field, at any depth, that references ``step_id``'s result, in document order.

    A ``for_each`` whose ``output`` names the step counts as a usage at ``config.output``. A string
    with a template syntax error is searched reference by reference, so one bad expression does not
    hide the valid ones beside it.
    """
    usages: list[Usage] = []
    for step in workflow.iter_steps():
        for path, value in template_fields(step):
            # A reference contains the id as text, so the substring test only skips parsing.
            if isinstance(value, str) and step_id in value and step_id in _referenced_ids(value):
                usages.append(Usage(step.id, path))
        if isinstance(step, ForEachStep) and step.config.output == step_id:
            usages.append(Usage(step.id, "config.output"))
    return usages


def _referenced_ids(text: str) -> set[str]:
    if "{{" not in text:
        return set()
    try:
        references = parse_template(text).references
    except TemplateError:
        return _referenced_ids_leniently(text)
    return {reference.step_id for reference in references if reference.step_id is not None}


def _referenced_ids_leniently(text: str) -> set[str]:
    found: set[str] = set()
    for chunk in text.split("{{")[1:]:
        inner, separator, _rest = chunk.partition("}}")
        if not separator:
            continue
        try:
            reference = parse_reference(inner)
        except TemplateError:
            continue
        if reference.step_id is not None:
            found.add(reference.step_id)
    return found


def rename_step(workflow: Workflow, old_id: str, new_id: str) -> Workflow:
    """Return a copy of ``workflow`` in which step ``old_id`` is called ``new_id``.

    The step's id, every explicit edge, every ``for_each`` ``output``, every group and every
    ``{{steps.<old_id>...}}`` reference in any templated field (top level and ``for_each`` bodies)
    are rewritten. Raise :class:`EditError` when ``old_id`` does not exist or ``new_id`` is
    invalid or already taken.
    """
    ids = {step.id for step in workflow.iter_steps()}
    if old_id not in ids:
        raise EditError(f"cannot rename step '{old_id}': no step has that id; check the id")
    if new_id == old_id:
        return workflow.model_copy(deep=True)
    check_new_step_id(new_id, ids)
    id_map = {old_id: new_id}
    groups = [
        group.model_copy(update={"step_ids": [id_map.get(member, member) for member in group.step_ids]})
        for group in workflow.groups
    ]
    renamed = workflow.model_copy(
        update={
            "steps": [rewrite_step(step, id_map) for step in workflow.steps],
            "edges": [_rename_edge(edge, id_map) for edge in workflow.edges],
            "groups": groups,
        }
    )
    logger.debug("renamed step %s to %s in workflow %s", old_id, new_id, workflow.id)
    return renamed.model_copy(deep=True)


def _rename_edge(edge: Edge, id_map: dict[str, str]) -> Edge:
    return Edge(source=id_map.get(edge.source, edge.source), target=id_map.get(edge.target, edge.target))


def new_step(step_type: str, workflow: Workflow, *, title: str | None = None, tool: str | None = None) -> AnyStep:
    """Return a new step of ``step_type`` with an id unused in ``workflow`` and minimal valid config.

    The id is derived from ``title`` (or ``tool``, or the type), for example ``fetch-contacts``.
    ``tool`` sets the tool of an ``mcp_call`` and is an error for other types.
    """
    if step_type not in STEP_TYPES:
        raise EditError(f"unknown step type '{step_type}'; use one of: {', '.join(STEP_TYPES)}")
    if tool is not None and step_type != "mcp_call":
        raise EditError(f"a tool ('{tool}') only applies to mcp_call steps, not to {step_type}; leave it out")
    taken = {step.id for step in workflow.iter_steps()}
    step_id = unique_step_id(slug_step_id(title or tool or step_type.replace("_", "-")), taken)
    name = title or ""
    step: AnyStep
    if step_type == "mcp_call":
        step = McpCallStep(id=step_id, name=name, config=McpCallConfig(tool=tool or ""))
    elif step_type == "llm_call":
        step = LlmCallStep(id=step_id, name=name)
    elif step_type == "human_task":
        step = HumanTaskStep(id=step_id, name=name, config=HumanTaskConfig(title=title or "Review"))
    elif step_type == "lua_script":
        step = LuaScriptStep(id=step_id, name=name, config=LuaScriptConfig(source=NEW_LUA_SOURCE))
    else:
        step = ForEachStep(id=step_id, name=name, config=ForEachConfig(items=[]))
    return step
