#!/usr/bin/env python3
"""Checks the Kafka protocol's documents in protocols/ against each other.

- Every message schema in protocols/messages/ is a usable draft 2020-12 schema.
- Every example in protocols/examples/ is a Kafka message `{topic, key, headers, value}` whose
  headers are the CloudEvents binary-mode headers the Swift encoder writes (ce_specversion 1.0,
  ce_id, ce_type, ce_source, ce_time as RFC 3339 in the writer's form, optional ce_subject,
  content-type application/json, nothing else), whose value validates against the schema of its
  ce_type, whose topic and key are the ones the protocol gives that type, and whose value the Swift
  code would write back unchanged after reading it (members it leaves out, such as an empty tenant
  or priority 0, must not be there; members it always writes must be). There is at least one
  example of every message type.
- protocols/asyncapi.yaml references every schema file, every `$ref` in it points to an existing
  file (and fragment) or to a part of the document, and each message's payload is the schema of
  the message type it names.
- Known-bad bodies below, at least one per schema, are each rejected by their schema; known-good
  bodies that the Swift decoder accepts although they look odd are each accepted.

Prints one line per check, then `N passed, M failed`; exits 1 on any failure, 2 when a schema or
the AsyncAPI document cannot be used at all.

Needs the `jsonschema` and `PyYAML` packages. Run from anywhere:

    python3 scripts/check-protocol.py
"""

import copy
import json
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

try:
    import jsonschema
    import yaml
except ImportError as error:  # pragma: no cover - depends on the environment
    print(f"check-protocol: missing Python package ({error.name}); run: pip install jsonschema PyYAML", file=sys.stderr)
    sys.exit(2)

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = ROOT / "protocols"
MESSAGES = PROTOCOLS / "messages"
EXAMPLES = PROTOCOLS / "examples"
ASYNCAPI = PROTOCOLS / "asyncapi.yaml"

# ce_type → schema file, as Sources/SagaProtocol/CloudEvent.swift (SagaMessageType) names them.
SCHEMAS = {
    "saga.start.v1": "start.schema.json",
    "saga.cancel.v1": "cancel.schema.json",
    "saga.signal.v1": "signal.schema.json",
    "saga.step.command.v1": "step-command.schema.json",
    "saga.step.reply.v1": "step-reply.schema.json",
    "saga.event.v1": "event.schema.json",
    "saga.dead-letter.v1": "dead-letter.schema.json",
}

# The default topics of SagaTopics (Sources/SagaProtocol/SagaWire.swift).
TOPICS = {
    "saga.start.v1": "saga.requests",
    "saga.cancel.v1": "saga.requests",
    "saga.signal.v1": "saga.signals",
    "saga.step.reply.v1": "saga.replies",
    "saga.event.v1": "saga.events",
    "saga.dead-letter.v1": "saga.dead-letter",
}
PARTICIPANT_PREFIX = "saga.participant."

REQUIRED_HEADERS = ("ce_specversion", "ce_id", "ce_type", "ce_source")
KNOWN_HEADERS = set(REQUIRED_HEADERS) | {"ce_time", "ce_subject", "content-type"}

# What WireTime.parse accepts, and what WireTime.format writes.
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$")
WRITER_FORM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


# ---------------------------------------------------------------------------------------------
# Times and JSON values as the Swift code treats them


def parse_time(text):
    """The instant of an RFC 3339 time as WireTime.parse reads it (milliseconds kept), or None."""
    if not isinstance(text, str):
        return None
    match = RFC3339.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction, zulu, sign, off_hours, off_minutes = match.group(7, 8, 9, 10, 11)
    if hour > 23 or minute > 59 or second > 60:
        return None
    if sign and (int(off_hours) > 23 or int(off_minutes) > 59):
        return None
    try:
        base = datetime(year, month, day, tzinfo=timezone.utc)
    except ValueError:
        return None
    milliseconds = int((fraction or "")[:3].ljust(3, "0"))
    offset = 0 if zulu else (1 if sign == "+" else -1) * (int(off_hours) * 60 + int(off_minutes))
    return base + timedelta(hours=hour, minutes=minute - offset, seconds=min(second, 59), milliseconds=milliseconds)


