"""NATS KV buckets, opened or created: whoever comes first (an API replica, the engine) creates
the bucket, and a create that loses that race opens the winner's."""

from __future__ import annotations

from typing import Any

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

__all__ = ["bucket"]


async def bucket(js: JetStreamContext, name: str, **config: Any) -> KeyValue:
    """The bucket ``name``, created with ``config`` (nats-py ``create_key_value``) if missing."""
    try:
        return await js.key_value(name)
    except nats.js.errors.BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(bucket=name, **config)
    except nats.js.errors.APIError:
        return await js.key_value(name)
