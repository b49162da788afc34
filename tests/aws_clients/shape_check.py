"""Checks every raw answer a botocore client gets against the service's own model.

Why: botocore parses leniently — a member with a name the model does not know is dropped
without a word, a missing member is simply absent, a timestamp in the wrong format may still
parse — so a test that only reads what boto3 returns can pass while kmscks answers in a shape
AWS never uses. `watch(client)` (or `watch_session`) hooks the raw body before botocore parses it and walks it
against the operation's output shape: every member name known, every required member there,
each value of its shape's JSON type (timestamps as epoch seconds, blobs as base64, enum values
from the enum). Errors must be `{"__type": ..., "message": ...}`; an error code the operation's
model does not list is noted (kmscks's own and the common ones are expected). `problems()` is
what was found, for the test to assert empty at the end.
"""

import base64
import binascii
import json

_problems = []
_unmodeled = set()

# Errors every AWS JSON service can answer though no operation models them.
COMMON_ERRORS = {
    "ValidationException",
    "SerializationException",
    "UnknownOperationException",
    "AccessDeniedException",
    "ThrottlingException",
    "MissingAuthenticationTokenException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
}


def watch(client):
    """Checks every answer `client` receives from now on."""
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-parse.{service}", _check)


def watch_session(session, service="kms"):
    """Checks every answer of `service` that clients made by `session` (botocore's) receive."""
    session.register(f"before-parse.{service}", _check)


def problems():
    """Every shape problem found so far, as text."""
    return list(_problems)


def unmodeled_errors():
    """(operation, error code) pairs answered that the operation's model does not list."""
    return sorted(_unmodeled)


def _check(operation_model, response_dict, **_):
    op = operation_model.name
    status = response_dict["status_code"]
    body = response_dict.get("body") or b""
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError as e:
        _problems.append(f"{op}: answer body is not JSON ({e}): {body[:200]!r}")
        return
    if status >= 300:
        code = data.get("__type", "") if isinstance(data, dict) else ""
        if not code or not isinstance(data.get("message"), str):
            _problems.append(f"{op}: error {status} without __type and message: {data!r}")
            return
        code = code.split("#")[-1]
        modeled = {s.name for s in operation_model.error_shapes}
        if code not in modeled and code not in COMMON_ERRORS:
            _unmodeled.add((op, code))
        return
    _walk(operation_model.output_shape, data, op)


def _walk(shape, value, path):
    if shape is None:
        if value not in ({}, None):
            _problems.append(f"{path}: the model has no output, the answer is {value!r}")
        return
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            _problems.append(f"{path}: expected an object ({shape.name}), got {value!r}")
            return
        for name, member in value.items():
            if name not in shape.members:
                _problems.append(f"{path}: member {name!r} is not in {shape.name}")
            elif member is not None:
                _walk(shape.members[name], member, f"{path}.{name}")
        for name in shape.required_members:
            if name not in value:
                _problems.append(f"{path}: required member {name!r} of {shape.name} is missing")
    elif kind == "list":
        if not isinstance(value, list):
            _problems.append(f"{path}: expected a list, got {value!r}")
            return
        for i, item in enumerate(value):
            _walk(shape.member, item, f"{path}[{i}]")
    elif kind == "map":
        if not isinstance(value, dict):
            _problems.append(f"{path}: expected a map, got {value!r}")
            return
        for k, v in value.items():
            _walk(shape.key, k, f"{path} key")
            _walk(shape.value, v, f"{path}[{k}]")
    elif kind == "string":
        if not isinstance(value, str):
            _problems.append(f"{path}: expected a string, got {value!r}")
        elif shape.enum and value not in shape.enum:
            _problems.append(f"{path}: {value!r} is not one of {shape.name}'s values {shape.enum}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            _problems.append(f"{path}: expected an integer, got {value!r}")
    elif kind in ("double", "float"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            _problems.append(f"{path}: expected a number, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            _problems.append(f"{path}: expected a boolean, got {value!r}")
    elif kind == "timestamp":
        # AWS JSON 1.1 sends timestamps as epoch seconds (a number).
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            _problems.append(f"{path}: expected epoch seconds, got {value!r}")
    elif kind == "blob":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            _problems.append(f"{path}: expected base64, got {value!r}")
