"""The step inspector: a generated form per step type, template completion, rename and find usages."""

from studio.panels.inspector.install import InspectorInstall, install_inspector
from studio.panels.inspector.panel import InspectorPanel, confirm_step_removal
from studio.panels.inspector.usages import UsagesPanel

__all__ = ["InspectorInstall", "InspectorPanel", "UsagesPanel", "confirm_step_removal", "install_inspector"]
