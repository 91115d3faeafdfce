"""The engine's API server on a free loopback port, in the test's own process (tests of explorer.serving)."""
from __future__ import annotations

import os
import shutil
import threading
import time
from contextlib import contextmanager

import pytest
import uvicorn

from explorer.serving.app import make_app
from explorer.serving.cluster import free_port  # noqa: F401  (the tests take it from here)


def require_haproxy() -> None:
    """Skip where HAProxy is missing, but fail in CI: `make test` installs it there (the `browser` target)."""
    if shutil.which("haproxy") is None:
        message = "HAProxy is not installed: `make browser` (or apt-get install haproxy) installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def running(served):
    """Serve ``served`` (model id -> loaded model, shared with the test) and yield the base URL (no /v1)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(served), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
