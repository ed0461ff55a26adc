"""S3's ``ExpectedBucketOwner`` on object reads, which moto 5.2.5 accepts and ignores.

AWS, "Verifying bucket ownership with bucket owner condition" (Amazon S3 User Guide): a request
carrying ``x-amz-expected-bucket-owner`` whose account "does not match the actual owner of the
bucket, the request fails with the HTTP status code 403 Forbidden (access denied)". The handler
sends it on its catalog read; without this, the emulator would load a catalog from a bucket any
account owns.

Only GetObject and HeadObject are covered: the reads the handler and the operator make.
"""

from __future__ import annotations

from typing import Any

from moto.s3.responses import S3Response

HEADER = "x-amz-expected-bucket-owner"

ACCESS_DENIED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
)


def _refusal(response: S3Response, bucket_name: str | None, headers: Any) -> Any:
    expected = headers.get(HEADER) if headers is not None else None
    if not expected or not bucket_name:
        return None
    try:
        owner = response.backend.get_bucket(bucket_name).account_id
    except Exception:  # an unknown bucket: moto's own answer (NoSuchBucket) follows
        return None
    if expected == owner:
        return None
    return 403, {"content-type": "application/xml"}, ACCESS_DENIED


def install() -> None:
    get_object = S3Response.get_object
    head_object = S3Response.head_object

    def checked_get_object(self: S3Response) -> Any:
        return _refusal(self, self.bucket_name, self.headers) or get_object(self)

    def checked_head_object(
        self: S3Response, bucket_name: str, query: Any, key_name: str, headers: Any
    ) -> Any:
        refusal = _refusal(self, bucket_name, headers)
        if refusal is not None:
            # HEAD answers carry no body.
            return refusal[0], refusal[1], ""
        return head_object(self, bucket_name, query, key_name, headers)

    S3Response.get_object = checked_get_object
    S3Response.head_object = checked_head_object
