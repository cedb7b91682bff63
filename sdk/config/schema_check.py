"""The shipped JSON Schema of config.json, and its errors as readable problem lines."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from .jsondoc import thaw
from .problems import Problems, did_you_mean, is_ignored_key, looks_like_secret, show
from .spec_keys import replaced_hint

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

# -- the JSON Schema -------------------------------------------------------------------------


@functools.cache
def _schema_text() -> str:
    return resources.files("drivetrain.config").joinpath("schema.json").read_text("utf-8")


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of config.json, as shipped in the package."""
    return json.loads(_schema_text())


@functools.cache
def config_validator() -> Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema())


def make_validator(section_schema: Mapping[str, Any]) -> Validator:
    """A draft 2020-12 validator for a connector's own section schema."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(thaw(section_schema))


_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def schema_problems(
    validator: Validator, instance: Any, problems: Problems, *, also_known: Iterable[str] = ()
) -> None:
    """Add one readable line per JSON Schema error found in ``instance``.

    :param also_known: keys allowed at the top level of ``instance`` besides the schema's own
        (a connector section's core keys), offered in suggestions for an unknown key.
    """
    for error in validator.iter_errors(instance):
        path = tuple(error.absolute_path)
        kind, wanted, value = error.validator, error.validator_value, error.instance
        custom = error.schema.get("x-message") if isinstance(error.schema, Mapping) else None
        if kind == "required":
            template = error.schema.get("x-required-message", "{key} is required")
            for key in wanted:
                if isinstance(value, Mapping) and key not in value:
                    problems.add(path, template.replace("{key}", repr(key)))
        elif kind in ("additionalProperties", "unevaluatedProperties"):
            known = [k for k in error.schema.get("properties", {}) if k != "$schema"]
            if not path:
                known += [k for k in also_known if k not in known]
            patterns = list(error.schema.get("patternProperties", {}))
            for key in value:
                if key in known or is_ignored_key(key) or looks_like_secret(key):
                    continue
                if any(re.search(pattern, key) for pattern in patterns):
                    continue
                hint = replaced_hint(key) or did_you_mean(key, known)
                if not hint and known:
                    hint = "; expected one of " + ", ".join(repr(k) for k in known)
                elif not hint:
                    hint = "; nothing else is allowed here"
                problems.add(path + (key,), f"unknown key{hint}")
        elif custom:
            problems.add(path, str(custom).replace("{value}", show(value)))
        elif kind == "type":
            names = [wanted] if isinstance(wanted, str) else list(wanted)
            expected = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
            problems.add(path, f"expected {expected}, got {show(value)}")
        elif kind == "enum":
            options = ", ".join(repr(o) for o in wanted)
            hint = did_you_mean(value, [o for o in wanted if isinstance(o, str)])
            problems.add(path, f"{show(value)} is not one of {options}{hint}")
        elif kind == "minimum":
            problems.add(path, f"{show(value)} is below the minimum {wanted}")
        elif kind == "maximum":
            problems.add(path, f"{show(value)} is above the maximum {wanted}")
        elif kind == "exclusiveMinimum":
            problems.add(path, f"{show(value)} must be greater than {wanted}")
        elif kind == "exclusiveMaximum":
            problems.add(path, f"{show(value)} must be less than {wanted}")
        elif kind == "minLength" and wanted == 1:
            problems.add(path, "must not be empty")
        elif kind == "minItems" and wanted == 1:
            problems.add(path, "must list at least one item")
        elif kind == "uniqueItems":
            problems.add(path, "lists the same item more than once")
        elif kind == "const":
            problems.add(path, f"must be {show(wanted)}")
        else:
            text = error.message
            problems.add(path, text if len(text) <= 200 else text[:197] + "...")
