"""Local model provider: a llama_cpp.server child process serving a small GGUF model over the OpenAI protocol.

Install it with ``tools/install-local-model.sh``. Usage::

    base_url = await shared_manager().base_url()  # starts the server on first use
    endpoint = LlmEndpoint("openai", base_url)
    result = await chat_completion(client, endpoint, ChatRequest(LOCAL_MODEL_NAME, None, "Say hi"))

The package imports nothing from the engine; ``studio.engine.executors.llm_default`` builds endpoints from it.
"""

from studio.llm_local.manager import LocalModelManager, shared_manager
from studio.llm_local.paths import (
    INSTALL_COMMAND,
    LOCAL_MODEL_NAME,
    LocalModelInstall,
    LocalModelNotInstalledError,
    find_install,
    install_hint,
)
from studio.llm_local.server import LocalModelServer, LocalModelStartError, LocalServerSettings

__all__ = [
    "INSTALL_COMMAND",
    "LOCAL_MODEL_NAME",
    "LocalModelInstall",
    "LocalModelManager",
    "LocalModelNotInstalledError",
    "LocalModelServer",
    "LocalModelStartError",
    "LocalServerSettings",
    "find_install",
    "install_hint",
    "shared_manager",
]
