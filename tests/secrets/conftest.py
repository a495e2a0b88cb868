"""Fixtures for the secrets tests: installed keychains and an environment selecting the encrypted file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from studio.secrets import BACKEND_VARIABLE, FILE_VARIABLE, PASSPHRASE_VARIABLE
from tests.secrets.keyring_backends import PASSPHRASE, MemoryKeyring


@pytest.fixture
def install_keyring() -> Iterator[Callable[[KeyringBackend], KeyringBackend]]:
    """Install a backend as keyring's process-wide choice for one test, then restore the previous one."""
    previous = keyring.get_keyring()

    def install(backend: KeyringBackend) -> KeyringBackend:
        keyring.set_keyring(backend)
        return backend

    yield install
    keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring(install_keyring: Callable[[KeyringBackend], KeyringBackend]) -> MemoryKeyring:
    """A fresh in-memory keychain, installed as keyring's choice for the test."""
    backend = MemoryKeyring()
    install_keyring(backend)
    return backend


@pytest.fixture
def no_keyring(install_keyring: Callable[[KeyringBackend], KeyringBackend]) -> KeyringBackend:
    """keyring's fail backend installed, as on a machine with no keychain at all."""
    return install_keyring(fail.Keyring())


@pytest.fixture
def file_environ(tmp_path: Path) -> dict[str, str]:
    """Environment that selects the encrypted secrets file in ``tmp_path`` with a passphrase."""
    return {
        BACKEND_VARIABLE: "file",
        FILE_VARIABLE: str(tmp_path / "vault" / "secrets.cfg"),
        PASSPHRASE_VARIABLE: PASSPHRASE,
    }
