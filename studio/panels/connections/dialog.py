"""The dialog that creates a connection: a form whose fields follow the chosen kind, with Sign in for OAuth."""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from studio.secrets import CONNECTION_KINDS

KIND_LABELS = {
    "api_key": "API key",
    "bearer": "Bearer token",
    "basic": "Basic auth (user name and password)",
    "oauth2": "OAuth 2 sign-in",
    "none": "No secret",
}
PROVIDERS = ("", "openai", "anthropic", "ollama")


@dataclass
class ConnectionForm:
    """The values of the dialog. ``secret`` and ``client_secret`` go to the vault only."""

    name: str = ""
    kind: str = "api_key"
    provider: str | None = None
    base_url: str | None = None
    secret: str | None = field(default=None, repr=False)
    username: str | None = None
    header: str | None = None
    test_url: str | None = None
    mcp_server_url: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scopes: list[str] = field(default_factory=list)
    sign_in: bool = False
    """For ``oauth2``: start the browser sign-in right after creating the connection."""

    def settings(self) -> dict[str, str]:
        values = {"username": self.username, "header": self.header, "test_url": self.test_url}
        return {key: value for key, value in values.items() if value}


class ConnectionDialog(QDialog):
    """A form per kind. API key, bearer and basic take a secret, and OAuth takes an MCP server URL or a client."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New connection")
        self.name_edit = QLineEdit(self)
        self.kind_combo = QComboBox(self)
        for kind in CONNECTION_KINDS:
            self.kind_combo.addItem(KIND_LABELS.get(kind, kind), kind)
        self.provider_combo = QComboBox(self)
        for provider in PROVIDERS:
            self.provider_combo.addItem(provider or "(none)", provider)
        self.base_url_edit = QLineEdit(self)
        self.base_url_edit.setPlaceholderText("https://api.example.com/v1")
        self.secret_edit = QLineEdit(self)
        self.secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.username_edit = QLineEdit(self)
        self.header_edit = QLineEdit(self)
        self.header_edit.setPlaceholderText("Authorization (Bearer) unless set, for example x-api-key")
        self.test_url_edit = QLineEdit(self)
        self.test_url_edit.setPlaceholderText("URL that the connection test requests with the secret")
        self.mcp_url_edit = QLineEdit(self)
        self.mcp_url_edit.setPlaceholderText("https://mcp.example.com/mcp: discovers the sign-in")
        self.authorization_edit = QLineEdit(self)
        self.token_edit = QLineEdit(self)
        self.client_id_edit = QLineEdit(self)
        self.client_secret_edit = QLineEdit(self)
        self.client_secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.scopes_edit = QLineEdit(self)
        self.scopes_edit.setPlaceholderText("space-separated scopes")
        self.sign_in_check = QCheckBox("Sign in now", self)
        self.sign_in_check.setChecked(True)

        self._form = QFormLayout()
        rows: list[tuple[str, QWidget]] = [
            ("Name", self.name_edit),
            ("Kind", self.kind_combo),
            ("Provider", self.provider_combo),
            ("Base URL", self.base_url_edit),
            ("Secret", self.secret_edit),
            ("User name", self.username_edit),
            ("Header", self.header_edit),
            ("Test URL", self.test_url_edit),
            ("MCP server URL", self.mcp_url_edit),
            ("Authorization endpoint", self.authorization_edit),
            ("Token endpoint", self.token_edit),
            ("Client id", self.client_id_edit),
            ("Client secret", self.client_secret_edit),
            ("Scopes", self.scopes_edit),
            ("", self.sign_in_check),
        ]
        for label, widget in rows:
            self._form.addRow(label, widget)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(self._form)
        layout.addWidget(buttons)
        self.kind_combo.currentIndexChanged.connect(self._on_kind_changed)
        self._on_kind_changed()

    def set_kind(self, kind: str) -> None:
        self.kind_combo.setCurrentIndex(self.kind_combo.findData(kind))

    def visible_fields(self) -> list[str]:
        """Return the labels of the rows shown for the current kind."""
        labels = []
        for row in range(self._form.rowCount()):
            label_item = self._form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            field_item = self._form.itemAt(row, QFormLayout.ItemRole.FieldRole)
            field_widget = field_item.widget() if field_item is not None else None
            label = label_item.widget() if label_item is not None else None
            if field_widget is not None and field_widget.isVisibleTo(self) and isinstance(label, QLabel):
                labels.append(label.text())
        return labels

    def form(self) -> ConnectionForm:
        """Return the entered values, with blank fields as None."""
        kind = str(self.kind_combo.currentData())
        oauth = kind == "oauth2"
        return ConnectionForm(
            name=self.name_edit.text().strip(),
            kind=kind,
            provider=str(self.provider_combo.currentData()) or None,
            base_url=_text(self.base_url_edit),
            secret=None if oauth or kind == "none" else self.secret_edit.text() or None,
            username=_text(self.username_edit) if kind == "basic" else None,
            header=_text(self.header_edit) if kind == "api_key" else None,
            test_url=_text(self.test_url_edit),
            mcp_server_url=_text(self.mcp_url_edit) if oauth else None,
            authorization_endpoint=_text(self.authorization_edit) if oauth else None,
            token_endpoint=_text(self.token_edit) if oauth else None,
            client_id=_text(self.client_id_edit) if oauth else None,
            client_secret=(self.client_secret_edit.text() or None) if oauth else None,
            scopes=self.scopes_edit.text().split() if oauth else [],
            sign_in=oauth and self.sign_in_check.isChecked(),
        )

    def _on_kind_changed(self) -> None:
        kind = str(self.kind_combo.currentData())
        oauth = kind == "oauth2"
        shown = {
            self.secret_edit: kind in ("api_key", "bearer", "basic"),
            self.username_edit: kind == "basic",
            self.header_edit: kind == "api_key",
            self.mcp_url_edit: oauth,
            self.authorization_edit: oauth,
            self.token_edit: oauth,
            self.client_id_edit: oauth,
            self.client_secret_edit: oauth,
            self.scopes_edit: oauth,
            self.sign_in_check: oauth,
        }
        for widget, visible in shown.items():
            self._form.setRowVisible(widget, visible)


def _text(edit: QLineEdit) -> str | None:
    return edit.text().strip() or None
