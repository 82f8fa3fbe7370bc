"""Short-lived download links for the invoice bucket's objects (S3 presigned GET)."""

from __future__ import annotations

from chalicelib.adapters import aws


class S3Presigner:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def presign(self, key: str, *, seconds: int) -> str:
        url: str = aws.client("s3").generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
        )
        return url
