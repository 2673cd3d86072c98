#!/usr/bin/env python3
"""Checks protocols/saga-definition.schema.json against the example definitions.

Every file in examples/definitions/ (.yaml, .yml, .json) must validate against the schema, and a
list of known-bad definitions kept below must each be rejected by it. Prints one line per file and
per bad definition, then `N passed, M failed`; exits 1 on any mismatch, 2 when the schema itself
cannot be used.

Needs the `jsonschema` and `PyYAML` packages. Run from anywhere:

    python3 scripts/check-schema.py
"""

import copy
import json
import sys
from pathlib import Path

try:
    import jsonschema
    import yaml
except ImportError as error:  # pragma: no cover - depends on the environment
    print(f"check-schema: missing Python package ({error.name}); run: pip install jsonschema PyYAML", file=sys.stderr)
    sys.exit(2)

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "protocols" / "saga-definition.schema.json"
EXAMPLES = ROOT / "examples" / "definitions"

# A small valid definition; each bad case below changes one thing in a copy of it, so a rejection
# can only come from that change.
BASE = {
    "name": "order",
    "version": 1,
    "steps": [
        {
            "name": "reserve",
            "command": {
                "participant": "inventory",
                "type": "inventory.reserve",
                "compensation": "inventory.release",
                "timeout": "10s",
            },
        },
        {"name": "approve", "signal": {"name": "approval", "timeout": "24h"}},
        {"name": "pause", "sleep": "5m"},
        {
            "name": "ship",
            "pivot": True,
            "command": {"participant": "shipping", "type": "shipping.ship", "timeout": "1m"},
        },
    ],
}


def mutated(change):
    definition = copy.deepcopy(BASE)
    change(definition)
    return definition


def command(definition, index=0):
    return definition["steps"][index]["command"]


KNOWN_BAD = [
    ("unknown top-level field", lambda d: d.update(owner="team-checkout")),
    ("unknown field in a step", lambda d: d["steps"][0].update(retries=3)),
    ("unknown field in a command", lambda d: command(d).update(topic="stock")),
    ("unknown field in a retry policy", lambda d: command(d).update(retry={"attempts": 3})),
    ("signal wait without a timeout", lambda d: d["steps"][1]["signal"].pop("timeout")),
    ("signal wait with both name and names", lambda d: d["steps"][1]["signal"].update(names=["a", "b"])),
    ("bad duration 30x", lambda d: command(d).update(timeout="30x")),
    ("bad duration 1.5s", lambda d: command(d).update(timeout="1.5s")),
    ("bad duration -5s", lambda d: command(d).update(timeout="-5s")),
    ("empty duration", lambda d: command(d).update(timeout="")),
    ("zero duration", lambda d: d["steps"][2].update(sleep="0s")),
    ("command without a timeout", lambda d: command(d).pop("timeout")),
    ("two kinds in one step", lambda d: d["steps"][2].update(command=copy.deepcopy(command(d)))),
    ("a step with no kind", lambda d: d["steps"][2].pop("sleep")),
    ("pivot on a sleep step", lambda d: d["steps"][2].update(pivot=True)),
    ("parallel group with one member", lambda d: d["steps"].append(
        {"name": "book", "parallel": [{"name": "flight", "command": copy.deepcopy(command(d))}]})),
    ("retry.maxAttempts 0", lambda d: command(d).update(retry={"maxAttempts": 0})),
    ("retry.jitter 1.5", lambda d: command(d).update(retry={"jitter": 1.5})),
    ("backoff random", lambda d: command(d).update(retry={"backoff": "random"})),
    ("compensationTimeout without compensation", lambda d: command(d, 3).update(compensationTimeout="1m")),
    ("version 0", lambda d: d.update(version=0)),
    ("missing name", lambda d: d.pop("name")),
    ("name with a space", lambda d: d.update(name="order fulfillment")),
    ("no steps", lambda d: d.update(steps=[])),
]


def load(path):
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return json.loads(text)
    return yaml.safe_load(text)


def first_error(validator, document):
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    error = errors[0]
    where = "/".join(str(part) for part in error.absolute_path) or "(top)"
    return f"{where}: {error.message}"


def main():
    try:
        schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
    except (OSError, ValueError, jsonschema.exceptions.SchemaError) as error:
        print(f"FAIL {SCHEMA.relative_to(ROOT)}: not a usable draft 2020-12 schema: {error}")
        print("0 passed, 1 failed")
        return 2
    validator = jsonschema.Draft202012Validator(schema)
    passed = failed = 0

    files = sorted(p for p in EXAMPLES.iterdir() if p.suffix.lower() in (".yaml", ".yml", ".json"))
    if not files:
        print(f"FAIL {EXAMPLES.relative_to(ROOT)}: no definition files")
        failed += 1
    for path in files:
        name = path.relative_to(ROOT)
        try:
            problem = first_error(validator, load(path))
        except (OSError, ValueError, yaml.YAMLError) as error:
            problem = f"cannot be read: {error}"
        if problem is None:
            print(f"ok   {name}")
            passed += 1
        else:
            print(f"FAIL {name}: {problem}")
            failed += 1

    if first_error(validator, BASE) is not None:
        print(f"FAIL known-bad base definition is itself rejected: {first_error(validator, BASE)}")
        failed += 1
    for label, change in KNOWN_BAD:
        problem = first_error(validator, mutated(change))
        if problem is None:
            print(f"FAIL known-bad '{label}': accepted by the schema")
            failed += 1
        else:
            print(f"ok   known-bad '{label}': rejected ({problem})")
            passed += 1

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
