"""The clients of ``streamguard bench --control-plane``, run in a child process of the bench
(``python -c "from streamguard.bench_control_client import main; main()"``): a spec (JSON) on
stdin, the result (one JSON line) on stdout. Stdlib HTTP and nats-py only, so that their cost per
request stays small next to the API's (see bench_control)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
import urllib.parse
from typing import Any

from streamguard.bench_control import (
    _INTAKE,
    CARRIER,
    DEPOT_REGION,
    POLL_S,
    PREPARE_TIMEOUT_S,
    SEED_ORDERS,
    STUCK_AFTER,
    VISIBLE_TIMEOUT_S,
    ControlBenchError,
    _log,
)

__all__ = ["Pool", "main"]


def main() -> None:
    """The child process: a spec (JSON) on stdin, the result (one JSON line) on stdout."""
    spec = json.loads(sys.stdin.read())
    try:
        if spec["kind"] in ("signoff_visible", "return_created"):
            doc = asyncio.run(_visible_client(spec))
        else:
            doc = asyncio.run(_load_client(spec))
    except Exception as e:
        doc = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(doc), flush=True)


class Pool:
    """A minimal HTTP/1.1 client: at most ``size`` keep-alive connections to one server,
    requests beyond that wait (FIFO) for one. Stdlib only, and cheap per request: the clients
    share the cores with what they measure (httpx's pool was seen spending ~13 ms of CPU per
    request with 64 connections busy, several times the API's own cost)."""

    def __init__(self, url: str, size: int) -> None:
        parts = urllib.parse.urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(size)

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for _, writer in self._idle:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        self._idle.clear()

    async def request(
        self, method: str, path: str, token: str, body: Any = None, key: str | None = None
    ) -> tuple[int, Any]:
        """(status, the JSON body or None)."""
        data = b"" if body is None else json.dumps(body).encode()
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self._host}:{self._port}",
            f"Authorization: Bearer {token}",
            f"Content-Length: {len(data)}",
        ]
        if body is not None:
            head.append("Content-Type: application/json")
        if key is not None:
            head.append(f"Idempotency-Key: {key}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + data
        async with self._slots:
            while True:
                reused = bool(self._idle)
                conn = (
                    self._idle.pop()
                    if reused
                    else await asyncio.open_connection(self._host, self._port)
                )
                if reused and (conn[0].at_eof() or conn[1].is_closing()):
                    conn[1].close()
                    continue
                try:
                    status, payload, keep = await self._exchange(conn, raw)
                except (ConnectionError, asyncio.IncompleteReadError):
                    conn[1].close()
                    # The server closed an idle connection (its keep-alive timeout) as we
                    # sent: the request was not handled (a POST has its Idempotency-Key).
                    if reused:
                        continue
                    raise
                except BaseException:
                    conn[1].close()
                    raise
                if keep:
                    self._idle.append(conn)
                else:
                    conn[1].close()
                return status, json.loads(payload) if payload else None

    @staticmethod
    async def _exchange(
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes
    ) -> tuple[int, bytes, bool]:
        reader, writer = conn
        writer.write(raw)
        line = await reader.readline()
        if not line:
            raise ConnectionResetError("the server closed the connection")
        status = int(line.split()[1])
        length, chunked, keep = None, False, True
        while (header := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = header.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                keep = value != b"close"
        if chunked:
            parts = []
            while size := int((await reader.readline()).split(b";")[0], 16):
                parts.append(await reader.readexactly(size + 2))
            await reader.readline()
            return status, b"".join(p[:-2] for p in parts), keep
        if length is None:
            return status, await reader.read(), False
        return status, await reader.readexactly(length), keep


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _scan(tracking: str, status: str, **extra: Any) -> bytes:
    body = {"kind": "scan", "shipment": tracking, "carrier": CARRIER, "ts": _now_ms()}
    return json.dumps({**body, "status": status, **extra}).encode()


def _checked(answer: tuple[int, Any], what: str) -> dict[str, Any]:
    status, body = answer
    if status // 100 != 2 or not isinstance(body, dict):
        raise ControlBenchError(f"{what}: HTTP {status}: {str(body)[:300]}")
    return body


async def _prepare(http: Pool, js: Any, spec: dict[str, Any], n: int) -> list[tuple[str, str]]:
    """``n`` orders booked inbound with SF and moved to INBOUND_IN_TRANSIT by a PICKED_UP scan:
    (order id, tracking). A scan that comes before the control plane linked its shipment is
    ignored, so pickups are published again until every order has moved."""
    run, customers, operator = spec["run"], spec["customers"], spec["operator"]

    async def one(i: int) -> tuple[str, str]:
        token = customers[i % len(customers)]
        order = _checked(
            await http.request("POST", "/orders", token, _INTAKE, f"prep-{run}-{i}"), "create"
        )
        tracking = f"SFB{run:02d}{i:07d}"
        leg = {"leg": "inbound", "carrier": CARRIER, "tracking": tracking}
        _checked(
            await http.request("POST", f"/orders/{order['id']}/shipments", operator, leg), "book"
        )
        return str(order["id"]), tracking

    orders = await asyncio.gather(*(one(i) for i in range(n)))
    pending = dict(orders)
    deadline = time.monotonic() + PREPARE_TIMEOUT_S
    while pending:
        for tracking in pending.values():
            await js.publish(
                f"sg.scan.{CARRIER}", _scan(tracking, "PICKED_UP", location="CN-440304")
            )
        retry_at = time.monotonic() + 2.0
        while pending and time.monotonic() < retry_at:
            for oid in list(pending):
                order = _checked(await http.request("GET", f"/orders/{oid}", operator), "get")
                if order["status"] == "INBOUND_IN_TRANSIT":
                    del pending[oid]
            await asyncio.sleep(0.05)
        if pending and time.monotonic() > deadline:
            raise ControlBenchError(
                f"{len(pending)} of {n} orders not INBOUND_IN_TRANSIT {PREPARE_TIMEOUT_S:g} s "
                "after their PICKED_UP scans"
            )
    return list(orders)


async def _visible_client(spec: dict[str, Any]) -> dict[str, Any]:
    """``signoff_visible`` or ``return_created``: per order, one action at t0, then GET the
    order until it shows the effect; latency = that response's arrival - t0."""
    from nats.aio.client import Client

    n = int(spec["orders"])
    returns = spec["kind"] == "return_created"
    async with Pool(spec["api_url"], 8) as http:
        nc = Client()
        await nc.connect(
            spec["nats_url"],
            user=spec["carrier_user"],
            password=spec["carrier_password"],
            inbox_prefix=f"_INBOX_{spec['carrier_user']}",
            allow_reconnect=False,
        )
        try:
            js = nc.jetstream(timeout=10)
            started = time.perf_counter()
            orders = await _prepare(http, js, spec, n)
            if returns:
                await asyncio.gather(*(_to_repairing(http, spec, oid) for oid, _ in orders))
            prepare_s = time.perf_counter() - started
            _log(f"{spec['kind']}: {n} orders prepared in {prepare_s:.1f} s")
            depot = spec["depot"]
            signer = {"name": "Wang Fang", "type": "self", "staff_id": "D-0042"}
            latencies: list[float] = []
            acks: list[float] = []
            missing = 0
            in_a_row = 0
            window = time.time(), time.process_time()
            for oid, tracking in orders:
                t0 = time.perf_counter()
                if returns:
                    move = {"to": "REPAIRED"}
                    _checked(
                        await http.request("POST", f"/orders/{oid}/transitions", depot, move),
                        "repaired",
                    )
                else:
                    body = _scan(tracking, "DELIVERED", location=DEPOT_REGION, signer=signer)
                    await js.publish(f"sg.scan.{CARRIER}", body)
                acks.append((time.perf_counter() - t0) * 1000.0)
                while True:
                    order = _checked(await http.request("GET", f"/orders/{oid}", depot), "get")
                    now = time.perf_counter()
                    if order["shipments"].get("return") if returns else order["signoffs"]:
                        latencies.append((now - t0) * 1000.0)
                        in_a_row = 0
                        break
                    if now - t0 > VISIBLE_TIMEOUT_S:
                        missing += 1
                        in_a_row += 1
                        break
                    await asyncio.sleep(POLL_S)
                if in_a_row >= STUCK_AFTER:
                    raise ControlBenchError(
                        f"{spec['kind']}: {in_a_row} orders in a row showed nothing within "
                        f"{VISIBLE_TIMEOUT_S:g} s ({len(latencies)} did): a consumer seems stuck"
                    )
            end = time.time(), time.process_time()
        finally:
            await nc.close()
    return {
        "window": [window[0], end[0]],
        "window_cpu_s": end[1] - window[1],
        "latencies_ms": latencies,
        "puback_ms": acks,
        "missing": missing,
        "prepare_s": prepare_s,
    }


async def _to_repairing(http: Pool, spec: dict[str, Any], oid: str) -> None:
    """An order in transit to the depot, received (the depot's sign-off) and under repair."""
    depot = spec["depot"]
    receipt = {"leg": "inbound", "signer_type": "depot_staff", "signer_name": "Desk",
               "staff_id": "D-1"}  # fmt: skip
    _checked(await http.request("POST", f"/orders/{oid}/signoffs", depot, receipt), "receipt")
    for to in ("DIAGNOSING", "REPAIRING"):
        move = {"to": to}
        _checked(await http.request("POST", f"/orders/{oid}/transitions", depot, move), to)


async def _load_client(spec: dict[str, Any]) -> dict[str, Any]:
    rate, duration = float(spec["rate"]), float(spec["duration_s"])
    customers: list[str] = spec["customers"]
    run = spec["run"]
    rng = random.Random(run)
    ops: dict[str, dict[str, Any]] = {
        op: {"latencies_ms": [], "errors": 0, "statuses": {}} for op in ("create", "get")
    }
    async with Pool(spec["api_url"], int(spec["connections"])) as http:
        created: list[tuple[str, str]] = []
        for i in range(SEED_ORDERS):
            token = customers[i % len(customers)]
            answer = await http.request("POST", "/orders", token, _INTAKE, f"seed-{run}-{i}")
            created.append((str(_checked(answer, "create")["id"]), token))
        loop = asyncio.get_running_loop()
        lags: list[float] = []
        sent: list[float] = []
        done: list[float] = []

        async def one(i: int, at: float) -> None:
            op = "create" if i % 2 == 0 else "get"
            now = loop.time()
            sent.append(now)
            lags.append(now - at)
            status = "error"
            try:
                if op == "create":
                    token = customers[(i // 2) % len(customers)]
                    code, body = await http.request(
                        "POST", "/orders", token, _INTAKE, f"load-{run}-{i}"
                    )
                    if code == 201:
                        created.append((str(body["id"]), token))
                else:
                    oid, token = rng.choice(created)
                    code, _ = await http.request("GET", f"/orders/{oid}", token)
                status = str(code)
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                status = f"error: {type(e).__name__}"
            end = loop.time()
            done.append(end)
            o = ops[op]
            o["statuses"][status] = o["statuses"].get(status, 0) + 1
            if status.startswith("2"):
                o["latencies_ms"].append((end - at) * 1000.0)
            else:
                o["errors"] += 1

        n = max(int(rate * duration), 2)
        tasks: list[asyncio.Task[None]] = []
        window = time.time(), time.process_time()
        start = loop.time() + 0.05
        next_note = start + 2.0
        for i in range(n):
            at = start + i / rate
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, at)))
            if loop.time() >= next_note:
                next_note += 2.0
                _log(f"api_latency: {i + 1} sent, {len(done)} done, {len(tasks) - len(done)} open")
        await asyncio.gather(*tasks)
        end = time.time(), time.process_time()
    return {
        "window": [window[0], end[0]],
        "window_cpu_s": end[1] - window[1],
        "ops": ops,
        "sent": len(sent),
        "sent_rate": (len(sent) - 1) / max(max(sent) - min(sent), 1e-9),
        "done_rate": len(done) / max(max(done) - start, 1e-9),
        "max_send_lag_ms": max(lags) * 1000.0,
    }
