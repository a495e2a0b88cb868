"""Secret storage: the OS keychain through ``keyring``, or a passphrase-encrypted file when there is none.

Values are stored under the service name ``workflow-studio/<workspace slug>`` with the reference
(for example ``connection/<id>``) as the keyring user name. Only references ever leave this module.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import keyring
import keyring.errors
import platformdirs
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null

logger = logging.getLogger(__name__)

SERVICE_PREFIX = "workflow-studio"
PASSPHRASE_VARIABLE = "STUDIO_SECRETS_PASSPHRASE"
"""Environment variable with the passphrase of the encrypted secrets file."""
FILE_VARIABLE = "STUDIO_SECRETS_FILE"
"""Environment variable with the path of the encrypted secrets file."""
BACKEND_VARIABLE = "STUDIO_SECRETS_BACKEND"
"""Environment variable choosing the store: ``auto`` (default), ``keyring`` or ``file``."""
BACKEND_CHOICES = ("auto", "keyring", "file")
SECRETS_FILE_NAME = "secrets.cfg"

# Display names of the keyring backends that talk to an operating system's keychain.
_KEYCHAIN_NAMES = {
    "keyring.backends.SecretService.Keyring": "Secret Service",
    "keyring.backends.libsecret.Keyring": "Secret Service (libsecret)",
    "keyring.backends.kwallet.DBusKeyring": "KWallet",
    "keyring.backends.kwallet.DBusKeyringKWallet4": "KWallet 4",
    "keyring.backends.macOS.Keyring": "macOS Keychain",
    "keyring.backends.Windows.WinVaultKeyring": "Windows Credential Manager",
}


class SecretsError(Exception):
    """A failed secret operation. The message names the failure and the fix, never the value."""


class SecretNotFoundError(SecretsError):
    """A reference with no stored value."""


class VaultUnavailableError(SecretsError):
    """No usable store: no OS keychain and no passphrase for the encrypted file."""


class VaultAccessError(SecretsError):
    """The store exists but refused the operation: a locked keychain, a wrong passphrase, a broken file."""


def service_name(workspace_slug: str) -> str:
    """Return the keyring service name of a workspace, ``workflow-studio/<slug>``."""
    if not workspace_slug or "/" in workspace_slug:
        raise ValueError(f"invalid workspace slug {workspace_slug!r}: it must be non-empty and contain no '/'")
    return f"{SERVICE_PREFIX}/{workspace_slug}"


def default_secrets_file(environ: Mapping[str, str] | None = None) -> Path:
    """Return the encrypted file's path: ``$STUDIO_SECRETS_FILE``, else next to the default database."""
    env = os.environ if environ is None else environ
    if env.get(FILE_VARIABLE):
        return Path(env[FILE_VARIABLE])
    data_dir = env.get("STUDIO_DATA_DIR")
    base = Path(data_dir) if data_dir else Path(platformdirs.user_data_dir("workflow-studio", appauthor=False))
    return base / SECRETS_FILE_NAME


