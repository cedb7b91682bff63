"""Render the configuration reference (docs/configuration.md) from the shipped JSON Schema.

The page is generated, never edited by hand: ``python -m drivetrain.config.reference > docs/configuration.md``.
A test fails when the page and the schema drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from drivetrain.config.schema_check import schema

if TYPE_CHECKING:
    from drivetrain.base import Connector

HEADER = """# Configuration reference

<!-- Generated from drivetrain/config/schema.json by `python -m drivetrain.config.reference`. Do not edit. -->

A pipeline is configured by one `config.json`. This page lists every section and key the core
understands, with its type, default and limits. Keys of `source_system`, `stage_system`,
`target_system` and `drive_table` beyond the common ones belong to the connector named by
`type`; each connector documents its own (see the connector pages). Keys starting with
`_comment` or `//` are ignored anywhere, so a config can explain itself. Unknown keys are
errors, with a suggestion when a known key is close.
"""


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        target: Any = root
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **extra}
    return node


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _type(node: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    kind = node.get("type", "")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array" and "items" in node:
        inner = _resolve(node["items"], root) if root is not None and isinstance(node["items"], Mapping) else node["items"]
        kind = f"array of {inner.get('type', 'objects') if isinstance(inner, Mapping) else 'values'}"
    if "anyOf" in node or "oneOf" in node:
        kind = kind or "one of several forms"
    return kind or "any"


def _limits(node: Mapping[str, Any]) -> str:
    parts = []
    for key, label in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"),
                       ("minLength", "length >="), ("maxLength", "length <="), ("minItems", "items >="), ("pattern", "matches")):
        if key in node:
            value = node[key]
            parts.append(f"{label} `{value}`" if key == "pattern" else f"{label} {value}")
    return ", ".join(parts)


def _rows(node: Mapping[str, Any], root: Mapping[str, Any], prefix: str, required: set[str]) -> Iterator[str]:
    for name, child in node.get("properties", {}).items():
        if name == "$schema":
            continue
        child = _resolve(child, root)
        path = f"{prefix}.{name}" if prefix else name
        default = f"`{json.dumps(child['default'])}`" if "default" in child else ("required" if name in required else "")
        description = _cell(" ".join(str(child.get("description", "")).split()))
        yield f"| `{path}` | {_type(child, root)} | {default} | {_cell(_limits(child))} | {description} |"
        kinds = child.get("type")
        if (kinds == "object" or isinstance(kinds, list) and "object" in kinds) and "properties" in child:
            yield from _rows(child, root, path, set(child.get("required", [])))
        items = child.get("items")
        if isinstance(items, Mapping):
            items = _resolve(items, root)
            if items.get("type") == "object" and "properties" in items:
                yield from _rows(items, root, f"{path}[]", set(items.get("required", [])))


def render(doc: Mapping[str, Any] | None = None) -> str:
    """The reference page for a schema (the shipped one by default)."""
    root = doc or schema()
    out = [HEADER]
    required = set(root.get("required", []))
    for name, section in root["properties"].items():
        if name == "$schema":
            continue
        section = _resolve(section, root)
        title = "required section" if name in required else "optional section"
        out.append(f"\n## `{name}` ({title})\n")
        if section.get("description"):
            out.append(" ".join(section["description"].split()) + "\n")
        out.append("| key | type | default | limits | meaning |")
        out.append("|---|---|---|---|---|")
        out.extend(_rows(section, root, name, set(section.get("required", []))))
    return "\n".join(out) + "\n"


CONNECTORS_HEADER = """# Connector reference

<!-- Generated from each connector's options_schema by `python -m drivetrain.config.reference connectors`. Do not edit. -->

The `type` of a `source_system`, `stage_system`, `target_system` or `drive_table` section picks a
connector, and the connector checks the rest of the section against the options below (typos
are errors, with a suggestion). Credentials never go in these sections: `credentials_ref`
names them (environment variables `<REF>_USER`, `<REF>_PASSWORD`... or an Airflow connection).
Nor do they go inside a host or URL: a `user:password@` in any host, endpoint or URL value
(`etl:pw@db`, `https://key:secret@minio:9000`) is a config error that names the key and never
shows the value.
The stage-cleaning archive is chosen by `phases.stage_cleaning.archive_location` (a folder, or
`s3://bucket/prefix/`), with its settings in `phases.stage_cleaning.archive_options`.
"""


CONNECTORS_FOOTER = """
## Trying the Snowflake path locally

[fakesnow](https://github.com/tekumara/fakesnow) emulates Snowflake on top of DuckDB, enough to
run the `snowflake` connector on a laptop. Install it next to drivetrain (it needs
`snowflake-connector-python` below 5) and start it as a server:

```bash
pip install "drivetrain[snowflake]" fakesnow "snowflake-connector-python<5"
fakesnow -s -p 8765
```

Then point the stage and target sections at it, with any user and password:

```json
"stage_system": {"type": "snowflake", "account": "fakesnow", "host": "127.0.0.1", "port": 8765,
                 "protocol": "http", "database": "LAB", "schema": "PUBLIC", "table": "stg_tests",
                 "credentials_ref": "sf_local", "network_timeout": 5}
```

```bash
export SF_LOCAL_USER=me SF_LOCAL_PASSWORD=anything
drivetrain validate my_pipeline && drivetrain run my_pipeline
```

`drivetrain validate` warns that this server returns NULL timestamps as 1970-01-01. Runs are
still right: whether a lease is held or released is decided by the server, not read from such a
value. What shows it is reading the drive table: `history` and `show` may print that date for a
time that is not set yet (the end of a run still running). The emulator also treats quoted
names case-insensitively and cannot test Snowflake's locking, so try a real account before
production.
"""


def render_connectors() -> str:
    """The connector reference page: every built-in connector's options."""
    from drivetrain.plugins import _load, _role_of
    from drivetrain.plugins.builtins import CONNECTORS

    out = [CONNECTORS_HEADER]
    seen: set[type] = set()
    for key, target in CONNECTORS.items():
        role, _, type_name = key.partition(":")
        # CONNECTORS holds connector classes, most as "module:Class" text whose class only
        # the import reveals, so the static type is asserted here.
        cls = cast("type[Connector]", _load(target))
        if cls in seen or type_name == "memory":
            continue
        seen.add(cls)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        out.append(f"\n## `{type_name}` ({_role_of(cls)})\n")
        if doc:
            out.append(doc + "\n")
        options = cls.options_schema
        if not options.get("properties"):
            out.append("No options beyond `type`.\n")
            continue
        out.append("| key | type | default | limits | meaning |")
        out.append("|---|---|---|---|---|")
        out.extend(_rows(options, options, "", set(options.get("required", []))))
    return "\n".join(out) + "\n" + CONNECTORS_FOOTER


if __name__ == "__main__":
    import sys

    print(render_connectors() if sys.argv[1:] == ["connectors"] else render(), end="")
