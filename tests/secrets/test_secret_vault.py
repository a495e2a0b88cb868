"""SecretVault against real keyring backends: an in-memory keychain, a refusing one, the encrypted file."""

from __future__ import annotations

import logging
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from keyring.backend import KeyringBackend
from keyrings.cryptfile.file import PlaintextKeyring

from studio.secrets import (
    BACKEND_VARIABLE,
    FILE_VARIABLE,
    PASSPHRASE_VARIABLE,
    SecretNotFoundError,
    SecretsError,
    SecretVault,
    VaultAccessError,
    VaultUnavailableError,
    encrypted_file_vault,
    open_vault,
    os_keyring,
    service_name,
)
from tests.conftest import REPO_ROOT, cli_env
from tests.secrets.keyring_backends import PASSPHRASE, MemoryKeyring, RejectingKeyring

SECRET = "sk-vault-test-7Q2mZ9xW4pL1"


# -- keychain backends --------------------------------------------------------------------------------


def test_vault_round_trip_in_keychain(memory_keyring: MemoryKeyring) -> None:
    vault = open_vault("local", environ={})

    vault.set("connection/abc", SECRET)

    assert vault.get("connection/abc") == SECRET
    assert memory_keyring.values == {("workflow-studio/local", "connection/abc"): SECRET}
    assert vault.is_encrypted_fallback is False
    assert "MemoryKeyring" in vault.backend_description()
    assert vault.delete("connection/abc") is True
    assert vault.delete("connection/abc") is False
    assert memory_keyring.values == {}


def test_vault_services_per_workspace(memory_keyring: MemoryKeyring) -> None:
    open_vault("team-a", environ={}).set("connection/x", "value-a")
    open_vault("team-b", environ={}).set("connection/x", "value-b")

    assert open_vault("team-a", environ={}).get("connection/x") == "value-a"
    assert open_vault("team-b", environ={}).get("connection/x") == "value-b"
    assert service_name("team-a") == "workflow-studio/team-a"
    with pytest.raises(ValueError, match="invalid workspace slug"):
        service_name("a/b")


def test_missing_secret_names_connection(memory_keyring: MemoryKeyring) -> None:
    vault = open_vault("local", environ={})

    with pytest.raises(SecretNotFoundError) as caught:
        vault.get("connection/gone", label="connection 'Production OpenAI'")

    message = str(caught.value)
    assert "connection 'Production OpenAI'" in message
    assert "connection/gone" in message
    assert "studio connections rotate" in message


def test_vault_rejects_empty_values(memory_keyring: MemoryKeyring) -> None:
    vault = open_vault("local", environ={})

    with pytest.raises(SecretsError, match="is empty"):
        vault.set("connection/a", "")
    with pytest.raises(SecretsError, match="invalid secret reference"):
        vault.set(" ", SECRET)
    assert memory_keyring.values == {}


def test_explicit_backend_wins(memory_keyring: MemoryKeyring) -> None:
    other = MemoryKeyring()

    vault = open_vault("local", environ={}, backend=other)
    vault.set("connection/a", SECRET)

    assert other.values == {("workflow-studio/local", "connection/a"): SECRET}
    assert memory_keyring.values == {}


@pytest.mark.parametrize("backend", [PlaintextKeyring(), MemoryKeyring()], ids=["plaintext-file", "memory"])
def test_os_keyring_skips_plaintext_files(install_keyring: object, backend: KeyringBackend, tmp_path: Path) -> None:
    backend_path = tmp_path / "plain.cfg"
    if isinstance(backend, PlaintextKeyring):
        backend.file_path = str(backend_path)
    install_keyring(backend)  # type: ignore[operator]

    chosen = os_keyring()

    if isinstance(backend, PlaintextKeyring):
        assert chosen is None, "a plain-text file must never be chosen as the keychain"
        with pytest.raises(VaultUnavailableError):
            open_vault("local", environ={})
        assert not backend_path.exists()
    else:
        assert chosen is backend


