"""``turnout serve --workers N``: uvicorn's process supervisor, with one change for graceful
shutdown (see ``lifecycle.py``)."""

from __future__ import annotations

import os
import signal
from typing import Any

from uvicorn.supervisors import Multiprocess

__all__ = ["run_workers"]


class _Supervisor(Multiprocess):
    def handle_term(self) -> None:
        # Each worker holds its own copy of the listening socket and closes it at the end of
        # its grace period; the parent's copy would keep the port accepting connections
        # that no worker will ever serve (clients would hang instead of being refused).
        for sock in self.sockets:
            sock.close()
        super().handle_term()

    def handle_hup(self) -> None:
        # uvicorn restarts every worker on SIGHUP; Turnout's workers reload their config in
        # place instead (server/reload.py), keeping the requests they are serving.
        for process in self.processes:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)


def run_workers(workers: int, options: dict[str, Any]) -> None:
    """Serve ``turnout.server:app_from_env`` from ``workers`` processes sharing one socket."""
    import uvicorn

    config = uvicorn.Config("turnout.server:app_from_env", factory=True, workers=workers, **options)
    sock = config.bind_socket()
    _Supervisor(config, sockets=[sock]).run()
