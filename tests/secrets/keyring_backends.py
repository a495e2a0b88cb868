"""Keyring backends for tests: an in-memory keychain and one that refuses access."""

from __future__ import annotations

import keyring.errors
from jaraco.classes import properties
from keyring.backend import KeyringBackend

PASSPHRASE = "correct horse battery staple"
"""Passphrase of the encrypted secrets files that tests create."""


class _NeverAutoSelected(KeyringBackend):
    """Base of the test backends: ``keyring`` never picks them on its own, because their priority raises."""

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("test backend: used only when a test installs it")

    def get_password(self, service: str, username: str) -> str | None:
        raise NotImplementedError

    def set_password(self, service: str, username: str, password: str) -> None:
        raise NotImplementedError


class MemoryKeyring(_NeverAutoSelected):
    """A real ``KeyringBackend`` that keeps values in a dict.

    CI machines and this headless test host have no OS keychain (no Secret Service on D-Bus), so this
    backend plays the keychain's part. It behaves as keyring's OS backends do: ``None`` for a missing
    value and ``PasswordDeleteError`` when deleting one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.values.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("Password not found")


class RejectingKeyring(MemoryKeyring):
    """A keychain that raises on access: locked for reads, and rejecting writes with the value in its message."""

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("Failed to unlock the collection!")

    def set_password(self, service: str, username: str, password: str) -> None:
        # Some backends quote what they were given; the vault must not pass that on.
        raise keyring.errors.PasswordSetError(f"cannot store {password!r}: access denied by the keychain")
