"""``streamguard api``: the control plane's API alone, against an external NATS and store (the
embedded stack serves it from ``streamguard up``)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamguard.domain.regions import DEFAULT_DEPOT_REGION
from streamguard.stack import CONTROL_USER, NatsCredentials, load_credentials

if TYPE_CHECKING:
    from streamguard.bus.plane import ControlConfig

__all__ = ["DEFAULT_API_PORT", "add_api_parser", "api_port", "cmd_api", "control_config"]

#: The API's port when none is given and it is free (else a free one is picked and printed).
DEFAULT_API_PORT = 8470


def api_port(host: str, wanted: int | None) -> int:
    """``wanted`` as given; else DEFAULT_API_PORT when it is free, else 0 (any free port)."""
    if wanted is not None:
        return wanted
    with socket.socket() as s:
        try:
            s.bind((host, DEFAULT_API_PORT))
        except OSError:
            return 0
    return DEFAULT_API_PORT


def control_config(
    nats_url: str,
    var_dir: Path,
    *,
    user: str | None = None,
    password: str | None = None,
    depot_region: str = DEFAULT_DEPOT_REGION,
    consumers: bool = True,
) -> ControlConfig:
    """Credentials: ``user``/``password`` if given, else the stack's stored ``control`` user
    under ``var_dir`` when it exists, else none (an open server). Webhook delivery settings
    come from ``$STREAMGUARD_WEBHOOK_*`` (see :class:`WebhookSettings`)."""
    # Here, not at the top: the control plane's imports (NATS, Litestar's neighbours) would
    # slow every `streamguard` command, the engine's restarts among them.
    from streamguard.bus.plane import ControlConfig
    from streamguard.bus.webhooks import WebhookSettings
    from streamguard.keys import Keys

    creds: NatsCredentials | None = None
    if user:
        creds = NatsCredentials(user, password or os.environ.get("STREAMGUARD_NATS_PASSWORD", ""))
    elif (var_dir / "nats" / "creds" / f"{CONTROL_USER}.json").exists():
        creds = load_credentials(var_dir, CONTROL_USER)
    return ControlConfig(
        nats_url,
        creds,
        Keys.from_env(var_dir),
        depot_region=depot_region,
        consumers=consumers,
        webhooks=WebhookSettings.from_env(),
    )


def cmd_api(args: argparse.Namespace) -> int:
    from streamguard.api.server import ApiServer
    from streamguard.live import stop_on_signals
    from streamguard.store import open_store

    var_dir = Path(args.var).resolve()
    config = control_config(
        args.nats_url,
        var_dir,
        user=args.user,
        password=args.password,
        depot_region=args.depot_region,
        consumers=not args.no_consumers,
    )
    kwargs: dict[str, Any] = {"host": args.host, "port": api_port(args.host, args.port)}
    with stop_on_signals() as stop:
        store = open_store(args.dsn) if args.dsn else None
        try:
            api = ApiServer(config, store, access_log=args.access_log, **kwargs).start()
            sys.stderr.write(
                f"streamguard api: serving {api.url} (OpenAPI at {api.url}/schema) against "
                f"NATS {args.nats_url}, storage {store.dsn if store else 'none'}; Ctrl-C stops\n"
            )
            stop.wait()
            api.stop()
        finally:
            if store is not None:
                store.close()
    return 0


def add_api_parser(sub: Any) -> None:
    p = sub.add_parser(
        "api",
        help="the control plane's HTTP API alone (streamguard up also serves it)",
        description="Serve the repair-order API (Litestar) against a NATS server or cluster "
        "and a store. Tokens: `streamguard token create`. Keys live in VAR/keys "
        "(or $STREAMGUARD_KEYS_DIR).",
    )
    p.add_argument("--nats-url", required=True, help="nats://host:port[,nats://…]")
    p.add_argument("--user", help="NATS user (default: VAR's stored control user, if any)")
    p.add_argument("--password", help="NATS password (default: $STREAMGUARD_NATS_PASSWORD)")
    p.add_argument("--dsn", help="storage, for listings, photos, verification and projection")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, help=f"default {DEFAULT_API_PORT}, or a free one")
    p.add_argument("--var", default="var", help="state directory for keys (default ./var)")
    p.add_argument("--depot-region", default=DEFAULT_DEPOT_REGION)
    p.add_argument(
        "--no-consumers",
        action="store_true",
        help="do not consume scans and alerts (another replica does)",
    )
    p.add_argument("--access-log", action="store_true")
    p.set_defaults(func=cmd_api)
