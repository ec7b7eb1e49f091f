"""Webhook delivery: a durable pull consumer of ``SG_WEBHOOKS`` that POSTs each queued
delivery to its subscription's URL, signed, and records every attempt.

At least once: a delivery is acked only after its receiver answered 2xx; a failure (another
status, a redirect, a timeout, a refused connection) is NAKed with the backoff delay of its
attempt number (the message's delivery count), so the retry waits in JetStream, not in this
process, and a crash loses nothing: an unacked delivery comes back after the ack wait. A
receiver may therefore get a delivery twice, with the same ``StreamGuard-Delivery`` id.

``max_failures`` consecutive failures of a subscription disable it. Its queued deliveries are
then terminated, each recorded as ``dropped_disabled``: a receiver that was failing for that
long would otherwise get a burst of stale events when enabled again, and the record says
exactly which events it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace

import httpx
import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from streamguard import __version__
from streamguard.bus.clock import now_ms
from streamguard.bus.consumers import Consumer
from streamguard.bus.orderlog import ORDERS_STREAM
from streamguard.bus.webhooks import (
    DELIVERY_DURABLE,
    EVENT_HEADER,
    FANOUT_DURABLE,
    ORDER_HEADER,
    SOURCE_HEADER,
    SUBJECT_PREFIX,
    SUBSCRIPTION_HEADER,
    WEBHOOKS_STREAM,
    Directory,
    SubscriptionStore,
    WebhookSettings,
    ensure_stream,
    fanout_handler,
)
from streamguard.domain.webhooks import Subscription, backoff_s, signed_headers
from streamguard.store.store import Store
from streamguard.store.webhook_tables import Attempt, Outcome, insert_attempt

__all__ = ["DeliveryWorker", "Webhooks", "failed", "succeeded"]

log = logging.getLogger("streamguard.webhooks")


def failed(sub: Subscription, at_ms: int, max_failures: int, error: str) -> Subscription:
    """The subscription after one more failed attempt: disabled at the limit."""
    count = sub.consecutive_failures + 1
    if not sub.enabled or count < max_failures:
        return msgspec.structs.replace(sub, consecutive_failures=count)
    return msgspec.structs.replace(
        sub,
        consecutive_failures=count,
        enabled=False,
        disabled_ms=at_ms,
        disabled_reason=f"{count} consecutive failed deliveries, the last: {error}"[:500],
    )


def succeeded(sub: Subscription) -> Subscription:
    return msgspec.structs.replace(sub, consecutive_failures=0)


class DeliveryWorker:
    """Delivers ``SG_WEBHOOKS``, ``settings.concurrency`` at a time. ``store`` None: attempts
    are logged, not stored (an API process without storage)."""

    def __init__(
        self,
        js: JetStreamContext,
        subscriptions: SubscriptionStore,
        store: Store | None,
        settings: WebhookSettings,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        self._js = js
        self._subs = subscriptions
        self._store = store
        self._settings = settings
        # A private generator: the module's global one is shared state (and property-based
        # tests running in the same process watch it).
        self._jitter = jitter or random.Random().random
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_s),
            follow_redirects=False,
            # Deliveries go where the operator said, not through a proxy from the environment.
            trust_env=False,
            headers={"User-Agent": f"StreamGuard-Webhooks/{__version__}"},
        )
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.failures = 0

    async def start(self) -> None:
        config = api.ConsumerConfig(
            durable_name=DELIVERY_DURABLE,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self._settings.ack_wait,
            # Deliveries waiting out their backoff count as pending: a dead receiver must not
            # stall the others.
            max_ack_pending=20_000,
            filter_subject=f"{SUBJECT_PREFIX}>",
        )
        # Create or update: a changed ack wait applies at the next start.
        await self._js.add_consumer(WEBHOOKS_STREAM, config)
        sub = await self._js.pull_subscribe_bind(DELIVERY_DURABLE, stream=WEBHOOKS_STREAM)
        self._task = asyncio.create_task(self._run(sub), name=DELIVERY_DURABLE)

    async def _run(self, sub: JetStreamContext.PullSubscription) -> None:
        while True:
            free = self._settings.concurrency - len(self._inflight)
            if free <= 0:
                await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                messages = await sub.fetch(free, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.ConnectionClosedError:
                return
            except Exception as e:
                log.warning("fetching webhook deliveries failed: %r", e)
                await asyncio.sleep(1)
                continue
            for msg in messages:
                task = asyncio.create_task(self._guarded(msg))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)

    async def _guarded(self, msg: Msg) -> None:
        try:
            await self.deliver(msg)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left unacked: JetStream gives it again after the ack wait.
            log.exception("webhook delivery %s failed in the worker", msg.subject)

    async def deliver(self, msg: Msg) -> None:
        """One attempt of one queued delivery, recorded, then acked, NAKed or terminated."""
        headers = msg.headers or {}
        sub_id = headers.get(SUBSCRIPTION_HEADER, msg.subject.removeprefix(SUBJECT_PREFIX))
        event_type = headers.get(EVENT_HEADER, "")
        started = now_ms()
        attempt = Attempt(
            subscription_id=sub_id,
            delivery_id=headers.get(api.Header.MSG_ID.value, ""),
            event_type=event_type,
            order_id=headers.get(ORDER_HEADER, ""),
            source_seq=int(headers.get(SOURCE_HEADER, "0") or 0),
            attempt=int(msg.metadata.num_delivered),
            at=started,
            url="",
            outcome="failed",
        )
        sub = await self._subs.get(sub_id)
        if sub is None or not sub.enabled:
            outcome: Outcome = "dropped_deleted" if sub is None else "dropped_disabled"
            reason = "the subscription was deleted" if sub is None else sub.disabled_reason
            await self._record(
                replace(attempt, url=sub.url if sub else "", outcome=outcome, error=reason)
            )
            await msg.term()
            return
        status, error = await self._post(sub, event_type, attempt.delivery_id, msg.data)
        done = replace(
            attempt,
            url=sub.url,
            status_code=status,
            error=error,
            duration_ms=max(0, now_ms() - started),
        )
        if error is None:
            self.delivered += 1
            await self._record(replace(done, outcome="delivered"))
            # Not only when this read saw failures: others may have failed since (a no-op at 0).
            await self._subs.change(sub.id, succeeded)
            await msg.ack()
            return
        self.failures += 1
        after = await self._subs.change(
            sub.id, lambda s: failed(s, now_ms(), self._settings.max_failures, error)
        )
        if after is None or not after.enabled:
            outcome = "dropped_deleted" if after is None else "disabled"
            await self._record(replace(done, outcome=outcome))
            await msg.term()
            return
        delay = backoff_s(
            attempt.attempt,
            self._settings.backoff_base_s,
            self._settings.backoff_cap_s,
            self._jitter(),
        )
        await self._record(replace(done, outcome="failed", retry_in_ms=int(delay * 1000)))
        await msg.nak(delay=delay)

    async def _post(
        self, sub: Subscription, event_type: str, delivery: str, body: bytes
    ) -> tuple[int | None, str | None]:
        """(status, None) for a 2xx; else (status or None, what went wrong)."""
        headers = signed_headers(sub, event_type, delivery, body, now_ms())
        started = time.monotonic()
        try:
            # The whole exchange, not each read, is bounded: a receiver dripping bytes must
            # not hold a delivery past the ack wait.
            async with asyncio.timeout(self._settings.timeout_s):
                async with self._client.stream(
                    "POST", sub.url, content=body, headers=headers
                ) as response:
                    status = response.status_code
        except TimeoutError:
            return None, f"timeout after {time.monotonic() - started:.1f} s"
        except httpx.TimeoutException as e:
            return None, f"timeout ({type(e).__name__})"
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as e:
            return None, f"{type(e).__name__}: {e}"[:500] if str(e) else type(e).__name__
        if 200 <= status < 300:
            return status, None
        return status, f"HTTP {status}"

    async def _record(self, attempt: Attempt) -> None:
        log.info(
            "webhook %s attempt %d: %s (%s)",
            attempt.delivery_id,
            attempt.attempt,
            attempt.outcome,
            attempt.error or attempt.status_code,
        )
        if self._store is None:
            return
        try:
            await asyncio.to_thread(insert_attempt, self._store, attempt)
        except Exception as e:
            # The delivery matters more than its record: go on, and say so.
            log.error("webhook attempt %s not recorded: %r", attempt.delivery_id, e)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=5)
        await self._client.aclose()


class Webhooks:
    """The fan-out and the delivery worker of one control-plane process."""

    def __init__(self, directory: Directory, fanout: Consumer, worker: DeliveryWorker) -> None:
        self.directory = directory
        self.fanout = fanout
        self.worker = worker

    @classmethod
    async def start(
        cls, js: JetStreamContext, store: Store | None, settings: WebhookSettings
    ) -> Webhooks:
        subscriptions = await SubscriptionStore.open(js)
        await ensure_stream(js)
        directory = Directory(js, subscriptions.kv)
        await directory.start()
        fanout = Consumer(
            js,
            ORDERS_STREAM,
            "sg.order.>",
            FANOUT_DURABLE,
            fanout_handler(js, directory),
            deliver_all=True,
        )
        worker = DeliveryWorker(js, subscriptions, store, settings)
        service = cls(directory, fanout, worker)
        try:
            await fanout.start()
            await worker.start()
        except BaseException:
            await service.stop()
            raise
        return service

    async def stop(self) -> None:
        await self.fanout.stop()
        await self.worker.stop()
        await self.directory.stop()
