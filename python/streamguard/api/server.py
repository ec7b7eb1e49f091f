"""Serving the API with uvicorn in a background thread, so the process that runs the engine
and owns the embedded store (chDB allows one per process) serves HTTP too."""

from __future__ import annotations

import threading
import time

import uvicorn

from streamguard.api.app import create_app
from streamguard.bus.plane import ControlConfig
from streamguard.errors import StreamGuardError
from streamguard.store.store import Store

__all__ = ["ApiServer"]


class ApiServer:
    """``ApiServer(config, store, port=0).start()``; ``.url`` once started; ``.stop()``."""

    def __init__(
        self,
        config: ControlConfig,
        store: Store | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: int | None = None,
        access_log: bool = False,
    ) -> None:
        kwargs = {} if rate_limit is None else {"rate_limit": rate_limit}
        self.app = create_app(config, store, **kwargs)
        self._config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            access_log=access_log,
            lifespan="on",
        )
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        servers = getattr(self._server, "servers", [])
        for server in servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                return f"http://{host}:{port}"
        raise StreamGuardError("the API server is not listening")

    def start(self, timeout: float = 60.0) -> ApiServer:
        self._thread = threading.Thread(target=self._server.run, name="sg-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise StreamGuardError("the API server stopped while starting (see its log)")
            if time.monotonic() > deadline:
                self.stop()
                raise StreamGuardError(f"the API server did not start within {timeout:.0f} s")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