def test_no_keyring_no_passphrase_error(no_keyring: KeyringBackend, tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets.cfg"

    with pytest.raises(VaultUnavailableError) as caught:
        open_vault("local", environ={FILE_VARIABLE: str(secrets_file)})

    message = str(caught.value)
    assert message.startswith("the vault of connection secrets cannot be opened"), "reading a secret opens it too"
    assert "no OS keychain is available" in message
    assert PASSPHRASE_VARIABLE in message
    assert str(secrets_file) in message
    assert not secrets_file.exists(), "nothing may be written without encryption"


def test_keyring_choice_requires_keychain(no_keyring: KeyringBackend) -> None:
    with pytest.raises(VaultUnavailableError, match=f"{BACKEND_VARIABLE}=keyring requires one"):
        open_vault("local", environ={BACKEND_VARIABLE: "keyring", PASSPHRASE_VARIABLE: PASSPHRASE})


def test_invalid_backend_choice(memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(VaultUnavailableError, match="invalid STUDIO_SECRETS_BACKEND value 'vault'"):
        open_vault("local", environ={BACKEND_VARIABLE: "vault"})


def test_locked_keychain_read_error(install_keyring: object, caplog: pytest.LogCaptureFixture) -> None:
    install_keyring(RejectingKeyring())  # type: ignore[operator]
    vault = open_vault("local", environ={})

    with pytest.raises(VaultAccessError) as caught:
        vault.get("connection/a", label="connection 'Gateway'")

    message = str(caught.value)
    assert "could not read the secret of connection 'Gateway'" in message
    assert "is locked" in message
    assert "unlock it" in message


def test_refused_write_hides_value(install_keyring: object, caplog: pytest.LogCaptureFixture) -> None:
    install_keyring(RejectingKeyring())  # type: ignore[operator]
    vault = open_vault("local", environ={})
    caplog.set_level(logging.DEBUG)

    with pytest.raises(VaultAccessError) as caught:
        vault.set("connection/a", SECRET, label="connection 'Gateway'")

    message = str(caught.value)
    assert "could not store the secret of connection 'Gateway'" in message
    assert "access denied by the keychain" in message
    assert SECRET not in message
    assert "[secret]" in message
    assert SECRET not in caplog.text
    assert caught.value.__cause__ is None


# -- encrypted file -----------------------------------------------------------------------------------


def test_encrypted_file_fallback(no_keyring: KeyringBackend, file_environ: dict[str, str]) -> None:
    path = Path(file_environ[FILE_VARIABLE])

    vault = open_vault("local", environ={FILE_VARIABLE: str(path), PASSPHRASE_VARIABLE: PASSPHRASE})
    vault.set("connection/a", SECRET)

    assert vault.is_encrypted_fallback is True
    assert vault.backend_description() == f"encrypted file {path.resolve()}"
    assert vault.get("connection/a") == SECRET
    content = path.read_bytes()
    assert SECRET.encode() not in content
    assert b"[workflow_2Dstudio_2Flocal]" in content, "service names stay readable (escaped), values are encrypted"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_passphrase_argument_and_file_choice(memory_keyring: MemoryKeyring, tmp_path: Path) -> None:
    path = tmp_path / "chosen.cfg"

    vault = open_vault("local", environ={BACKEND_VARIABLE: "file"}, passphrase=PASSPHRASE, secrets_file=path)
    vault.set("connection/a", SECRET)

    assert vault.is_encrypted_fallback is True
    assert memory_keyring.values == {}, "STUDIO_SECRETS_BACKEND=file bypasses the keychain"
    assert path.exists()


def test_encrypted_file_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "secrets.cfg"
    encrypted_file_vault("local", path, PASSPHRASE, reuse=False).set("connection/a", SECRET)

    with pytest.raises(VaultAccessError) as caught:
        encrypted_file_vault("local", path, "not the passphrase", reuse=False)

    message = str(caught.value)
    assert "passphrase does not unlock the encrypted secrets file" in message
    assert str(path.resolve()) in message
    assert "not the passphrase" not in message
    with pytest.raises(VaultUnavailableError, match="is blank"):
        encrypted_file_vault("local", path, "   ")


def test_encrypted_file_shared_between_processes(tmp_path: Path) -> None:
    path = tmp_path / "secrets.cfg"
    writer = encrypted_file_vault("local", path, PASSPHRASE, reuse=False)
    reader = encrypted_file_vault("local", path, PASSPHRASE, reuse=False)
    writer.set("connection/a", "first-value")
    assert reader.get("connection/a") == "first-value"

    writer.set("connection/a", SECRET)

    assert reader.get("connection/a") == SECRET, "a change of the file must clear the reader's cache"
    script = (
        "import sys; from pathlib import Path; from studio.secrets import encrypted_file_vault; "
        "sys.stdout.write(encrypted_file_vault('local', Path(sys.argv[1]), sys.argv[2]).get('connection/a'))"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, str(path), PASSPHRASE],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert other.returncode == 0, other.stderr
    assert other.stdout == SECRET


def test_vault_repr_hides_nothing_secret(memory_keyring: MemoryKeyring) -> None:
    vault = SecretVault("local", memory_keyring)
    vault.set("connection/a", SECRET)

    assert SECRET not in repr(vault)
    assert "workflow-studio/local" in repr(vault)
