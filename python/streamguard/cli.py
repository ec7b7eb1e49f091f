"""The ``streamguard`` command.

    streamguard replay --rules RULES.json [--format json|protobuf|arrow] FILE...
    streamguard simulate (--out PATH | --nats-url URL) [--format ...] [--seed N] [--shipments N]
                         [--events N]
    streamguard bench [--quick] [--json PATH] [--repeat N] [--nats | --control-plane | --reports]
    streamguard demo
    streamguard engine --nats-url URL --rules FILE [--time wall|event] [--state-dir DIR]
    streamguard up [--demo] [--nats-port N] [--var DIR] [--rules FILE]
    streamguard sql "SELECT ..." [--format table|json|csv] [--dsn DSN]

Exit status: 0 when the input was processed (even with rejected events), 2 for a usage error,
an invalid rule file or an unreadable input (one line on stderr: ``streamguard: error: ...``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from streamguard import __version__
from streamguard.api.cli import add_api_parser
from streamguard.engine import FORMATS, KINDS, Engine, EngineStats
from streamguard.errors import RuleError, StreamGuardError
from streamguard.replay import FORMAT_BY_SUFFIX, format_for, replay_files
from streamguard.tokens import add_token_parser

__all__ = ["main"]

PROG = "streamguard"


class CommandError(Exception):
    """A failure reported as one line on stderr with exit status 2."""


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def _print_summary(stats: EngineStats, seconds: float, err: TextIO) -> None:
    rate = stats["events_in"] / seconds if seconds > 0 else 0.0
    rejected = {r: n for r, n in stats["rejected"].items() if n}
    total_rejected = sum(rejected.values())
    lines = [
        f"{PROG} replay: {_fmt_int(stats['events_in'])} events in {seconds:.2f} s "
        f"({_fmt_int(round(rate))} events/s)",
        f"  accepted      {_fmt_int(stats['accepted']):>14}",
        f"  out of order  {_fmt_int(stats['out_of_order']):>14}",
        f"  rejected      {_fmt_int(total_rejected):>14}",
    ]
    lines += [f"    {reason:<12}{_fmt_int(n):>14}" for reason, n in sorted(rejected.items())]
    lines += [
        "  alerts by state",
        f"    firing      {_fmt_int(stats['fired']):>14}",
        f"    resolved    {_fmt_int(stats['resolved']):>14}",
        f"    retracted   {_fmt_int(stats['retracted']):>14}",
        f"  shipments     {_fmt_int(stats['shipments']):>14}",
    ]
    err.write("\n".join(lines) + "\n")


def _load_engine(rules: str) -> Engine:
    path = Path(rules)
    try:
        return Engine(path)
    except RuleError as e:
        raise CommandError(f"invalid rule file {path}: {e}") from e
    except OSError as e:
        raise CommandError(str(e)) from e


def _check_readable(path: Path) -> None:
    if path.is_dir():
        raise CommandError(f"cannot read {path}: is a directory")
    try:
        with path.open("rb"):
            pass
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e.strerror or e}") from e


@contextlib.contextmanager
def _open_out(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdout.buffer
        return
    try:
        f = Path(path).open("wb")  # noqa: SIM115 - the open error is reported before the with
    except OSError as e:
        raise CommandError(f"cannot write {path}: {e.strerror or e}") from e
    with f:
        yield f


def cmd_replay(args: argparse.Namespace) -> int:
    engine = _load_engine(args.rules)
    inputs = [(Path(p), format_for(Path(p), args.format)) for p in args.files]
    for path, _ in inputs:
        _check_readable(path)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        dead: TextIO | None = None
        if args.dead_letters:
            if args.dead_letters == "-":
                raise CommandError("--dead-letters needs a file: stdout carries the alerts")
            dead_out = stack.enter_context(_open_out(args.dead_letters))
            dead = stack.enter_context(io.TextIOWrapper(dead_out, encoding="utf-8"))
        try:
            result = replay_files(
                engine, inputs, sys.stdout.buffer, kind=args.kind, dead_letters=dead
            )
        except OSError as e:
            raise CommandError(f"cannot read input: {e}") from e
    sys.stdout.buffer.flush()
    assert result.stats is not None
    _print_summary(result.stats, time.perf_counter() - start, sys.stderr)
    return 0


def _simulate_to_nats(args: argparse.Namespace) -> int:
    from streamguard.live import feed_credentials, publish_sim
    from streamguard.sim import Simulator

    creds = None
    if (Path(args.var) / "nats" / "creds").is_dir():
        creds = feed_credentials(Path(args.var))
    sim = Simulator(args.seed, args.shipments, args.events, args.invalid_rate)
    stats = publish_sim(
        sim,
        args.nats_url,
        creds=creds,
        sensor_format=args.sensor_format,
        rate=args.rate,
        invalid=args.invalid_rate > 0,
        partitions=args.partitions,
    )
    if not args.quiet:
        sys.stderr.write(
            f"{PROG} simulate: {_fmt_int(stats['events'])} events "
            f"+ {_fmt_int(stats['invalid'])} invalid in {_fmt_int(stats['messages'])} messages "
            f"to {args.nats_url} in {stats['seconds']:.2f} s "
            f"({'as each carrier and gateway' if creds else 'without credentials'})\n"
        )
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from streamguard.sim import Simulator

    if args.nats_url:
        return _simulate_to_nats(args)
    fmt = args.format
    if fmt is None:
        fmt = FORMAT_BY_SUFFIX.get(Path(args.out).suffix.lower(), "json")
    sim = Simulator(args.seed, args.shipments, args.events, args.invalid_rate)
    progress = args.events >= 1_000_000 and not args.quiet
    start = time.perf_counter()
    next_report = 1_000_000
    written = 0
    with _open_out(args.out) as out:
        for chunk in sim.chunks(args.chunk_events, fmt):
            out.write(chunk)
            written += len(chunk)
            if progress and sim.events_emitted >= next_report:
                elapsed = time.perf_counter() - start
                sys.stderr.write(
                    f"{PROG} simulate: {_fmt_int(sim.events_emitted)} events written "
                    f"({_fmt_int(round(sim.events_emitted / elapsed))} events/s)\n"
                )
                next_report += 1_000_000
    elapsed = time.perf_counter() - start
    if not args.quiet:
        # Binary formats cannot carry undecodable lines: only JSON feeds include them.
        invalid = f" + {_fmt_int(sim.invalid_emitted)} invalid lines" if fmt == "json" else ""
        sys.stderr.write(
            f"{PROG} simulate: {_fmt_int(sim.events_emitted)} events{invalid}, "
            f"{_fmt_int(args.shipments)} shipments, {fmt}, {written / 1e6:.1f} MB to {args.out} "
            f"in {elapsed:.2f} s\n"
        )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from streamguard.bench import SCENARIOS, run_bench

    scenarios = args.scenario or []
    if args.reports:
        from streamguard.bench_reports import run_bench_reports

        others = (args.nats, args.control_plane, args.scenario, args.events, args.validate_arrow)
        nats_only = (args.probes, args.engine_batch, args.latency_rate, args.no_acked)
        if any(others) or any(nats_only):
            raise CommandError("--reports takes only --quick, --repeat, --json, --shipments")
        return run_bench_reports(
            quick=args.quick,
            repeat=args.repeat,
            shipments=args.shipments,
            json_path=Path(args.json) if args.json else None,
        )
    if args.control_plane:
        from streamguard.bench_control import CONTROL_SCENARIOS, run_bench_control

        if args.nats:
            raise CommandError("--control-plane and --nats are separate benches: choose one")
        if any(s not in CONTROL_SCENARIOS for s in scenarios):
            raise CommandError(f"--control-plane runs only {', '.join(CONTROL_SCENARIOS)}")
        nats_only = (args.probes, args.engine_batch, args.latency_rate, args.no_acked)
        if args.shipments or args.events or args.validate_arrow or any(nats_only):
            raise CommandError("--control-plane takes only --quick, --repeat, --json, --scenario")
        return run_bench_control(
            quick=args.quick,
            repeat=args.repeat,
            json_path=Path(args.json) if args.json else None,
            scenarios=scenarios or None,
        )
    if args.nats:
        import dataclasses

        from streamguard.bench_nats import DEFAULT, NATS_SCENARIOS, QUICK, run_bench_nats

        if any(s not in NATS_SCENARIOS for s in scenarios):
            raise CommandError(f"--nats runs only {', '.join(NATS_SCENARIOS)}")
        if args.shipments or args.validate_arrow:
            raise CommandError("--shipments and --validate-arrow are for the in-process bench")
        sizes = QUICK if args.quick else DEFAULT
        if args.events:
            sizes = dataclasses.replace(
                sizes, batched_events=args.events, per_event_events=max(args.events // 8, 1)
            )
        if args.probes:
            sizes = dataclasses.replace(sizes, probes=args.probes)
        return run_bench_nats(
            repeat=args.repeat,
            json_path=Path(args.json) if args.json else None,
            scenarios=scenarios or None,
            sizes=sizes,
            acked=not args.no_acked,
            engine_batch=args.engine_batch,
            latency_rate=args.latency_rate,
        )
    if any(s not in SCENARIOS for s in scenarios):
        raise CommandError(f"without --nats, --scenario is one of {', '.join(SCENARIOS)}")
    if args.probes or args.engine_batch or args.latency_rate or args.no_acked:
        raise CommandError("--probes, --engine-batch, --latency-rate, --no-acked need --nats")
    return run_bench(
        quick=args.quick,
        repeat=args.repeat,
        json_path=Path(args.json) if args.json else None,
        scenarios=args.scenario or None,
        shipments=args.shipments,
        events=args.events,
        validate_arrow=args.validate_arrow,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from streamguard.demo import run_demo

    return run_demo(seed=args.seed, shipments=args.shipments)


def _read_rules(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise CommandError(f"cannot read rule file {path}: {e.strerror or e}") from e


def cmd_engine(args: argparse.Namespace) -> int:
    from streamguard.live import LiveEngine, StatusLine, stop_on_signals

    password = args.password
    if args.user and password is None:
        password = os.environ.get("STREAMGUARD_NATS_PASSWORD")
    try:
        engine = LiveEngine(
            args.nats_url,
            rules=_read_rules(args.rules),
            time=args.time,
            state_dir=args.state_dir,
            user=args.user,
            password=password,
            durable=args.durable,
            subjects=args.subject or None,
            partition=args.partition,
            store=args.dsn is not None,
        )
    except RuleError as e:
        raise CommandError(f"invalid rule file {args.rules}: {e}") from e
    with contextlib.ExitStack() as stack:
        stop = stack.enter_context(stop_on_signals())
        writer = None
        store = None
        if args.dsn is not None:
            from streamguard.store import open_store

            store = stack.enter_context(open_store(args.dsn))
        engine.start()
        if store is not None:
            from streamguard.store.writer import StoreWriter

            writer = StoreWriter(engine, store)
            writer.start()
        sys.stderr.write(
            f"{PROG} engine: consuming SG_EVENTS from {args.nats_url} "
            f"as {engine.status()['durable']} ({args.time} time"
            f"{', storing to ' + str(store.dsn) if store is not None else ''}); "
            f"SIGTERM or Ctrl-C drains and stops\n"
        )
        line = StatusLine(engine, sys.stderr, writer)
        while not stop.wait(args.interval) and engine.running:
            if writer is not None:
                writer.offer_stats(engine.status())
            if not args.quiet:
                line.print()
        try:
            engine.stop()
        finally:
            if writer is not None:
                writer.stop()
    if not args.quiet:
        line.print()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from streamguard.live import run_up

    return run_up(
        Path(args.var),
        nats_port=args.nats_port,
        rules=_read_rules(args.rules),
        time_mode=args.time,
        demo=args.demo,
        rate=args.rate,
        dsn=args.dsn,
        duration=args.duration,
        api=None if args.no_api else (args.api_host, args.api_port),
    )


def cmd_sql(args: argparse.Namespace) -> int:
    from streamguard.store import default_dsn, open_store

    # A read-only tool: no migrations, so it also works as a read-only server user.
    with open_store(args.dsn or default_dsn(), migrate=False) as store:
        out = store.query_formatted(args.query, args.format)
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    return 0


def _partition(text: str) -> tuple[int, int]:
    k, sep, n = text.partition("/")
    try:
        kn = (int(k), int(n))
    except ValueError:
        kn = (-1, 0)
    if not sep or not 0 <= kn[0] < kn[1]:
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N, got {text!r}")
    return kn


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _rate(text: str) -> float:
    x = float(text)
    if not 0.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {x}")
    return x


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="StreamGuard: shipment anomaly rules over carrier scans and sensor readings.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "replay",
        help="replay event files through the engine; alerts as NDJSON on stdout",
        description="Replay event files through one engine, in order. Each alert is printed "
        "on stdout as one JSON line, in the order produced; a summary goes to stderr.",
    )
    p.add_argument("--rules", required=True, metavar="RULES.json", help="the rule set")
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="input format (default: from each file's extension: "
        ".ndjson/.json/.jsonl, .pb/.protobuf/.bin, .arrow/.arrows/.ipc)",
    )
    p.add_argument("--kind", choices=KINDS, help="kind of events that do not name theirs")
    p.add_argument(
        "--dead-letters",
        metavar="PATH",
        help="write rejected inputs as NDJSON {reason, detail, raw | raw_base64}",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "simulate",
        help="write a seeded, realistic event feed",
        description="Write a simulated feed: scans with normal and long gaps and late uploads, "
        "sensor readings with shocks, heat, humidity and battery drain, shipment events, "
        "duplicates, out-of-order readings and a few invalid events (JSON only).",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="PATH", help="output file, - for stdout")
    where.add_argument(
        "--nats-url",
        metavar="URL",
        help="publish to NATS instead, as the carriers (one JSON scan per message on "
        "sg.scan.<carrier>), gateways (uploads on sg.sensor.<gateway>) and control plane do",
    )
    p.add_argument(
        "--var", default="var", help="--nats-url: the stack whose credentials to use (./var)"
    )
    p.add_argument("--rate", type=float, help="--nats-url: events per second (default: max)")
    p.add_argument(
        "--sensor-format", choices=("protobuf", "arrow"), default="protobuf",
        help="--nats-url: the gateways' upload format",
    )  # fmt: skip
    p.add_argument(
        "--partitions", type=_positive, help="--nats-url: subjects for N partitioned workers"
    )
    p.add_argument("--format", choices=FORMATS, help="default: from --out's extension, else json")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--shipments", type=_positive, default=2_000)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--invalid-rate", type=_rate, default=0.001)
    p.add_argument(
        "--chunk-events",
        type=_positive,
        default=65_536,
        help="events per protobuf message / Arrow stream (default 65536)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "bench",
        help="throughput of the engine on simulated data (in process, or --nats end to end)",
        description="In-process single-core throughput through the binding: eval_arrow "
        "(pre-decoded Arrow batches), decode_eval_json (NDJSON), decode_eval_protobuf. "
        "With --nats, end to end through private nats-servers on this machine instead: "
        "nats_batched (1000-event protobuf messages), nats_batched_stored (the same, stored in "
        "chDB), nats_per_event (one event per message), "
        "alert_latency (publish to alert, at half the nats_batched rate).",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="~50k shipments, ~1M events, 3 repeats (--nats: ~2M/100k events, 1 repeat)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument(
        "--repeat", type=_positive, help="repetitions per scenario (default 5, quick 3; --nats 3/1)"
    )
    p.add_argument(
        "--scenario",
        action="append",
        choices=(
            "eval_arrow",
            "decode_eval_json",
            "decode_eval_protobuf",
            "nats_batched",
            "nats_batched_stored",
            "nats_per_event",
            "alert_latency",
            "signoff_visible",
            "return_created",
            "api_latency",
        ),
        help="run only this scenario (repeatable; the nats_* ones and alert_latency need --nats, "
        "signoff_visible, return_created and api_latency --control-plane)",
    )
    p.add_argument("--shipments", type=_positive, help="override the shipment count")
    p.add_argument(
        "--events",
        type=_positive,
        help="override the event count (--nats: nats_batched's; nats_per_event gets an eighth)",
    )
    p.add_argument(
        "--nats",
        action="store_true",
        help="end to end through a private nats-server: publisher, server and engine here",
    )
    p.add_argument(
        "--control-plane",
        action="store_true",
        help="the control plane end to end (API, nats-server, engine, chDB here): "
        "signoff_visible (carrier scan to sign-off on the order API, p99 <= 1 s), "
        "return_created (REPAIRED to return leg booked, p99 <= 1 s) and "
        "api_latency (order create and get at 200 requests/s)",
    )
    p.add_argument(
        "--reports",
        action="store_true",
        help="the seven operator reports over >= 10 M events seeded in a temp chDB store "
        "(--shipments: 1M; --quick: 50k), each over 366 days, target < 1 s",
    )
    p.add_argument("--probes", type=_positive, help="--nats: alert_latency probes (default 500)")
    p.add_argument(
        "--engine-batch",
        type=_positive,
        help="--nats: NATS messages the engine evaluates per batch (default 1000)",
    )
    p.add_argument(
        "--latency-rate",
        type=float,
        help="--nats: alert_latency's background rate in events/s (default: half nats_batched)",
    )
    p.add_argument(
        "--no-acked",
        action="store_true",
        help="--nats: skip nats_batched_unacked (the batched feed with plain publishes)",
    )
    p.add_argument(
        "--validate-arrow",
        action="store_true",
        help="eval_arrow: also run Arrow's full validation of each batch (UTF-8, offsets)",
    )
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "demo",
        help="simulate a small feed, replay it, explain the alerts (what `make run` shows)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--shipments", type=_positive, default=2_000)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "engine",
        help="run the engine on NATS: SG_EVENTS in, SG_ALERTS and SG_DLQ out",
        description="Consume JetStream stream SG_EVENTS (created if missing) through a durable "
        "consumer, publish alert records to SG_ALERTS (sg.alert.<severity>) and rejected input "
        "to SG_DLQ (sg.dlq.<reason>), counters to sg.engine.stats. Rules come from KV "
        "sg_rules/active, seeded by --rules. Checkpoints in --state-dir make a restart (even "
        "after kill -9) neither lose nor repeat an alert.",
    )
    p.add_argument("--nats-url", required=True, metavar="URL")
    p.add_argument("--rules", metavar="FILE", help="seeds KV sg_rules/active when it is empty")
    p.add_argument("--time", choices=("wall", "event"), default="wall")
    p.add_argument("--state-dir", metavar="DIR", help="checkpoints (default: none)")
    p.add_argument("--user", help="NATS user")
    p.add_argument(
        "--password", help="NATS password (default: $STREAMGUARD_NATS_PASSWORD when --user)"
    )
    p.add_argument("--durable", help="durable consumer name (default sg-engine, or sg-engine-p<K>)")
    p.add_argument(
        "--partition",
        type=_partition,
        metavar="K/N",
        help="be worker K of N: consume sg.<kind>.*.*.<K> and refuse other partitions' shipments",
    )
    p.add_argument(
        "--subject",
        action="append",
        metavar="SUBJECT",
        help="consume only these subjects (repeatable; default sg.scan.>, sg.sensor.>, sg.ship.>)",
    )
    p.add_argument(
        "--dsn",
        help="store events, alerts and dead letters (chdb:///path or http(s)://...); "
        "input is acked once stored",
    )
    p.add_argument("--interval", type=float, default=5.0, help="seconds between status lines")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_engine)

    p = sub.add_parser(
        "up",
        help="the embedded stack: nats-server, engine, storage and API (make run: --demo)",
        description="Start a private nats-server (JetStream on, a free port, data under "
        "VAR/nats, one user per component, carrier and gateway), the engine, storage (chDB) "
        "and the control plane's API. With --demo "
        "the simulator publishes as the carriers and gateways. Ctrl-C stops cleanly.",
    )
    p.add_argument("--demo", action="store_true", help="feed it from the simulator")
    p.add_argument("--nats-port", type=int, help="default: a free port (never 4222)")
    p.add_argument("--var", default="var", help="state directory (default ./var)")
    p.add_argument("--rules", metavar="FILE", help="default: the example rule set")
    p.add_argument("--time", choices=("wall", "event"), default="wall")
    p.add_argument("--rate", type=float, default=2_000.0, help="demo events per second")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--dsn", help="storage (default: chDB in VAR/clickhouse)")
    p.add_argument("--api-host", default="127.0.0.1", help="where the API listens")
    p.add_argument("--api-port", type=int, help="default 8470, or a free port if taken")
    p.add_argument("--no-api", action="store_true", help="run without the control plane API")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser(
        "sql",
        help="query the store (ClickHouse: embedded chDB or a server)",
        description="Run one query against the store and print the result. Tables: scans, "
        "sensor_readings, shipments (shipments_latest), alerts (alert_status), dead_letters, "
        "engine_stats. A query ClickHouse rejects prints its error and exits 2.",
    )
    p.add_argument("query", help='e.g. "SELECT state, count() FROM alerts GROUP BY state"')
    p.add_argument(
        "--format",
        choices=("json", "table", "csv"),
        default="table",
        help="json: one object per line; csv: with a header line (default: table)",
    )
    p.add_argument(
        "--dsn",
        help="chdb:///abs/path or http(s)://user:password@host:port/database "
        "(default: $STREAMGUARD_DSN, else chdb://<./var/clickhouse>)",
    )
    p.set_defaults(func=cmd_sql)
    add_api_parser(sub)
    add_token_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (CommandError, StreamGuardError) as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 2
    except BrokenPipeError:
        # `streamguard replay ... | head`: the reader left; say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
