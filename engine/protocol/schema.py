"""JSON Schemas of the wire protocol, generated from the msgspec types so that they cannot drift.

``engine/protocol/schemas/`` ships them: one file per message (``<t>.json``), ``message.json`` (any message,
by its ``t``) and ``junction-spec.json`` (the junction spec file ``lintas compile`` writes). The messages
travel as MessagePack; the schemas describe the map a frame decodes to. ``python -m engine.protocol.schema``
writes them again after a change of ``messages.py`` or ``junction.py`` (a test compares the shipped files with
:func:`schemas`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from engine.protocol import messages as m
from engine.protocol.junction import JunctionSpec

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
SIGNAL_PATTERN = "^[GgyYrsuoO]*$"  # SUMO's signal letters, one per link
BITS_PATTERN = "^[01]*$"


def _document(schema: dict[str, Any], title: str, description: str) -> dict[str, Any]:
    return {"$schema": DIALECT, "title": title, "description": description, **schema}


def message_schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema: one per message type (by its tag ``t``) and ``message.json`` for any of them."""
    out: dict[str, dict[str, Any]] = {}
    for cls in m.MESSAGE_TYPES:
        tag = cls.__struct_config__.tag
        out[f"{tag}.json"] = _document(
            _binary_columns(msgspec.json.schema(cls)), f"Lintas message `{tag}` (schema version {m.SCHEMA_VERSION})",
            f"One `{tag}` message as its MessagePack map decodes (docs/protocol.md). Missing fields take their "
            f"default; unknown fields are ignored.")
    out["message.json"] = _document(
        _binary_columns(msgspec.json.schema(m.Message)), f"Any Lintas message (schema version {m.SCHEMA_VERSION})",
        "One message of the wire protocol, chosen by its tag `t` (docs/protocol.md).")
    return out


#: the detector batch's columns: MessagePack ``bin`` (raw bytes, which no JSON type describes), little-endian
BINARY_COLUMNS = {"index": "int32", "count": "int32", "occupancy": "float64", "halting": "int32"}


def _binary_columns(schema: dict[str, Any]) -> dict[str, Any]:
    """msgspec describes ``bytes`` as a base64 string (its JSON form); on the wire they are MessagePack ``bin``:
    the schema says so and leaves the type open (a decoded ``bin`` is bytes, no JSON type)."""
    props = schema.get("$defs", {}).get("DetectorBatch", {}).get("properties", {})
    for name, dtype in BINARY_COLUMNS.items():
        if name in props:
            props[name] = {"description": f"MessagePack bin: n little-endian {dtype} values (docs/protocol.md); "
                                          f"empty by default"}
    return schema


def junction_spec_schema() -> dict[str, Any]:
    """The junction spec file: msgspec's schema of :class:`JunctionSpec`, with the letters of signal strings
    and of the conflict and yield matrices constrained (the lengths that must agree cannot be said in JSON
    Schema; docs/protocol.md says them)."""
    schema = msgspec.json.schema(JunctionSpec)
    props = schema["$defs"]["JunctionSpec"]["properties"]
    props["green_states"]["items"]["pattern"] = SIGNAL_PATTERN
    props["conflicts"]["items"]["pattern"] = BITS_PATTERN
    props["yields"]["items"]["pattern"] = BITS_PATTERN
    props["n_links"]["minimum"] = 1
    props["green_states"]["minItems"] = 1
    for name in ("min_green", "max_green", "fixed_green", "yellow", "allred"):
        props[name]["items"]["minimum"] = 0
    props["net_transitions"]["items"]["items"]["prefixItems"][0]["pattern"] = SIGNAL_PATTERN
    for item in props["net_yellow_to_green"]["items"]["prefixItems"]:
        item["pattern"] = SIGNAL_PATTERN
    return _document(schema, "Lintas junction spec",
                     "One junction's spec, as `lintas compile` writes it (DIR/junctions/<id>.json): what a "
                     "controller needs to time the junction safely (docs/protocol.md, docs/safety.md).")


def schemas() -> dict[str, dict[str, Any]]:
    """Every shipped schema: file name -> schema."""
    return {**message_schemas(), "junction-spec.json": junction_spec_schema()}


def dumps(schema: dict[str, Any]) -> str:
    """The text of a schema file (stable: sorted keys, two-space indent, a final newline)."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, schema in schemas().items():
        path = folder / name
        path.write_text(dumps(schema))
        out.append(path)
    return out


if __name__ == "__main__":
    for p in write_schemas():
        print(p)
