"""Wire the extension into moto: new routes, new operations on moto's Lambda responder, and the
few moto methods we wrap. Call ``install()`` once, before the server handles its first request.

Routing: moto's server routes Lambda by the regex table ``moto.awslambda.urls.url_paths``; the
responder then names the operation from method and path using the botocore model (1.44.8 knows
the LMI operations) and calls the method of that name (``create_capacity_provider``, ...).
"""

from __future__ import annotations

from moto.awslambda import urls as lambda_urls
from moto.awslambda.responses import LambdaResponse
from moto.core.config import default_user_config
from moto.core.utils import camelcase_to_underscores
from moto.moto_api._internal import urls as moto_api_urls

from . import (
    capacity_providers,
    control,
    ec2_idempotency,
    function_config,
    function_state,
    iam_deny,
    invoke,
    s3_owner,
    scaling_config,
    tags,
)

LMI_URL_PATHS = (
    r"{0}/(?P<api_version>2025-11-30)/capacity-providers/?$",
    r"{0}/(?P<api_version>2025-11-30)/capacity-providers/(?P<capacity_provider>[^/]+)/?$",
    r"{0}/(?P<api_version>2025-11-30)/capacity-providers/(?P<capacity_provider>[^/]+)/function-versions/?$",
    r"{0}/(?P<api_version>2025-11-30)/functions/(?P<function_name>[^/]+)/function-scaling-config/?$",
)

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True

    # Functions on a capacity provider run under AWS's Runtime Interface Emulator (``invoke``);
    # the others keep moto's Docker-free Lambda backend and its canned answers.
    default_user_config["lambda"]["use_docker"] = False

    for path in LMI_URL_PATHS:
        lambda_urls.url_paths[path] = LambdaResponse.dispatch
    operations = {**capacity_providers.OPERATIONS, **scaling_config.OPERATIONS}
    for operation, handler in operations.items():
        setattr(LambdaResponse, camelcase_to_underscores(operation), handler)

    function_state.install()
    function_config.install()
    tags.install()
    invoke.install()
    s3_owner.install()
    ec2_idempotency.install()
    iam_deny.install()
    moto_api_urls.url_paths.update(control.URL_PATHS)
