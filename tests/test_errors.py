"""The exception classes, and that the engine raises them (never a bare RuntimeError)."""

from __future__ import annotations

import pickle

import pytest

import streamguard
from streamguard import errors
from streamguard.engine import Engine


def test_every_error_is_a_streamguard_error() -> None:
    for cls in (
        errors.DecodeError,
        errors.RuleError,
        errors.ConfigError,
        errors.StoreError,
        errors.StreamGuardIOError,
    ):
        assert issubclass(cls, errors.StreamGuardError)
        assert getattr(streamguard, cls.__name__) is cls
    assert issubclass(errors.StreamGuardIOError, OSError)
    assert issubclass(errors.ConfigError, ValueError)


def test_rule_error_carries_rule_and_field_and_pickles() -> None:
    e = errors.RuleError("rule 'a': field 'b': bad", rule="a", field="b")
    again = pickle.loads(pickle.dumps(e))
    assert (again.rule, again.field, str(again)) == ("a", "b", "rule 'a': field 'b': bad")


def test_rule_error_from_the_engine_is_structured() -> None:
    with pytest.raises(errors.RuleError) as info:
        Engine('{"rules": [{"id": "x", "kind": "dwell", "severity": "info"}]}')
    assert (info.value.rule, info.value.field) == ("x", "for_ms")
    assert str(info.value) == "rule 'x': field 'for_ms': is required"


def test_unknown_format_and_kind_are_config_errors() -> None:
    engine = Engine('{"rules": []}')
    with pytest.raises(errors.ConfigError, match="unknown format 'xml'"):
        engine.process(b"{}", format="xml")
    with pytest.raises(errors.ConfigError, match="unknown kind 'parcel'"):
        engine.process(b"{}", kind="parcel")
    with pytest.raises(errors.ConfigError, match="protobuf input must be bytes"):
        engine.process("{}", format="protobuf")


def test_missing_rule_file_is_an_io_error(tmp_path: object) -> None:
    with pytest.raises(errors.StreamGuardIOError, match="cannot read rule file") as info:
        Engine(f"{tmp_path}/nope.json")
    assert isinstance(info.value, OSError)


def test_wrong_argument_types_are_type_errors() -> None:
    with pytest.raises(TypeError):
        Engine(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Engine('{"rules": []}').process(3.5)  # type: ignore[arg-type]
