"""Where nsgre keeps its sockets and state on a machine, declared once.

``NSGRE_RUN_DIR`` (default ``/run/nsgre``) moves all of it, so two
emulations, the tests and the benchmarks can run side by side.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_RUN_DIR = Path("/run/nsgre")


def run_dir() -> Path:
    return Path(os.environ.get("NSGRE_RUN_DIR", str(DEFAULT_RUN_DIR)))


def api_socket() -> str:
    """The controller's API socket: where the controller listens and the
    CLI looks unless told otherwise."""
    return str(run_dir() / "api.sock")