class SecretVault:
    """Stores, reads and deletes the secrets of one workspace in one keyring backend.

    Use :func:`open_vault` to pick the backend. Every backend error becomes a :class:`SecretsError`
    whose message names the reference and the store, never the value.
    """

    def __init__(
        self,
        workspace_slug: str,
        backend: KeyringBackend,
        *,
        description: str | None = None,
        encrypted_fallback: bool = False,
        cache_path: Path | None = None,
    ) -> None:
        """Wrap ``backend``; ``cache_path`` turns on a value cache that a change of that file clears."""
        self.workspace_slug = workspace_slug
        self.service = service_name(workspace_slug)
        self.backend = backend
        self._description = description or describe_backend(backend)
        self._encrypted_fallback = encrypted_fallback
        self._cache_path = cache_path
        self._cache: dict[str, str] = {}
        self._cache_stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SecretVault(service={self.service!r}, backend={self._description!r})"

    @property
    def is_encrypted_fallback(self) -> bool:
        """Whether secrets go to the passphrase-encrypted file because no OS keychain was usable."""
        return self._encrypted_fallback

    def backend_description(self) -> str:
        """Return where secrets are stored, for the user: "Secret Service", "encrypted file <path>", …"""
        return self._description

    def set(self, ref: str, value: str, *, label: str | None = None) -> None:
        """Store ``value`` under ``ref``, replacing any earlier value."""
        _check_ref(ref)
        if not isinstance(value, str) or not value:
            raise SecretsError(f"the secret for {label or ref} is empty; give a non-empty value")
        with self._lock:
            try:
                self.backend.set_password(self.service, ref, value)
            except (keyring.errors.KeyringError, OSError, ValueError) as error:
                raise self._access_error("store", ref, label, error, value) from None
            self._forget(ref)
        logger.debug("Stored secret %s in %s", ref, self._description)

    def get(self, ref: str, *, label: str | None = None) -> str:
        """Return the value stored under ``ref``; ``label`` (say "connection 'OpenAI'") names it in errors.

        Raises:
            SecretNotFoundError: nothing is stored under ``ref``.
            VaultAccessError: the store refused the read.
        """
        _check_ref(ref)
        with self._lock:
            cached = self._cached(ref)
            if cached is not None:
                return cached
            try:
                value = self.backend.get_password(self.service, ref)
            except (keyring.errors.KeyringError, OSError, ValueError) as error:
                raise self._access_error("read", ref, label, error) from None
            if value is None:
                raise SecretNotFoundError(
                    f"the secret of {label or ref} is missing from {self._description} "
                    f"(service {self.service}, reference {ref}); store it again, for example with "
                    f"'studio connections rotate'"
                )
            if self._cache_path is not None:
                self._cache[ref] = value
        return value

    def delete(self, ref: str, *, label: str | None = None) -> bool:
        """Delete the value under ``ref``; return False when there was none."""
        _check_ref(ref)
        with self._lock:
            self._forget(ref)
            try:
                self.backend.delete_password(self.service, ref)
            except keyring.errors.PasswordDeleteError:
                # keyring backends raise this for a reference with no value.
                return False
            except (keyring.errors.KeyringError, OSError, ValueError) as error:
                raise self._access_error("delete", ref, label, error) from None
        logger.debug("Deleted secret %s from %s", ref, self._description)
        return True

    # -- value cache (encrypted file only: each read there costs a key derivation) --------------

    def _cached(self, ref: str) -> str | None:
        if self._cache_path is None:
            return None
        stamp = _file_stamp(self._cache_path)
        if stamp != self._cache_stamp:
            self._cache.clear()
            self._cache_stamp = stamp
        return self._cache.get(ref)

    def _forget(self, ref: str) -> None:
        self._cache.pop(ref, None)
        self._cache_stamp = None

    def _access_error(
        self, action: str, ref: str, label: str | None, error: Exception, value: str | None = None
    ) -> VaultAccessError:
        subject = label or ref
        if isinstance(error, keyring.errors.KeyringLocked):
            return VaultAccessError(
                f"could not {action} the secret of {subject}: {self._description} is locked; unlock it "
                "(log in to the desktop session or unlock the keychain) and try again"
            )
        detail = _redact(str(error) or type(error).__name__, value)
        logger.warning("Could not %s secret %s in %s: %s", action, ref, self._description, detail)
        return VaultAccessError(
            f"could not {action} the secret of {subject} in {self._description}: {detail}; check that the "
            f"keychain is unlocked and allows this application, or set {BACKEND_VARIABLE}=file and "
            f"{PASSPHRASE_VARIABLE} to use an encrypted file instead"
        )


def _check_ref(ref: str) -> None:
    if not isinstance(ref, str) or not ref.strip():
        raise SecretsError(f"invalid secret reference {ref!r}; give a non-empty reference such as connection/<id>")


def _redact(text: str, value: str | None) -> str:
    return text.replace(value, "[secret]") if value else text


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def describe_backend(backend: KeyringBackend) -> str:
    """Return a display name for a keyring backend, such as "Secret Service"."""
    cls = type(backend)
    qualified = f"{cls.__module__}.{cls.__name__}"
    return _KEYCHAIN_NAMES.get(qualified, f"keyring backend {qualified}")


def is_usable_keyring(backend: KeyringBackend) -> bool:
    """Check whether ``backend`` can store secrets without prompting on a terminal or writing plain text.

    The fail and null backends store nothing. File-backed backends (keyrings.alt, keyrings.cryptfile)
    either write plain text or prompt for a passphrase on standard input, so the vault uses its own
    encrypted file for that case instead.
    """
    if isinstance(backend, fail.Keyring | null.Keyring | chainer.ChainerBackend):
        return False
    return not hasattr(backend, "file_path")


def os_keyring() -> KeyringBackend | None:
    """Return the keyring that ``keyring`` selected when it is usable (see :func:`is_usable_keyring`).

    When ``keyring`` chains several backends, the chained backend with the highest priority that is
    usable is returned. None means no usable keychain.
    """
    selected = keyring.get_keyring()
    if isinstance(selected, chainer.ChainerBackend):
        chained: list[KeyringBackend] = list(chainer.ChainerBackend.backends)
        return next((backend for backend in chained if is_usable_keyring(backend)), None)
    return selected if is_usable_keyring(selected) else None


_file_vaults: dict[tuple[str, Path, str], SecretVault] = {}
_file_vaults_lock = threading.Lock()


