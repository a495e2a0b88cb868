"""The import mapping dialog: a local MCP instance for each server_url and a connection for each slot."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from studio.model.shared_graph import (
    CredentialSlot,
    ImportMapping,
    LocalConnection,
    LocalInstance,
    ServerRequirement,
    SharedGraph,
    step_slots,
)

logger = logging.getLogger(__name__)

CHOOSE = "__choose__"
"""Combo data of the placeholder entry that means the user has not chosen yet."""
UNBOUND_SERVER_TEXT = "Leave unbound (connect to the server_url directly)"
UNBOUND_STDIO_TEXT = "Leave unbound (run this command on this machine)"
"""Text of the unbound choice for a ``stdio:`` server, whose command line comes from the imported file."""
UNBOUND_SLOT_TEXT = "Leave unbound (the steps use the provider's environment)"


class ImportMappingDialog(QDialog):
    """One choice per server and credential slot of a graph, pre-filled where a single local match exists.

    OK stays disabled until every choice is made; "leave unbound" is an explicit choice.
    """

    def __init__(
        self,
        graph: SharedGraph,
        instances: Sequence[LocalInstance],
        connections: Sequence[LocalConnection],
        proposed: ImportMapping,
        source: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.graph = graph
        name = str(graph.workflow.get("name") or "workflow")
        self.setWindowTitle(f"Import “{name}”")
        self.server_combos: dict[str, QComboBox] = {}
        self.slot_combos: dict[str, QComboBox] = {}

        layout = QVBoxLayout(self)
        intro = f"Import {source} as a new draft workflow." if source else "Import as a new draft workflow."
        layout.addWidget(QLabel(intro, self))
        if graph.servers:
            layout.addWidget(self._servers_box(graph.servers, instances, proposed))
        slots = step_slots(graph)
        if slots:
            layout.addWidget(self._slots_box(slots, connections, proposed))
        for note in self._server_slot_notes(graph):
            layout.addWidget(note)
        if not graph.servers and not slots:
            layout.addWidget(QLabel("The graph needs no MCP servers and no credentials.", self))

        self.status_label = QLabel(self)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Import")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.status_label)
        layout.addWidget(self.buttons)

        for combo in [*self.server_combos.values(), *self.slot_combos.values()]:
            combo.currentIndexChanged.connect(self._update_status)
        self._update_status()

    def _server_slot_notes(self, graph: SharedGraph) -> list[QLabel]:
        notes = []
        for slot in graph.credentials:
            if slot.server_url is None:
                continue
            note = QLabel(
                f"The server {slot.server_url} needs credential “{slot.slot}” ({slot.kind}); "
                "the MCP instance chosen for it brings its own.",
                self,
            )
            note.setWordWrap(True)
            notes.append(note)
        return notes

    def _servers_box(
        self, servers: Sequence[ServerRequirement], instances: Sequence[LocalInstance], proposed: ImportMapping
    ) -> QGroupBox:
        box = QGroupBox("MCP servers", self)
        form = QFormLayout(box)
        for server in servers:
            combo = QComboBox(box)
            same = [instance for instance in instances if instance.server_url == server.server_url]
            others = [instance for instance in instances if instance.server_url != server.server_url]
            combo.addItem("Choose…", CHOOSE)
            for instance in same:
                combo.addItem(f"{instance.name} (same server)", instance.id)
            for instance in others:
                combo.addItem(f"{instance.name} ({instance.server_url or 'no server URL'})", instance.id)
            stdio = server.server_url.startswith("stdio:")
            combo.addItem(UNBOUND_STDIO_TEXT if stdio else UNBOUND_SERVER_TEXT, None)
            _choose(combo, proposed.servers, server.server_url)
            hint = f" — was “{server.name}”" if server.name else ""
            tools = f"; tools: {', '.join(server.tools)}" if server.tools else ""
            label = QLabel(f"{server.server_url}{hint}{tools}", box)
            label.setWordWrap(True)
            form.addRow(label, combo)
            self.server_combos[server.server_url] = combo
        return box

    def _slots_box(
        self, slots: Sequence[CredentialSlot], connections: Sequence[LocalConnection], proposed: ImportMapping
    ) -> QGroupBox:
        box = QGroupBox("Credentials", self)
        form = QFormLayout(box)
        for slot in slots:
            combo = QComboBox(box)
            fitting = [connection for connection in connections if connection.kind == slot.kind]
            others = [connection for connection in connections if connection.kind != slot.kind]
            combo.addItem("Choose…", CHOOSE)
            for connection in [*fitting, *others]:
                combo.addItem(f"{connection.name} ({connection.kind})", connection.id)
            combo.addItem(UNBOUND_SLOT_TEXT, None)
            _choose(combo, proposed.slots, slot.slot)
            provider = f", {slot.provider}" if slot.provider else ""
            label = QLabel(f"“{slot.slot}” ({slot.kind}{provider}) for steps {', '.join(slot.steps)}", box)
            label.setWordWrap(True)
            form.addRow(label, combo)
            self.slot_combos[slot.slot] = combo
        return box

    def unchosen(self) -> list[str]:
        """Return the server URLs and slot names that still show "Choose…"."""
        names = [url for url, combo in self.server_combos.items() if combo.currentData() == CHOOSE]
        return names + [slot for slot, combo in self.slot_combos.items() if combo.currentData() == CHOOSE]

    def mapping(self) -> ImportMapping:
        """Return the chosen local ids (None where the user left a server or slot unbound)."""
        return ImportMapping(
            servers={url: combo.currentData() for url, combo in self.server_combos.items()},
            slots={slot: combo.currentData() for slot, combo in self.slot_combos.items()},
        )

    def _update_status(self, *_args: object) -> None:
        left = self.unchosen()
        self.ok_button.setEnabled(not left)
        self.status_label.setText(f"Choose a local match for: {', '.join(left)}" if left else "")

    def accept(self) -> None:
        if self.unchosen():
            return
        super().accept()


def _choose(combo: QComboBox, proposed: dict[str, str | None], key: str) -> None:
    if key in proposed:
        index = combo.findData(proposed[key])
        combo.setCurrentIndex(max(index, 0))
    else:
        combo.setCurrentIndex(0)
