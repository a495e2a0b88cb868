"""Entry point of the local model server process: llama_cpp.server, stopped when the studio process is gone.

The llama-cpp environment runs this file by path (it has no studio package), as
``python serve_child.py PARENT_PID -- <llama_cpp.server arguments>``. A watcher thread ends the process
once its parent process changes, so a studio that crashed or was killed leaves no server behind.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time

# Seconds between two checks of the parent process id.
_PARENT_CHECK_INTERVAL_S = 1.0


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_CHECK_INTERVAL_S)
    os._exit(0)


def main() -> None:
    """Start the parent watcher, then run llama_cpp.server with the arguments after ``--``."""
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        sys.stderr.write("usage: serve_child.py PARENT_PID -- <llama_cpp.server arguments>\n")
        sys.exit(2)
    parent_pid = int(sys.argv[1])
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    sys.argv = ["llama_cpp.server", *sys.argv[3:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
