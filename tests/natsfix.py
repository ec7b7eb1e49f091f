"""Helpers for tests against the stack's real ``nats-server`` (the ``nats_stack`` fixture).

    def test_x(nats_stack: NatsStack) -> None:
        async def run() -> None:
            async with nats_stack.connect("carrier-SF") as (nc, errors):
                await nc.jetstream().publish("sg.scan.SF", b"...")
        asyncio.run(run())

Clients are closed on exit: pytest turns an unclosed socket into an error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import NotFoundError

from streamguard.stack import NatsCredentials, NatsServer

# The simulator's carriers (core/src/sim/carrier.rs) and a few gateways.
STACK_CARRIERS = ("SF", "JD", "YTO", "ZTO", "STO", "EMS", "YUNDA", "DBL")
STACK_GATEWAYS = ("gw1", "gw2", "gw3")

# The engine's streams, as the Rust engine creates them.
SG_EVENTS_SUBJECTS = ["sg.scan.>", "sg.sensor.>", "sg.ship.>"]
SG_ALERTS_SUBJECTS = ["sg.alert.>"]


@dataclass(frozen=True)
class NatsStack:
    """A running private server: its URL, var dir and every user's credentials."""

    server: NatsServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def var_dir(self) -> Path:
        return self.server.var_dir

    def creds(self, user: str) -> NatsCredentials:
        return self.server.credentials(user)

    @contextlib.asynccontextmanager
    async def connect(
        self, user: str, **options: Any
    ) -> AsyncIterator[tuple[Client, list[Exception]]]:
        """A nats-py client logged in as ``user`` (with its inbox prefix), and the errors the
        server reported to it (permission violations arrive there), closed on exit."""
        async with connect(self.url, self.creds(user), **options) as conn:
            yield conn


@contextlib.asynccontextmanager
async def connect(
    url: str, creds: NatsCredentials, **options: Any
) -> AsyncIterator[tuple[Client, list[Exception]]]:
    errors: list[Exception] = []

    async def on_error(e: Exception) -> None:
        errors.append(e)

    nc = Client()
    try:
        await nc.connect(
            url,
            **creds.connect_kwargs(),
            error_cb=on_error,
            allow_reconnect=False,
            connect_timeout=2,
            **options,
        )
        yield nc, errors
    finally:
        # Also after a refused connect: nats-py leaves the socket open otherwise.
        await nc.close()


async def ensure_sg_events(nc: Client) -> None:
    """Create SG_EVENTS with the engine's subjects unless it exists (whoever made it)."""
    js = nc.jetstream()
    try:
        await js.stream_info("SG_EVENTS")
    except NotFoundError:
        await js.add_stream(StreamConfig(name="SG_EVENTS", subjects=SG_EVENTS_SUBJECTS))


def permission_errors(errors: list[Exception]) -> list[str]:
    """The permission violations among a client's errors (nats-py lower-cases the text)."""
    return [str(e) for e in errors if "permissions violation" in str(e)]


async def wait_permission_errors(
    errors: list[Exception], count: int, timeout: float = 5.0
) -> list[str]:
    """The permission violations once ``count`` have arrived (or after ``timeout``).

    ``nc.flush()`` is no barrier for them: nats-py writes its PING straight to the socket,
    ahead of SUB/PUB commands still queued for its flusher task.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(permission_errors(errors)) < count and loop.time() < deadline:
        await asyncio.sleep(0.005)
    return permission_errors(errors)


async def _read_stream(stack: NatsStack, stream: str) -> list[Any]:
    async with stack.connect("engine") as (nc, _):
        js = nc.jetstream()
        last = (await js.stream_info(stream)).state.last_seq
        if last == 0:
            return []
        sub = await js.pull_subscribe(
            "",
            stream=stream,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
        )
        msgs: list[Any] = []
        while not msgs or msgs[-1].metadata.sequence.stream < last:
            msgs += await sub.fetch(1000, timeout=5)
        await sub.unsubscribe()
        return msgs


def read_stream(stack: NatsStack, stream: str) -> list[Any]:
    """Every message of ``stream``, in stream order (nats-py Msg objects), read as the engine."""
    return asyncio.run(_read_stream(stack, stream))
