"""The workflow library in the window: Workflows and Versions docks, publishing and the visual diff."""

from studio.panels.workflows.diff_dialog import DiffCanvas, DiffDialog
from studio.panels.workflows.history_dialog import DraftHistoryDialog
from studio.panels.workflows.install import WorkflowLibrary, install_workflow_library
from studio.panels.workflows.library_panel import WorkflowsPanel
from studio.panels.workflows.publish_dialog import PublishDialog
from studio.panels.workflows.versions_panel import VersionsPanel

__all__ = [
    "DiffCanvas",
    "DiffDialog",
    "DraftHistoryDialog",
    "PublishDialog",
    "VersionsPanel",
    "WorkflowLibrary",
    "WorkflowsPanel",
    "install_workflow_library",
]