def encrypted_file_vault(workspace_slug: str, path: Path, passphrase: str, *, reuse: bool = True) -> SecretVault:
    """Open (creating it on first use) the passphrase-encrypted secrets file at ``path``.

    The file is a keyrings.cryptfile keyring: AES-GCM with an Argon2id-derived key per value, so
    unlocking and each read take about a second of CPU time. With ``reuse`` the unlocked vault is
    kept for later calls with the same file and passphrase.

    Raises:
        VaultUnavailableError: the passphrase is blank.
        VaultAccessError: the passphrase does not unlock the file, or the file cannot be read.
    """
    if not passphrase or not passphrase.strip():
        raise VaultUnavailableError(
            f"the passphrase for the encrypted secrets file {path} is blank; set {PASSPHRASE_VARIABLE} "
            "to a non-blank passphrase"
        )
    path = path.expanduser().resolve()
    key = (workspace_slug, path, hashlib.sha256(passphrase.encode()).hexdigest())
    with _file_vaults_lock:
        if reuse and key in _file_vaults:
            return _file_vaults[key]
        vault = SecretVault(
            workspace_slug,
            _unlock_file(path, passphrase),
            description=f"encrypted file {path}",
            encrypted_fallback=True,
            cache_path=path,
        )
        if reuse:
            _file_vaults[key] = vault
    return vault


def _unlock_file(path: Path, passphrase: str) -> KeyringBackend:
    from keyrings.cryptfile.cryptfile import CryptFileKeyring

    backend: KeyringBackend = CryptFileKeyring()
    backend.file_path = str(path)  # type: ignore[attr-defined]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Setting the key checks it against the file's reference entry, or creates the file.
        backend.keyring_key = passphrase  # type: ignore[attr-defined]
    except ValueError:
        raise VaultAccessError(
            f"the passphrase does not unlock the encrypted secrets file {path}; set {PASSPHRASE_VARIABLE} "
            "to the passphrase the file was created with, or move the file away to start a new one "
            "(its secrets are then lost)"
        ) from None
    except (OSError, KeyError, UnicodeDecodeError) as error:
        raise VaultAccessError(f"could not open the encrypted secrets file {path}: {error}") from None
    logger.info("Unlocked encrypted secrets file %s", path)
    return backend


def open_vault(
    workspace_slug: str,
    *,
    environ: Mapping[str, str] | None = None,
    passphrase: str | None = None,
    backend: KeyringBackend | None = None,
    secrets_file: Path | None = None,
) -> SecretVault:
    """Open the secret store of a workspace.

    Choice, first match wins: ``backend`` when given; the OS keychain (unless ``STUDIO_SECRETS_BACKEND``
    is ``file``); the encrypted file (``secrets_file``, else :func:`default_secrets_file`) with
    ``passphrase``, else ``$STUDIO_SECRETS_PASSPHRASE``. Plain-text storage is never chosen.

    Raises:
        VaultUnavailableError: no usable keychain and no passphrase, or an invalid backend choice.
        VaultAccessError: the passphrase does not unlock the file.
    """
    env = os.environ if environ is None else environ
    if backend is not None:
        return SecretVault(workspace_slug, backend)
    choice = env.get(BACKEND_VARIABLE, "").strip().lower() or "auto"
    if choice not in BACKEND_CHOICES:
        raise VaultUnavailableError(
            f"invalid {BACKEND_VARIABLE} value {choice!r}; use one of {', '.join(BACKEND_CHOICES)}"
        )
    path = secrets_file or default_secrets_file(env)
    if choice != "file":
        keychain = os_keyring()
        if keychain is not None:
            return SecretVault(workspace_slug, keychain)
        if choice == "keyring":
            raise VaultUnavailableError(
                f"no OS keychain is available, but {BACKEND_VARIABLE}=keyring requires one; start a keychain "
                f"service (Secret Service, KWallet) or set {BACKEND_VARIABLE}=file and {PASSPHRASE_VARIABLE}"
            )
    secret_passphrase = passphrase or env.get(PASSPHRASE_VARIABLE, "")
    if not secret_passphrase:
        reason = "no OS keychain is available" if choice == "auto" else f"{BACKEND_VARIABLE}=file is set"
        raise VaultUnavailableError(
            f"the vault of connection secrets cannot be opened: {reason}, and no passphrase was given for the encrypted "
            f"secrets file {path}; set {PASSPHRASE_VARIABLE} to a passphrase (the file is created on first "
            "use), or run the studio in a desktop session with a keychain (Secret Service, macOS Keychain, "
            "Windows Credential Manager)"
        )
    return encrypted_file_vault(workspace_slug, path, secret_passphrase)
