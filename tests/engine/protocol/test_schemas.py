"""The shipped JSON Schemas (engine/protocol/schemas/) are the ones generated from the msgspec types, and they
describe what Lintas really sends and what ``lintas compile`` really writes."""

from __future__ import annotations

import json

import msgspec
import pytest

jsonschema = pytest.importorskip("jsonschema")

from engine.protocol import messages as m  # noqa: E402
from engine.protocol.schema import SCHEMA_DIR, dumps, schemas  # noqa: E402
from simulation.experiments.catalog import DEMO  # noqa: E402
from tests.clirun import lintas  # noqa: E402


def _validator(name: str):
    schema = json.loads((SCHEMA_DIR / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_shipped_schemas_equal_the_generated_ones():
    """Regenerate with ``python -m engine.protocol.schema`` after changing messages.py or junction.py."""
    want = schemas()
    shipped = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert shipped == set(want), f"schema files differ: extra {shipped - set(want)}, missing {set(want) - shipped}"
    for name, schema in want.items():
        assert (SCHEMA_DIR / name).read_text() == dumps(schema), (
            f"engine/protocol/schemas/{name} is out of date: run python -m engine.protocol.schema")


def test_one_schema_per_message_type_and_each_is_valid():
    tags = {cls.__struct_config__.tag for cls in m.MESSAGE_TYPES}
    assert {f"{t}.json" for t in tags} | {"message.json", "junction-spec.json"} == set(schemas())
    for name in schemas():
        _validator(name)


SAMPLES = [
    m.DetectorBatch(source="sumo", time=3.0, readings=[m.DetectorReading("d1", 2, 0.25, 1)]),
    m.detector_batch("sumo", 3.0, [2, 0], [0.25, 0.0], [1, 0], index=[0, 5], layout=m.detector_layout(["a"])),
    m.ControllerState(junction="J1", time=1765000000.0, phase=1, target=2, interval=m.Interval.YELLOW, since=2.0,
                      mode=m.Mode.ENGINE, signal="GgyYr", last_seq=41, accepted=41, refused=3),
    m.PhaseCommand(junction="J1", action=m.Action.ADVANCE, phase=2, seq=42, issued_at=1765000001.0),
    m.Heartbeat(sender="engine", time=1765000001.0, seq=7),
    m.ClockTick(time=5.0, step=5, phase=m.TickPhase.RUN),
    m.Fault(source="engine", time=1.0, kind=m.FaultKind.CLOCK_SKEW, detail="J1: clock 6.0 s behind"),
    m.Refusal(junction="J1", time=2.0, seq=9, reason="stale"),
    m.Plan(junction="J1", time=1.0, phase=0, green_end=9.0, next_phase=1, lanes=["a_0"], flows=[0.5]),
    m.PlanBatch(source="engine", time=1.0, plans=[m.Plan(junction="J1", time=1.0, lanes=["a_0"], flows=[0.5])]),
    m.FaultReset(junction="J1", seq=43, issued_at=1.0, operator="budi"),
    m.ResetRequest(junction="J1", operator="budi"),
    m.ResetReply(junction="J1", result=m.ResetResult.NOT_FAULTED, detail="no fault"),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda s: type(s).__name__)
def test_what_lintas_sends_validates(msg):
    """Each message as it travels (MessagePack, decoded to a map) against its own schema and message.json."""
    as_map = msgspec.msgpack.decode(m.encode(msg))
    tag = as_map["t"]
    _validator(f"{tag}.json").validate(as_map)
    _validator("message.json").validate(as_map)


def test_schemas_refuse_what_the_decoder_refuses():
    v = _validator("command.json")
    for bad in ({"t": "command", "seq": 1.5}, {"t": "command", "action": "jump"}, {"t": "command", "junction": 3},
                {"seq": 1}):
        with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
            m.decode(msgspec.msgpack.encode(bad))
        assert not v.is_valid(bad), bad
    assert not v.is_valid({"t": "heartbeat"})  # another message
    # a missing field is not an error: it takes its default (the schema's default)
    assert v.is_valid({"t": "command"})
    props = json.loads((SCHEMA_DIR / "command.json").read_text())["$defs"]["PhaseCommand"]["properties"]
    assert props["seq"]["default"] == m.PhaseCommand().seq and props["phase"]["default"] == -1


def test_what_lintas_compile_writes_validates(tmp_path):
    r = lintas("compile", str(DEMO), "--out", str(tmp_path / "out"), timeout=300)
    assert r.returncode == 0, r.stderr
    files = sorted((tmp_path / "out" / "junctions").glob("*.json"))
    assert files
    v = _validator("junction-spec.json")
    for f in files:
        spec = json.loads(f.read_text())
        v.validate(spec)
        # the rules the schema cannot say, as docs/protocol.md states them
        n, k = spec["n_links"], len(spec["green_states"])
        for name in ("net_next", "fixed_green", "min_green", "max_green", "yellow", "allred", "net_transitions"):
            assert len(spec[name]) == k, (f.name, name)
        for name in ("conflicts", "link_in_lane", "link_out_lane", "link_via"):
            assert len(spec[name]) == n, (f.name, name)
        assert all(len(s) == n for s in spec["green_states"] + spec["conflicts"] + spec["yields"])
        assert all(0 <= x < k for x in spec["net_next"]) and 0 <= spec["start_phase"] < k
        assert all(-1 <= x < k for x in spec["program_greens"])
        assert all(len(st) == n for trans in spec["net_transitions"] for st, _d in trans)
    broken = json.loads(files[0].read_text())
    broken["green_states"][0] = "GXr"
    assert not v.is_valid(broken)
    del broken["n_links"]
    assert not v.is_valid(broken)


def test_every_junction_spec_field_is_documented():
    from engine.protocol.junction import JunctionSpec
    from simulation.experiments.catalog import REPO

    text = (REPO / "docs" / "protocol.md").read_text()
    section = text[text.index("### Fields of the junction spec"):]
    for f in msgspec.structs.fields(JunctionSpec):
        assert f"`{f.name}`" in section, f"docs/protocol.md does not document junction spec field `{f.name}`"
