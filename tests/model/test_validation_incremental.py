"""Tests that incremental re-validation always matches a full validation, after any kind of edit."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
from workflow_builders import CATALOG, SEARCH_SCHEMA, generated_workflow

from studio.model.validation import IncrementalValidator, ToolCatalog, validate_workflow
from studio.model.workflow import (
    AnyStep,
    Edge,
    ForEachStep,
    HumanTaskConfig,
    HumanTaskStep,
    LlmCallConfig,
    LlmCallStep,
    McpCallStep,
    Workflow,
)

Edit = Callable[[Workflow, random.Random], None]


def all_steps(document: Workflow) -> list[AnyStep]:
    return list(document.iter_steps())


def random_reference(document: Workflow, rng: random.Random) -> str:
    choices = [step.id for step in all_steps(document)] + ["missing-step"]
    return f"{{{{steps.{rng.choice(choices)}.result}}}}"


def level_of(document: Workflow, rng: random.Random) -> tuple[list[AnyStep], list[Edge]]:
    """Return the steps and edges of a random level: the top level or one for_each body."""
    bodies = [step for step in all_steps(document) if isinstance(step, ForEachStep)]
    if bodies and rng.random() < 0.3:
        owner = rng.choice(bodies)
        return owner.config.steps, owner.config.edges
    return document.steps, document.edges


def edit_prompt_in_place(document: Workflow, rng: random.Random) -> None:
    prompts = [step for step in all_steps(document) if isinstance(step, LlmCallStep)]
    step = rng.choice(prompts)
    templates = [random_reference(document, rng), "{{item}}", "{{input.topic}}", "{{input.nope}}", "{{bad", ""]
    step.config.prompt = f"Text {rng.choice(templates)}"


def replace_step_copy(document: Workflow, rng: random.Random) -> None:
    steps, _ = level_of(document, rng)
    if not steps:
        return
    index = rng.randrange(len(steps))
    step = steps[index]
    if isinstance(step, HumanTaskStep):
        config = step.config.model_copy(update={"title": rng.choice(["", "Check " + random_reference(document, rng)])})
        steps[index] = step.model_copy(update={"config": config})
    else:
        steps[index] = step.model_copy(update={"name": f"renamed {rng.random()}"})


def add_edge(document: Workflow, rng: random.Random) -> None:
    steps, edges = level_of(document, rng)
    ids = [step.id for step in steps] + ["ghost"]
    edges.append(Edge(source=rng.choice(ids), target=rng.choice(ids)))


def remove_edge(document: Workflow, rng: random.Random) -> None:
    _, edges = level_of(document, rng)
    if edges:
        edges.pop(rng.randrange(len(edges)))


def delete_step(document: Workflow, rng: random.Random) -> None:
    steps, _ = level_of(document, rng)
    if len(steps) > 1:
        steps.pop(rng.randrange(len(steps)))


def insert_step(document: Workflow, rng: random.Random) -> None:
    steps, _ = level_of(document, rng)
    new_id = rng.choice([f"new-{rng.randrange(1000)}", steps[0].id if steps else "fresh"])
    prompt = f"Use {random_reference(document, rng)}"
    steps.insert(rng.randrange(len(steps) + 1), LlmCallStep(id=new_id, config=LlmCallConfig(model="m", prompt=prompt)))


def rename_step(document: Workflow, rng: random.Random) -> None:
    steps, _ = level_of(document, rng)
    if steps:
        index = rng.randrange(len(steps))
        steps[index] = steps[index].model_copy(update={"id": f"renamed-{rng.randrange(1000)}"})


def change_input_schema(document: Workflow, rng: random.Random) -> None:
    document.input_schema = rng.choice([
        {"type": "object", "properties": {"topic": {"type": "string"}}},
        {"type": "object", "properties": {}},
        {"type": "object", "properties": {"topic": {"type": "strin"}}},
        {"type": "array"},
    ])


def change_tool(document: Workflow, rng: random.Random) -> None:
    calls = [step for step in all_steps(document) if isinstance(step, McpCallStep)]
    step = rng.choice(calls)
    step.config.tool = rng.choice(["search", "serch", "read_file", ""])
    step.config.arguments = rng.choice([{"query": "q"}, {"query": 1}, {"limit": "ten"}, {}])


def add_human_task(document: Workflow, rng: random.Random) -> None:
    steps, _ = level_of(document, rng)
    title = rng.choice(["Review", "Review {{item}}", "", random_reference(document, rng)])
    steps.append(HumanTaskStep(id=f"task-{rng.randrange(1000)}", config=HumanTaskConfig(title=title)))


EDITS: list[Edit] = [
    edit_prompt_in_place,
    replace_step_copy,
    add_edge,
    remove_edge,
    delete_step,
    insert_step,
    rename_step,
    change_input_schema,
    change_tool,
    add_human_task,
]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_incremental_matches_full_after_random_edits(seed: int) -> None:
    rng = random.Random(seed)
    document = generated_workflow(150, seed=seed)
    validator = IncrementalValidator(CATALOG)
    assert validator.validate(document) == validate_workflow(document, catalog=CATALOG)
    for _ in range(150):
        edit = rng.choice(EDITS)
        edit(document, rng)
        incremental = validator.validate(document)
        full = validate_workflow(document, catalog=CATALOG)
        assert incremental == full, f"after {edit.__name__}"


def test_in_place_edit_is_noticed() -> None:
    document = generated_workflow(100)
    validator = IncrementalValidator(CATALOG)
    assert validator.validate(document) == []
    step = next(step for step in document.steps if isinstance(step, LlmCallStep))
    original = step.config.prompt
    step.config.prompt = original + " {{steps.nowhere.result}}"
    codes = [finding.code for finding in validator.validate(document)]
    assert codes == ["unknown-step-ref"]
    step.config.prompt = original
    assert validator.validate(document) == []


def test_catalog_change_redoes_tool_checks() -> None:
    document = generated_workflow(50)
    validator = IncrementalValidator(CATALOG)
    assert validator.validate(document) == []
    validator.catalog = ToolCatalog(instances={"fs": {"find": SEARCH_SCHEMA}})
    findings = validator.validate(document)
    assert findings
    assert {finding.code for finding in findings} == {"unknown-tool"}
    validator.catalog = None
    assert validator.validate(document) == []


def test_revalidation_of_1000_steps_is_fast() -> None:
    """Guards against a slowdown of an order of magnitude; bench/bench_validation.py gives the real numbers."""
    document = generated_workflow(1000)
    validator = IncrementalValidator(CATALOG)
    validator.validate(document)
    prompts = [step for step in document.steps if isinstance(step, LlmCallStep)]
    durations = []
    for index in range(20):
        prompts[index].config.prompt += " more"
        started = time.perf_counter()
        findings = validator.validate(document)
        durations.append(time.perf_counter() - started)
        assert findings == []
    durations.sort()
    # The target is 20 ms; the bound is five times that so that a busy CI machine does not fail the test.
    assert durations[len(durations) // 2] < 0.1
