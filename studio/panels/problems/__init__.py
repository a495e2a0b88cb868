"""The Problems dock: validation findings of the open workflow, one row each."""

from studio.panels.problems.model import PROBLEM_COLUMNS, ProblemsModel
from studio.panels.problems.panel import ProblemsPanel

__all__ = ["PROBLEM_COLUMNS", "ProblemsModel", "ProblemsPanel"]
