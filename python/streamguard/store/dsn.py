"""Where the store lives: ``chdb:///abs/path`` (in-process chDB) or ``http(s)://…`` (a server).

Both become keyword arguments of the one ``clickhouse_connect.get_client`` call, so the rest of
the store never asks which transport it talks to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from streamguard.errors import ConfigError

__all__ = ["DEFAULT_DATABASE", "DEFAULT_DIR", "DSN_ENV", "Dsn", "default_dsn", "parse_dsn"]

#: The environment variable that names the store when no ``--dsn`` is given.
DSN_ENV = "STREAMGUARD_DSN"
#: The embedded store's directory when neither ``--dsn`` nor ``$STREAMGUARD_DSN`` says otherwise.
DEFAULT_DIR = Path("var") / "clickhouse"
#: The database StreamGuard's tables live in (a server DSN may name another).
DEFAULT_DATABASE = "streamguard"

_HTTP_PORTS = {"http": 8123, "https": 8443}


@dataclass(frozen=True, slots=True)
class Dsn:
    """A parsed DSN. ``path`` is set for chDB; ``host``/``port``/``username``/``password`` for a
    server. ``str(dsn)`` never shows the password."""

    scheme: Literal["chdb", "http", "https"]
    database: str = DEFAULT_DATABASE
    path: str | None = None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str = field(default="", repr=False)

    @property
    def embedded(self) -> bool:
        return self.scheme == "chdb"

    def client_kwargs(self) -> dict[str, object]:
        """The transport, as ``clickhouse_connect.get_client`` keyword arguments (no database:
        the store creates it first, then selects it)."""
        if self.embedded:
            return {"interface": "chdb", "path": self.path}
        return {
            "interface": self.scheme,
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
        }

    def __str__(self) -> str:
        if self.embedded:
            return f"chdb://{self.path}"
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}/{self.database}"


def parse_dsn(text: str) -> Dsn:
    """Parse ``chdb:///abs/path`` or ``http(s)://[user[:password]@]host[:port][/database]``.

    Raises :class:`ConfigError` naming the part that is wrong.
    """
    parts = urlsplit(text.strip())
    if parts.scheme == "chdb":
        return _parse_chdb(text, parts.netloc, parts.path, parts.query)
    if parts.scheme == "http":
        return _parse_http(text, "http")
    if parts.scheme == "https":
        return _parse_http(text, "https")
    raise ConfigError(
        f"store DSN {_redact(text)!r}: unknown scheme {parts.scheme!r} "
        "(expected chdb:///abs/path or http(s)://user:password@host:port/database)"
    )


def _parse_chdb(text: str, netloc: str, path: str, query: str) -> Dsn:
    if netloc:
        raise ConfigError(
            f"store DSN {text!r}: chDB needs an absolute path, chdb:///abs/path "
            f"(three slashes), not a host {netloc!r}"
        )
    if query:
        raise ConfigError(f"store DSN {text!r}: chDB takes no options, got {query!r}")
    path = unquote(path)
    if not path.startswith("/") or path == "/":
        raise ConfigError(f"store DSN {text!r}: chDB needs an absolute directory path")
    # chDB compares engine paths literally: one spelling per directory.
    return Dsn(scheme="chdb", path=os.path.realpath(path))


def _parse_http(text: str, scheme: Literal["http", "https"]) -> Dsn:
    parts = urlsplit(text.strip())
    shown = _redact(text)
    if parts.query or parts.fragment:
        raise ConfigError(f"store DSN {shown!r}: options are not supported, got {parts.query!r}")
    if not parts.hostname:
        raise ConfigError(f"store DSN {shown!r}: no host")
    try:
        port = parts.port or _HTTP_PORTS[scheme]
    except ValueError as e:
        raise ConfigError(f"store DSN {shown!r}: bad port ({e})") from None
    database = unquote(parts.path.strip("/")) or DEFAULT_DATABASE
    if "/" in database or not database.replace("_", "").isalnum():
        raise ConfigError(
            f"store DSN {shown!r}: bad database {database!r} (letters, digits and _ only)"
        )
    return Dsn(
        scheme=scheme,
        database=database,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else "",
    )


def _redact(text: str) -> str:
    parts = urlsplit(text)
    if parts.password is None:
        return text
    return text.replace(f":{parts.password}@", ":***@", 1)


def default_dsn() -> str:
    """``$STREAMGUARD_DSN``, else the embedded store under ``./var/clickhouse``."""
    env = os.environ.get(DSN_ENV, "").strip()
    if env:
        return env
    return f"chdb://{DEFAULT_DIR.resolve()}"
