"""docs/protocol.md must name every message type and every field of engine/protocol/messages.py."""

import re

import msgspec

from engine.protocol import messages as m
from simulation.experiments.catalog import REPO

DOC = REPO / "docs" / "protocol.md"


def _sections() -> dict[str, str]:
    text = DOC.read_text()
    parts = re.split(r"^### ", text, flags=re.M)
    return {p.split("\n", 1)[0]: p for p in parts[1:]}


def test_every_message_type_and_field_is_documented():
    sections = _sections()
    for cls in m.MESSAGE_TYPES:
        tag = cls.__struct_config__.tag
        sec = next((body for head, body in sections.items() if head.startswith(f"`{tag}`")), None)
        assert sec is not None, f"docs/protocol.md has no section for message `{tag}` ({cls.__name__})"
        assert cls.__name__ in sec.split("\n", 1)[0]
        for f in msgspec.structs.fields(cls):
            if f.name == "v":
                continue
            assert re.search(rf"^\| `{f.name}` \|", sec, flags=re.M), f"`{tag}`: field `{f.name}` undocumented"


def test_nested_reading_fields_documented():
    sec = next(b for h, b in _sections().items() if h.startswith("`detectors`"))
    for f in msgspec.structs.fields(m.DetectorReading):
        assert re.search(rf"^\| `{f.name}` \|", sec, flags=re.M), f"DetectorReading.{f.name} undocumented"


def test_documented_fields_exist():
    """The doc names no field the schema lacks (it would mislead another implementation)."""
    known = {"t", "v"} | {f.name for c in (*m.MESSAGE_TYPES, m.DetectorReading) for f in msgspec.structs.fields(c)}
    for head, body in _sections().items():
        if not head.startswith("`") or "—" not in head:
            continue
        for name in re.findall(r"^\| `([a-z_]+)` \|", body, flags=re.M):
            assert name in known, f"docs/protocol.md section {head!r} documents unknown field `{name}`"


def test_topics_documented():
    text = DOC.read_text()
    for name in dir(m):
        if name.startswith("TOPIC_"):
            topic = getattr(m, name).decode()
            assert f"| `{topic}` |" in text, f"topic {topic} undocumented"


def test_every_enumerated_value_is_documented():
    """A peer in another language needs every value an enumerated field may take (and every fault kind)."""
    text = DOC.read_text()
    for enum in (*m.ENUMS, m.FaultKind):
        for member in enum:
            assert f"`{member.value}`" in text, f"docs/protocol.md does not name {enum.__name__} value `{member.value}`"
