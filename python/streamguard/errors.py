"""StreamGuard's exceptions: one class per kind of error the Rust engine reports.

The extension raises these classes directly (it imports this module), so callers can catch
:class:`StreamGuardError` for everything, or one subclass for one kind:

====================  ==========================================================
``DecodeError``       input that cannot be decoded as a whole (e.g. an unreadable
                      Arrow stream, a record batch with the wrong schema)
``RuleError``         an invalid rule set; ``.rule`` and ``.field`` say where
``ConfigError``       a bad argument (unknown format name, bad option)
``AuthError``         a bearer token that does not verify (expired, bad signature,
                      unknown role...); the message says which
``NatsError``         NATS failures: connecting, streams, consumers, publishing
``StackError``        the embedded stack: nats-server missing, not starting, bad
                      credentials (a ``NatsError``)
``StoreError``        storage (ClickHouse) failures — reserved for the store layer
``StreamGuardIOError`` reading or writing a file; also an :class:`OSError`
====================  ==========================================================

Single bad *events* are not exceptions: they are counted and returned as dead letters.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "DecodeError",
    "NatsError",
    "RuleError",
    "StackError",
    "StoreError",
    "StreamGuardError",
    "StreamGuardIOError",
]


class StreamGuardError(Exception):
    """Base class of every error StreamGuard raises."""


class DecodeError(StreamGuardError):
    """Input that cannot be decoded as a whole (a single bad event is a dead letter instead)."""


class RuleError(StreamGuardError):
    """An invalid rule set. The whole set is rejected; a running engine keeps its old rules.

    ``rule`` is the offending rule's id (or ``rules[i]`` when it has none, ``None`` for a
    top-level field such as ``lateness_ms``); ``field`` names the field.
    """

    def __init__(self, message: str, *, rule: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.field = field

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only attributes survive pickling (multiprocessing, logging handlers).
        return (_rebuild_rule_error, (self.message, self.rule, self.field))


def _rebuild_rule_error(message: str, rule: str | None, field: str | None) -> RuleError:
    return RuleError(message, rule=rule, field=field)


class ConfigError(StreamGuardError, ValueError):
    """A bad argument: unknown format or kind name, an option out of range."""


class AuthError(StreamGuardError):
    """A bearer token was rejected: malformed, bad signature, expired, wrong issuer or audience,
    or claims that do not make a principal. The message names the reason; the API answers 401."""


class NatsError(StreamGuardError):
    """NATS failed: the server is unreachable, refused the credentials, or a stream or consumer
    could not be set up. The message says which and includes the server's reason."""


class StackError(NatsError):
    """The embedded stack failed: no ``nats-server`` binary, a server that does not start or
    stops answering, unreadable credentials. The message includes the server's log tail."""


class StoreError(StreamGuardError):
    """Storage failures (ClickHouse). Reserved: raised by the store layer, not by the engine."""


class StreamGuardIOError(StreamGuardError, OSError):
    """Reading or writing a file failed. Also an :class:`OSError`, so ``except OSError`` works."""
