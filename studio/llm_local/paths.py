"""Install location of the local model: its virtual environment, Python interpreter and GGUF model file."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

INSTALL_COMMAND = "tools/install-local-model.sh"
"""Command, relative to the repository root, that installs llama-cpp-python and the model."""

MODEL_FILE_NAME = "gemma-3-270m-q4_k_m.gguf"
LOCAL_MODEL_NAME = "gemma-3-270m"
"""Model name the local server reports. Requests may send any name, because the server has only this model."""

# Environment variables that move the install away from the default under the repository.
ENV_DIR_VARIABLE = "STUDIO_LLAMA_ENV"
MODEL_FILE_VARIABLE = "STUDIO_LOCAL_MODEL_FILE"

_REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


class LocalModelNotInstalledError(RuntimeError):
    """The local model's environment or model file is missing; the message names the install command."""


@dataclass(frozen=True)
class LocalModelInstall:
    """A complete install: the Python that has llama_cpp.server, and the model file it serves."""

    env_dir: Path
    python: Path
    model_file: Path


def default_env_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Return the install's environment folder: ``STUDIO_LLAMA_ENV`` when set, else ``.deps/llama`` in the repository."""
    configured = environ.get(ENV_DIR_VARIABLE, "").strip()
    return Path(configured) if configured else _REPOSITORY_ROOT / ".deps" / "llama"


def find_install(environ: Mapping[str, str] = os.environ) -> LocalModelInstall:
    """Return the local model install, checking that its interpreter and model file exist.

    The model file is ``STUDIO_LOCAL_MODEL_FILE`` when set, else ``models/gemma-3-270m-q4_k_m.gguf`` in the
    environment folder.

    Raises:
        LocalModelNotInstalledError: the interpreter or the model file is missing.
    """
    env_dir = default_env_dir(environ)
    python = env_dir / "bin" / "python"
    configured_model = environ.get(MODEL_FILE_VARIABLE, "").strip()
    model_file = Path(configured_model) if configured_model else env_dir / "models" / MODEL_FILE_NAME
    if not python.exists():
        raise LocalModelNotInstalledError(
            f"the local model is not installed ({python} is missing); install it with {install_hint()}"
        )
    if not model_file.is_file():
        raise LocalModelNotInstalledError(
            f"the local model file {model_file} is missing; install it with {install_hint()}"
        )
    return LocalModelInstall(env_dir=env_dir, python=python, model_file=model_file)


def install_hint() -> str:
    """Return the shell command that installs the local model, with the path of this checkout."""
    return str(_REPOSITORY_ROOT / INSTALL_COMMAND)