def format_time(instant):
    """WireTime.format: UTC with milliseconds."""
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


def normal_time(text):
    instant = parse_time(text)
    return format_time(instant) if instant else text


def missing(body, name):
    """The Swift FieldReader reads a member that is `null` as missing."""
    return body.get(name) is None


def integer(value):
    """A whole number as the Swift decoder keeps it (2.0 is read as 2)."""
    return int(value) if isinstance(value, float) else value


def same(a, b):
    """JSON equality that keeps booleans, integers and doubles apart, as Swift's JSONValue does."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def step_error(error):
    return {"code": error["code"], "message": "" if missing(error, "message") else error["message"],
            "retryable": error["retryable"]}


# What the Swift `json` property writes for a body its `init(json:)` read: the round trip the
# Swift test (Tests/SagaProtocolTests/ExampleTests.swift) checks. Only called on valid bodies.


def round_trip_start(v):
    out = {"sagaType": v["sagaType"]}
    if not missing(v, "version"):
        out["version"] = integer(v["version"])
    out["input"] = {} if missing(v, "input") else v["input"]
    out["idempotencyKey"] = v["idempotencyKey"]
    if not missing(v, "tenant") and v["tenant"] != "":
        out["tenant"] = v["tenant"]
    if not missing(v, "priority") and integer(v["priority"]) != 0:
        out["priority"] = integer(v["priority"])
    return out


def round_trip_cancel(v):
    out = {"sagaId": v["sagaId"]}
    if not missing(v, "reason") and v["reason"] != "":
        out["reason"] = v["reason"]
    return out


def round_trip_signal(v):
    if not missing(v, "sagaId"):
        out = {"sagaId": v["sagaId"]}
    else:
        out = {"sagaType": v["sagaType"], "idempotencyKey": v["idempotencyKey"]}
        if not missing(v, "tenant") and v["tenant"] != "":
            out["tenant"] = v["tenant"]
    out["signalId"] = v["signalId"]
    out["name"] = v["name"]
    out["payload"] = {} if missing(v, "payload") else v["payload"]
    return out


def round_trip_step_command(v):
    out = {name: v[name] for name in ("sagaId", "sagaType", "step", "action", "commandType", "idempotencyKey",
                                      "actionKey")}
    out["attempt"] = integer(v["attempt"])
    out["deadline"] = normal_time(v["deadline"])
    out["payload"] = {} if missing(v, "payload") else v["payload"]
    out["replyTopic"] = v["replyTopic"]
    return out


def round_trip_step_reply(v):
    out = {name: v[name] for name in ("sagaId", "step", "action", "idempotencyKey", "outcome")}
    out["attempt"] = integer(v["attempt"])
    if v["outcome"] == "success":
        out["result"] = {} if missing(v, "result") else v["result"]
    else:
        out["error"] = step_error(v["error"])
    return out


def round_trip_event(v):
    out = {"event": v["event"]}
    if v.get("sagaType"):
        out["sagaType"] = v["sagaType"]
    for name in ("sagaId", "status", "step", "reason", "conflict", "idempotencyKey", "signalId", "signalName"):
        if not missing(v, name):
            out[name] = v[name]
    if not missing(v, "attempt"):
        out["attempt"] = integer(v["attempt"])
    if not missing(v, "error"):
        out["error"] = step_error(v["error"])
    if not missing(v, "until"):
        out["until"] = normal_time(v["until"])
    return out


def round_trip_dead_letter(v):
    source = v["source"]
    out_source = {"topic": source["topic"], "partition": integer(source["partition"]),
                  "offset": integer(source["offset"])}
    if not missing(source, "timestamp"):
        out_source["timestamp"] = normal_time(source["timestamp"])
    out = {"reason": v["reason"], "source": out_source}
    for name in ("type", "field", "key", "value", "valueBase64"):
        if not missing(v, name):
            out[name] = v[name]
    out["headers"] = {} if missing(v, "headers") else v["headers"]
    return out


ROUND_TRIP = {
    "saga.start.v1": round_trip_start,
    "saga.cancel.v1": round_trip_cancel,
    "saga.signal.v1": round_trip_signal,
    "saga.step.command.v1": round_trip_step_command,
    "saga.step.reply.v1": round_trip_step_reply,
    "saga.event.v1": round_trip_event,
    "saga.dead-letter.v1": round_trip_dead_letter,
}

# Time members of each body, as paths, that the writer must have written in its own form.
TIME_FIELDS = {
    "saga.step.command.v1": [("deadline",)],
    "saga.event.v1": [("until",)],
    "saga.dead-letter.v1": [("source", "timestamp")],
}


def expected_key(ce_type, value):
    """The Kafka key the protocol gives a message of this type."""
    if ce_type == "saga.start.v1":
        return value.get("idempotencyKey")
    if ce_type == "saga.signal.v1":
        return value["sagaId"] if not missing(value, "sagaId") else value.get("idempotencyKey")
    if ce_type == "saga.event.v1":
        return value["sagaId"] if not missing(value, "sagaId") else value.get("idempotencyKey")
    if ce_type == "saga.dead-letter.v1":
        return value.get("key")
    return value.get("sagaId")


# ---------------------------------------------------------------------------------------------
# Known-bad and known-good bodies. Each case changes one thing in a copy of a valid base body, so a
# rejection can only come from that change.

SAGA = "0b7e6a52-5d1c-4f0e-9c3b-7a2d4e8f1a63"
BASES = {
    "saga.start.v1": {"sagaType": "order-fulfillment", "version": 1, "input": {"orderId": "10042"},
                      "idempotencyKey": "order-10042"},
    "saga.cancel.v1": {"sagaId": SAGA, "reason": "customer withdrew the order"},
    "saga.signal.v1": {"sagaId": SAGA, "signalId": "sig-1", "name": "approval", "payload": {"approved": True}},
    "saga.step.command.v1": {
        "sagaId": SAGA, "sagaType": "order-fulfillment", "step": "charge-payment", "action": "execute",
        "commandType": "payments.charge", "idempotencyKey": f"{SAGA}:charge-payment:execute",
        "actionKey": f"{SAGA}:charge-payment:execute", "attempt": 1, "deadline": "2026-12-03T18:19:54.402Z",
        "payload": {"input": {}, "steps": {}, "signals": {}}, "replyTopic": "saga.replies"},
    "saga.step.reply.v1": {
        "sagaId": SAGA, "step": "charge-payment", "action": "execute", "attempt": 1,
        "idempotencyKey": f"{SAGA}:charge-payment:execute", "outcome": "failure",
        "error": {"code": "CARD_DECLINED", "message": "declined", "retryable": False}},
    "saga.event.v1": {
        "sagaId": SAGA, "sagaType": "order-fulfillment", "event": "step.retry-scheduled", "status": "running",
        "step": "charge-payment", "attempt": 2,
        "error": {"code": "PAYMENT_PROVIDER_UNAVAILABLE", "message": "", "retryable": True},
        "until": "2026-12-03T18:19:26.030Z"},
    "saga.dead-letter.v1": {
        "reason": "saga.start.v1: field idempotencyKey: missing", "type": "saga.start.v1", "field": "idempotencyKey",
        "source": {"topic": "saga.requests", "partition": 0, "offset": 17, "timestamp": "2026-12-03T18:19:24.123Z"},
        "key": "order-10042", "headers": {"ce_type": "saga.start.v1"}, "value": "{}"},
}


def pop(*path):
    def change(body):
        for part in path[:-1]:
            body = body[part]
        body.pop(path[-1])
    return change


def put(*path_and_value):
    *path, value = path_and_value

    def change(body):
        for part in path[:-1]:
            body = body[part]
        body[path[-1]] = value
    return change


def by_start_key(body):
    body.pop("sagaId")
    body.update(sagaType="order-fulfillment", idempotencyKey="order-10042")


def success(body):
    body["outcome"] = "success"
    body.pop("error")


KNOWN_BAD = [
    ("saga.start.v1", "missing sagaType", pop("sagaType")),
    ("saga.start.v1", "missing idempotencyKey", pop("idempotencyKey")),
    ("saga.start.v1", "idempotencyKey null", put("idempotencyKey", None)),
    ("saga.start.v1", "empty idempotencyKey", put("idempotencyKey", "")),
    ("saga.start.v1", "version 0", put("version", 0)),
    ("saga.start.v1", "version as a string", put("version", "1")),
    ("saga.start.v1", "priority 1.5", put("priority", 1.5)),
    ("saga.start.v1", "tenant a number", put("tenant", 7)),
    ("saga.cancel.v1", "missing sagaId", pop("sagaId")),
    ("saga.cancel.v1", "sagaId a number", put("sagaId", 42)),
    ("saga.cancel.v1", "empty sagaId", put("sagaId", "")),
    ("saga.cancel.v1", "reason a boolean", put("reason", False)),
    ("saga.signal.v1", "no target (no sagaId, no sagaType)", pop("sagaId")),
    ("saga.signal.v1", "by start key without idempotencyKey",
     lambda b: (by_start_key(b), b.pop("idempotencyKey"))),
    ("saga.signal.v1", "by start key with an empty sagaType", lambda b: (by_start_key(b), b.update(sagaType=""))),
    ("saga.signal.v1", "by start key with tenant a number", lambda b: (by_start_key(b), b.update(tenant=3))),
    ("saga.signal.v1", "empty sagaId", put("sagaId", "")),
    ("saga.signal.v1", "missing signalId", pop("signalId")),
    ("saga.signal.v1", "name a number", put("name", 5)),
    ("saga.step.command.v1", "action undo", put("action", "undo")),
    ("saga.step.command.v1", "attempt 0", put("attempt", 0)),
    ("saga.step.command.v1", "attempt as a string", put("attempt", "1")),
    ("saga.step.command.v1", "attempt 1.5", put("attempt", 1.5)),
    ("saga.step.command.v1", "deadline not a time", put("deadline", "tomorrow")),
    ("saga.step.command.v1", "deadline without seconds", put("deadline", "2026-12-03T18:19Z")),
    ("saga.step.command.v1", "deadline a number", put("deadline", 1796321994402)),
    ("saga.step.command.v1", "missing replyTopic", pop("replyTopic")),
    ("saga.step.command.v1", "missing actionKey", pop("actionKey")),
    ("saga.step.reply.v1", "outcome ok", put("outcome", "ok")),
    ("saga.step.reply.v1", "action undo", put("action", "undo")),
    ("saga.step.reply.v1", "failure without error", pop("error")),
    ("saga.step.reply.v1", "failure with error null", put("error", None)),
    ("saga.step.reply.v1", "failure with error a string", put("error", "CARD_DECLINED")),
    ("saga.step.reply.v1", "error without retryable", pop("error", "retryable")),
    ("saga.step.reply.v1", "error.retryable a string", put("error", "retryable", "false")),
    ("saga.step.reply.v1", "error.code empty", put("error", "code", "")),
    ("saga.step.reply.v1", "attempt 0", put("attempt", 0)),
    ("saga.step.reply.v1", "missing idempotencyKey", pop("idempotencyKey")),
    ("saga.event.v1", "unknown event name", put("event", "saga.exploded")),
    ("saga.event.v1", "status pending (no such status)", put("status", "pending")),
    ("saga.event.v1", "an empty sagaType (left out instead)", put("sagaType", "")),
    ("saga.event.v1", "missing event", pop("event")),
    ("saga.event.v1", "attempt as a string", put("attempt", "2")),
    ("saga.event.v1", "until not a time", put("until", "in a second")),
    ("saga.event.v1", "conflict a string", put("conflict", "no")),
    ("saga.event.v1", "error without code", pop("error", "code")),
    ("saga.event.v1", "empty sagaId", put("sagaId", "")),
    ("saga.dead-letter.v1", "missing reason", pop("reason")),
    ("saga.dead-letter.v1", "empty reason", put("reason", "")),
    ("saga.dead-letter.v1", "missing source", pop("source")),
    ("saga.dead-letter.v1", "source without offset", pop("source", "offset")),
    ("saga.dead-letter.v1", "source.partition as a string", put("source", "partition", "3")),
    ("saga.dead-letter.v1", "source.timestamp not a time", put("source", "timestamp", "18:19")),
    ("saga.dead-letter.v1", "a header value that is a number", put("headers", "ce_id", 12)),
    ("saga.dead-letter.v1", "a header value that is null", put("headers", "ce_id", None)),
]

# Bodies the Swift decoder accepts although they may look wrong: the schemas must accept them too.
KNOWN_GOOD = [
    ("saga.start.v1", "only the required members", lambda b: (b.pop("version"), b.pop("input"))),
    ("saga.start.v1", "null for optional members", lambda b: b.update(version=None, tenant=None, priority=None)),
    ("saga.start.v1", "version 2.0 (a whole number)", put("version", 2.0)),
    ("saga.start.v1", "input that is not an object", put("input", [1, 2])),
    ("saga.start.v1", "a member a later version may add", put("traceparent", "00-abc-01")),
    ("saga.cancel.v1", "empty reason", put("reason", "")),
    ("saga.signal.v1", "by start key", by_start_key),
    ("saga.signal.v1", "by start key with sagaId null", lambda b: (by_start_key(b), b.update(sagaId=None))),
    ("saga.signal.v1", "by id, with other members not read", lambda b: b.update(sagaType=5, tenant=[])),
    ("saga.signal.v1", "without payload", pop("payload")),
    ("saga.step.command.v1", "without payload", pop("payload")),
    ("saga.step.command.v1", "deadline with an offset and microseconds",
     put("deadline", "2026-12-03T19:19:54.402123+01:00")),
    ("saga.step.reply.v1", "success without result", success),
    ("saga.step.reply.v1", "success with an error member, not read",
     lambda b: (b.update(outcome="success"), b.update(error="ignored"))),
    ("saga.step.reply.v1", "failure without error.message", pop("error", "message")),
    ("saga.event.v1", "signal outcome with no saga",
     lambda b: (b.pop("sagaId"), b.pop("status"), b.update(event="signal.expired"))),
    ("saga.event.v1", "null for optional members", lambda b: b.update(step=None, error=None, until=None)),
    ("saga.dead-letter.v1", "only the required members",
     lambda b: [b.pop(k) for k in ("type", "field", "key", "headers", "value")]),
]


def mutated(ce_type, change):
    body = copy.deepcopy(BASES[ce_type])
    change(body)
    return body


# ---------------------------------------------------------------------------------------------


def first_error(validator, document):
    """The most telling error, or None when it validates: one outside `oneOf` when there is one,
    else the best error inside the best-matching branch."""
    errors = list(validator.iter_errors(document))
    if not errors:
        return None
    plain = sorted((e for e in errors if e.validator not in ("oneOf", "anyOf")), key=lambda e: list(e.absolute_path))
    error = plain[0] if plain else jsonschema.exceptions.best_match(errors)
    where = "/".join(str(part) for part in error.absolute_path) or "(top)"
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    return f"{where}: {message}"


def member(document, path):
    for part in path:
        if not isinstance(document, dict) or part not in document:
            return None
        document = document[part]
    return document


def check_example(path, validators):
    """The problems of one example file; empty when it is right."""
    try:
        example = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return [f"cannot be read: {error}"], None
    if not isinstance(example, dict) or set(example) != {"topic", "key", "headers", "value"}:
        return ["expected an object with exactly topic, key, headers and value"], None
    problems = []
    headers, value, topic, key = example["headers"], example["value"], example["topic"], example["key"]
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        return ["headers: expected an object of strings"], None
    for name in REQUIRED_HEADERS:
        if not headers.get(name):
            problems.append(f"header {name}: missing or empty")
    if headers.get("ce_specversion", "1.0") != "1.0":
        problems.append(f"header ce_specversion: expected 1.0, found {headers['ce_specversion']!r}")
    if headers.get("content-type") != "application/json":
        problems.append(f"header content-type: expected application/json, found {headers.get('content-type')!r}")
    if "ce_time" in headers:
        if parse_time(headers["ce_time"]) is None:
            problems.append(f"header ce_time: not an RFC 3339 time: {headers['ce_time']!r}")
        elif not WRITER_FORM.match(headers["ce_time"]):
            problems.append(f"header ce_time: not in the writer's form YYYY-MM-DDTHH:MM:SS.mmmZ: {headers['ce_time']!r}")
    else:
        problems.append("header ce_time: missing (optional in the protocol, expected in every example)")
    unknown = sorted(set(headers) - KNOWN_HEADERS)
    if unknown:
        problems.append(f"headers the encoder does not write: {', '.join(unknown)}")
    ce_type = headers.get("ce_type")
    if ce_type not in SCHEMAS:
        problems.append(f"header ce_type: not a message type of the protocol: {ce_type!r}")
        return problems, None
    if "ce_subject" in headers and not missing(value if isinstance(value, dict) else {}, "sagaId") \
            and headers["ce_subject"] != value["sagaId"]:
        problems.append("header ce_subject: expected the saga id")

    problem = first_error(validators[ce_type], value)
    if problem is not None:
        problems.append(f"value does not match {SCHEMAS[ce_type]}: {problem}")
        return problems, ce_type

    wanted_topic = TOPICS.get(ce_type)
    if wanted_topic is not None and topic != wanted_topic:
        problems.append(f"topic: expected {wanted_topic} for {ce_type}, found {topic!r}")
    if wanted_topic is None and not (isinstance(topic, str) and topic.startswith(PARTICIPANT_PREFIX)
                                     and len(topic) > len(PARTICIPANT_PREFIX)):
        problems.append(f"topic: expected {PARTICIPANT_PREFIX}<participant>, found {topic!r}")
    if key != expected_key(ce_type, value):
        problems.append(f"key: expected {expected_key(ce_type, value)!r}, found {key!r}")
    if ce_type == "saga.step.command.v1":
        prefix = f"{value['sagaId']}:{value['step']}:{value['action']}"
        if not re.fullmatch(re.escape(prefix) + r"(:[1-9][0-9]*)?", value["idempotencyKey"]):
            problems.append(f"idempotencyKey: expected {prefix}[:<generation>], as IdempotencyKey.make gives")
        if not re.fullmatch(re.escape(f"{value['sagaId']}:{value['step']}:execute") + r"(:[1-9][0-9]*)?",
                            value["actionKey"]):
            problems.append("actionKey: expected <sagaId>:<step>:execute[:<generation>]")
    for time_path in TIME_FIELDS.get(ce_type, []):
        text = member(value, time_path)
        if text is not None and not WRITER_FORM.match(text):
            problems.append(f"{'.'.join(time_path)}: not in the writer's form YYYY-MM-DDTHH:MM:SS.mmmZ: {text!r}")
    written = ROUND_TRIP[ce_type](value)
    if not same(written, value):
        extra = sorted(set(value) - set(written))
        added = sorted(set(written) - set(value))
        changed = sorted(k for k in set(value) & set(written) if not same(value[k], written[k]))
        detail = "; ".join(part for part in (
            f"left out by the encoder: {', '.join(extra)}" if extra else "",
            f"written by the encoder but missing: {', '.join(added)}" if added else "",
            f"written differently: {', '.join(changed)}" if changed else "") if part)
        problems.append(f"value: the Swift encoder would not write it back unchanged ({detail})")
    return problems, ce_type


def collect_refs(node, path="", found=None):
    found = [] if found is None else found
    if isinstance(node, dict):
        for name, child in node.items():
            if name == "$ref" and isinstance(child, str):
                found.append((path or "/", child))
            else:
                collect_refs(child, f"{path}/{name}", found)
    elif isinstance(node, list):
        for index, child in enumerate(node):
            collect_refs(child, f"{path}/{index}", found)
    return found


def resolve_pointer(document, pointer):
    """The part of `document` at a JSON pointer (`/a/b`), or raises LookupError."""
    if pointer in ("", "/"):
        return document
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(document, list):
            document = document[int(part)]
        elif isinstance(document, dict) and part in document:
            document = document[part]
        else:
            raise LookupError(part)
    return document


def main():
    passed = failed = 0

    def report(ok, text):
        nonlocal passed, failed
        print(("ok   " if ok else "FAIL ") + text)
        if ok:
            passed += 1
        else:
            failed += 1

    # Schemas.
    validators = {}
    schema_files = sorted(MESSAGES.glob("*.schema.json"))
    for ce_type, name in SCHEMAS.items():
        path = MESSAGES / name
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            jsonschema.Draft202012Validator.check_schema(schema)
        except (OSError, ValueError, jsonschema.exceptions.SchemaError) as error:
            print(f"FAIL {path.relative_to(ROOT)}: not a usable draft 2020-12 schema: {error}")
            print(f"{passed} passed, {failed + 1} failed")
            return 2
        validators[ce_type] = jsonschema.Draft202012Validator(schema)
        report(True, f"{path.relative_to(ROOT)}: a draft 2020-12 schema for {ce_type}")
    for path in schema_files:
        if path.name not in SCHEMAS.values():
            report(False, f"{path.relative_to(ROOT)}: a schema for no message type (add it to SCHEMAS)")

    # Examples.
    seen_types = set()
    files = sorted(EXAMPLES.glob("*.json"))
    for path in files:
        problems, ce_type = check_example(path, validators)
        if ce_type:
            seen_types.add(ce_type)
        name = path.relative_to(ROOT)
        if problems:
            report(False, f"{name}: " + "; ".join(problems))
        else:
            report(True, f"{name}: {ce_type}, headers, topic, key, schema and round trip")
    for ce_type in SCHEMAS:
        report(ce_type in seen_types, f"an example of {ce_type}")

    # AsyncAPI.
    try:
        asyncapi = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        print(f"FAIL {ASYNCAPI.relative_to(ROOT)}: cannot be read: {error}")
        print(f"{passed} passed, {failed + 1} failed")
        return 2
    report(isinstance(asyncapi, dict) and str(asyncapi.get("asyncapi", "")).startswith("3."),
           f"{ASYNCAPI.relative_to(ROOT)}: an AsyncAPI 3 document")
    referenced = set()
    for where, ref in collect_refs(asyncapi):
        target, _, fragment = ref.partition("#")
        label = f"asyncapi.yaml {where}: $ref {ref}"
        if target:
            file = (ASYNCAPI.parent / target).resolve()
            if not file.is_file():
                report(False, f"{label}: no such file")
                continue
            referenced.add(file)
            if fragment:
                try:
                    resolve_pointer(json.loads(file.read_text(encoding="utf-8")), fragment)
                except (LookupError, ValueError, IndexError):
                    report(False, f"{label}: no such part of the file")
                    continue
        else:
            try:
                resolve_pointer(asyncapi, fragment)
            except (LookupError, ValueError, IndexError):
                report(False, f"{label}: no such part of the document")
                continue
        report(True, label)
    for path in schema_files:
        report(path.resolve() in referenced, f"asyncapi.yaml references {path.relative_to(ROOT)}")
    messages = (asyncapi.get("components") or {}).get("messages") or {}
    named = {}
    for key, message in messages.items():
        payload = (message or {}).get("payload") or {}
        ref = (payload.get("schema") or payload).get("$ref", "")
        named[message.get("name")] = key
        wanted = SCHEMAS.get(message.get("name"))
        report(wanted is not None and Path(ref.partition("#")[0]).name == wanted,
               f"asyncapi.yaml message {key} ({message.get('name')}): payload is {wanted or 'a known schema'}")
    for ce_type in SCHEMAS:
        report(ce_type in named, f"asyncapi.yaml has a message named {ce_type}")

    # Known-bad and known-good bodies.
    for ce_type, base in BASES.items():
        problem = first_error(validators[ce_type], base)
        report(problem is None, f"base {ce_type} body is accepted" + (f" (rejected: {problem})" if problem else ""))
    for ce_type, label, change in KNOWN_BAD:
        problem = first_error(validators[ce_type], mutated(ce_type, change))
        if problem is None:
            report(False, f"known-bad {ce_type} '{label}': accepted by {SCHEMAS[ce_type]}")
        else:
            report(True, f"known-bad {ce_type} '{label}': rejected ({problem})")
    for ce_type in SCHEMAS:
        report(any(t == ce_type for t, _, _ in KNOWN_BAD), f"known-bad bodies for {SCHEMAS[ce_type]}")
    for ce_type, label, change in KNOWN_GOOD:
        problem = first_error(validators[ce_type], mutated(ce_type, change))
        report(problem is None, f"known-good {ce_type} '{label}': accepted" + (f" — rejected: {problem}" if problem else ""))
    for ce_type, validator in validators.items():
        problem = first_error(validator, ["not", "an", "object"])
        report(problem is not None, f"known-bad {ce_type} 'a body that is not an object': "
               + (f"rejected ({problem})" if problem else "accepted"))

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
