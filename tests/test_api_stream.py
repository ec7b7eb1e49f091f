"""``/stream``: order changes and alerts as Server-Sent Events, for staff only."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

from apifix import ApiStack


def _read_events(
    stack: ApiStack, want: int, out: list[dict[str, Any]], ready: threading.Event
) -> None:
    headers = stack.as_operator()
    with (
        httpx.Client(base_url=stack.url, timeout=20) as client,
        client.stream("GET", "/stream?events=orders", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith(": streamguard: connected"):
                ready.set()
            elif line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "order":
                out.append(json.loads(line.removeprefix("data: ")))
                if len(out) >= want:
                    return


def test_stream_pushes_order_changes_to_operators(api_stack: ApiStack) -> None:
    received: list[dict[str, Any]] = []
    ready = threading.Event()
    reader = threading.Thread(target=_read_events, args=(api_stack, 2, received, ready))
    reader.start()
    assert ready.wait(10), "the stream did not open"
    order = api_stack.create_order("cust-stream")
    api_stack.book(order["id"], "inbound", "EMS", "EMS0000000001")
    reader.join(15)
    assert not reader.is_alive()
    assert [(e["order_id"], e["type"], e["status"]) for e in received] == [
        (order["id"], "created", "CREATED"),
        (order["id"], "shipment", "AWAITING_PICKUP"),
    ]


def test_stream_is_for_staff(api_stack: ApiStack) -> None:
    r = api_stack.client.get("/stream", headers=api_stack.as_customer("cust-stream"))
    assert r.status_code == 403
    assert api_stack.client.get("/stream").status_code == 401
