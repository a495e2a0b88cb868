"""Desktop notifications for new human tasks, through the system tray when the desktop has one."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyle, QSystemTrayIcon

logger = logging.getLogger(__name__)

MESSAGE_DURATION_MS = 10_000


class TaskNotifier(QObject):
    """Shows a tray message per batch of new tasks; does nothing where no system tray is available.

    The tray icon is created on the first message, so a desktop without a tray (or an offscreen
    test run) never gets one.
    """

    sig_message_clicked = Signal()
    """Emitted when the user clicks the last message shown. No arguments."""
    sig_notified = Signal(str, bool)
    """Emitted with each message and whether the tray showed it, so a host without a tray can show it elsewhere."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tray_icon: QSystemTrayIcon | None = None
        self.messages_shown = 0

    def notify(self, title: str, message: str) -> bool:
        """Show ``message`` as a desktop notification; return False when the desktop has no system tray."""
        if not QSystemTrayIcon.isSystemTrayAvailable():
            logger.debug("No system tray; not showing the notification %r", title)
            self.sig_notified.emit(message, False)
            return False
        if self.tray_icon is None:
            self.tray_icon = QSystemTrayIcon(_app_icon(), self)
            self.tray_icon.setToolTip("Workflow Studio")
            self.tray_icon.messageClicked.connect(self.sig_message_clicked)
            self.tray_icon.show()
        self.tray_icon.showMessage(title, message, QSystemTrayIcon.MessageIcon.Information, MESSAGE_DURATION_MS)
        self.messages_shown += 1
        self.sig_notified.emit(message, True)
        return True

    def close(self) -> None:
        """Remove the tray icon, if one was created."""
        if self.tray_icon is not None:
            self.tray_icon.hide()
            self.tray_icon.deleteLater()
            self.tray_icon = None


def _app_icon() -> QIcon:
    app = QApplication.instance()
    if isinstance(app, QApplication) and not app.windowIcon().isNull():
        return app.windowIcon()
    style = QApplication.style()
    return style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation)
