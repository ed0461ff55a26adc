"""Reading a request inside a moto ``LambdaResponse`` handler: who asks, and what, per the model."""

from __future__ import annotations

import json
from typing import Any

from moto.awslambda.responses import LambdaResponse

from . import shapes
from .wire import AwsError, serialization_error, validation_error


def account_region(request: LambdaResponse) -> tuple[str, str]:
    """The account (from the access key, as moto derives it) and the signed region."""
    return request.current_account, request.region


def json_body(request: LambdaResponse) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except ValueError:
        raise serialization_error("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise serialization_error("The request body must be a JSON object")
    return body


def operation_input(request: LambdaResponse, operation: str) -> dict[str, Any]:
    """The validated input of ``operation``: URI, query string and body members, per the model."""
    uri_params = getattr(request, "uri_match", None) or {}
    try:
        params = shapes.operation_input(
            operation, json_body(request), uri_params, request.querystring
        )
        shapes.validate_operation_input(operation, params)
    except shapes.ShapeError as error:
        raise as_aws_error(error) from None
    return params


def validate_member(structure: str, member: str, value: Any, path: str) -> None:
    """Validate one member of a request moto handles (e.g. CreateFunction's
    CapacityProviderConfig)."""
    try:
        shapes.validate_shape(shapes.member_shape(structure, member), value, path)
    except shapes.ShapeError as error:
        raise as_aws_error(error) from None


def as_aws_error(error: shapes.ShapeError) -> AwsError:
    if error.kind == "SerializationException":
        return serialization_error(error.message)
    return validation_error(error.message)
