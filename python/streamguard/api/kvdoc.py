"""A JSON document kept under one NATS KV key and replaced with compare-and-set on its revision
(the rule set, the carrier tariffs): the revision is the ETag; a write needs If-Match once the
document exists (428 without it) and a stale one is a 412 carrying the current ETag."""

from __future__ import annotations

import nats.js.errors
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_412_PRECONDITION_FAILED, HTTP_428_PRECONDITION_REQUIRED
from nats.js.kv import KeyValue

from streamguard.api.common import etag
from streamguard.api.problems import Problem

__all__ = ["PRECONDITIONS", "current_entry", "precondition", "replace"]

PRECONDITIONS = {
    412: ResponseSpec(
        data_container=Problem,
        description="If-Match names a revision that is no longer current (ETag: the current one)",
    ),
    428: ResponseSpec(
        data_container=Problem,
        description="The document exists: replacing it needs If-Match with its ETag",
    ),
}


async def current_entry(kv: KeyValue, key: str) -> KeyValue.Entry | None:
    """The key's entry; None when there is none (never saved, deleted or purged)."""
    try:
        return await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None


def precondition(what: str, expected: int | None, current: KeyValue.Entry | None) -> HTTPException:
    """The answer to a write whose If-Match does not hold: 428 when none was sent, else 412;
    both carry the current revision (0 for "none yet") as ETag."""
    revision = int(current.revision or 0) if current is not None else 0
    if expected is None:
        return HTTPException(
            status_code=HTTP_428_PRECONDITION_REQUIRED,
            detail=f"the {what} exists: send If-Match with its ETag",
            extra={"current_version": revision},
            headers={"ETag": etag(revision)},
        )
    return HTTPException(
        status_code=HTTP_412_PRECONDITION_FAILED,
        detail=f"If-Match is stale: the {what} is at revision {revision}",
        extra={"current_version": revision},
        headers={"ETag": etag(revision)},
    )


async def replace(
    kv: KeyValue, key: str, value: bytes, expected: int | None, what: str
) -> tuple[int, bool]:
    """Compare-and-set ``value`` under ``key``: (the new revision, whether it was created)."""
    current = await current_entry(kv, key)
    if expected is None and current is not None:
        raise precondition(what, None, current)
    try:
        if expected:
            return await kv.update(key, value, last=expected), False
        return await kv.create(key, value), current is None
    except nats.js.errors.KeyWrongLastSequenceError:
        raise precondition(what, expected, await current_entry(kv, key)) from None
    except nats.js.errors.APIError as e:
        # create() on a key that appeared meanwhile.
        if e.err_code in (10071, 10164):
            raise precondition(what, expected, await current_entry(kv, key)) from None
        raise
