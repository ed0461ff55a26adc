"""The AWS Lambda API model and request validation against it.

The model is botocore's ``lambda/2015-03-31/service-2.json`` from the pinned botocore (the same
file the AWS SDKs are generated from). Requests to the operations we implement are assembled from
URI, query string and JSON body as the model's member locations say, then checked against the
model's constraints (required members, types, ranges, lengths, patterns, enums). A violation is
answered like Lambda's front end does: ``ValidationException`` with a message of the form
``1 validation error detected: Value '20000' at 'capacityProviderScalingConfig.maxVCpuCount'
failed to satisfy constraint: Member must have value less than or equal to 15000``.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import unquote

import regex
from botocore.loaders import Loader
from botocore.model import ListShape, MapShape, ServiceModel, Shape, StructureShape

MODEL = ServiceModel(Loader().load_service_model("lambda", "service-2"), "lambda")


class ShapeError(Exception):
    """The request does not fit the model; ``kind`` says how Lambda names that failure."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # "ValidationException" or "SerializationException"
        self.message = message


def operation_input(
    operation: str,
    body: dict[str, Any],
    uri_params: dict[str, str],
    query: dict[str, list[str]],
) -> dict[str, Any]:
    """The operation's input as one dict, each member read from where the model puts it.

    URI and query string members arrive as text and are converted to the member's type.
    """
    shape = MODEL.operation_model(operation).input_shape
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri":
            if wire_name in uri_params:
                params[name] = unquote(uri_params[wire_name])
        elif location == "querystring":
            if wire_name in query:
                params[name] = _from_text(member, query[wire_name][0], wire_name)
        elif location in ("header", "headers"):
            continue
        elif name in body:
            params[name] = body[name]
    return params


def validate_operation_input(operation: str, params: dict[str, Any]) -> None:
    """Raise ``ShapeError`` unless ``params`` satisfies the operation's input shape."""
    validate_shape(MODEL.operation_model(operation).input_shape, params)


def validate_shape(shape: Shape, value: Any, path: str = "") -> None:
    """Raise ``ShapeError`` unless ``value`` satisfies ``shape`` (a structure, list, ...)."""
    errors: list[str] = []
    _check(shape, value, path, errors)
    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise ShapeError(
            "ValidationException", f"{count} validation {noun} detected: " + "; ".join(errors)
        )


def member_shape(structure: str, member: str) -> Shape:
    return MODEL.shape_for(structure).members[member]


def _from_text(shape: Shape, text: str, name: str) -> Any:
    if shape.type_name in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise ShapeError(
                "ValidationException",
                f"1 validation error detected: Value '{text}' at '{_camel(name)}' failed to "
                "satisfy constraint: Member must be a number",
            ) from None
    if shape.type_name == "boolean":
        return text.lower() == "true"
    return text


def _check(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    if isinstance(shape, StructureShape):
        _expect_type(value, dict, "structure", path)
        for name in shape.required_members:
            if value.get(name) is None:
                errors.append(
                    f"Value null at '{_join(path, name)}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        for name, member_value in value.items():
            if name not in shape.members:
                continue  # unknown members are ignored, as the service does
            if member_value is not None:
                _check(shape.members[name], member_value, _join(path, name), errors)
    elif isinstance(shape, ListShape):
        _expect_type(value, list, "list", path)
        _check_length(shape, value, len(value), path, errors)
        for index, item in enumerate(value, start=1):
            _check(shape.member, item, f"{path}.{index}.member", errors)
    elif isinstance(shape, MapShape):
        _expect_type(value, dict, "map", path)
        _check_length(shape, value, len(value), path, errors)
        for key, item in value.items():
            _check(shape.key, key, f"{path}.key", errors)
            _check(shape.value, item, f"{path}.{key}.member", errors)
    elif shape.type_name == "string":
        _expect_type(value, str, "string", path)
        _check_length(shape, value, len(value), path, errors)
        if shape.enum and value not in shape.enum:
            errors.append(
                _violation(
                    value,
                    path,
                    "Member must satisfy enum value set: [" + ", ".join(shape.enum) + "]",
                )
            )
        pattern = shape.metadata.get("pattern")
        if pattern is not None and not _compiled(pattern).fullmatch(value):
            errors.append(
                _violation(
                    value, path, f"Member must satisfy regular expression pattern: {pattern}"
                )
            )
    elif shape.type_name in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ShapeError("SerializationException", f"Expected an integer at '{path}'")
        _check_range(shape, value, path, errors)
    elif shape.type_name in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ShapeError("SerializationException", f"Expected a number at '{path}'")
        _check_range(shape, value, path, errors)
    elif shape.type_name == "boolean":
        _expect_type(value, bool, "boolean", path)


def _expect_type(value: Any, kind: type, name: str, path: str) -> None:
    if not isinstance(value, kind):
        raise ShapeError("SerializationException", f"Expected a {name} at '{path}'")


def _check_length(shape: Shape, value: Any, length: int, path: str, errors: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and length < low:
        errors.append(
            _violation(value, path, f"Member must have length greater than or equal to {low}")
        )
    if high is not None and length > high:
        errors.append(
            _violation(value, path, f"Member must have length less than or equal to {high}")
        )


def _check_range(shape: Shape, value: float, path: str, errors: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and value < low:
        errors.append(
            _violation(value, path, f"Member must have value greater than or equal to {low}")
        )
    if high is not None and value > high:
        errors.append(
            _violation(value, path, f"Member must have value less than or equal to {high}")
        )


def _violation(value: Any, path: str, constraint: str) -> str:
    return f"Value '{_java_text(value)}' at '{path}' failed to satisfy constraint: {constraint}"


def _java_text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_java_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def _join(path: str, member: str) -> str:
    return f"{path}.{_camel(member)}" if path else _camel(member)


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


@functools.cache
def _compiled(pattern: str) -> regex.Pattern[str]:
    # The model's patterns are Java regular expressions (\p{L} and friends), matched against the
    # whole value; the `regex` module speaks that dialect.
    return regex.compile(pattern)
