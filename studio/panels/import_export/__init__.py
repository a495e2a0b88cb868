"""Shared-graph export and import in the window: file actions and the mapping dialog."""

from studio.panels.import_export.install import ImportExport, install_import_export
from studio.panels.import_export.mapping_dialog import ImportMappingDialog

__all__ = ["ImportExport", "ImportMappingDialog", "install_import_export"]
