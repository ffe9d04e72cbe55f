"""The page's connect-src names where its batch uploads go: the API alone with storage in a local
directory, and the endpoint of presigned URLs with S3, so the browser may PUT files there."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from api.security_headers import content_security_policy, upload_origins
from core.config import Settings
from core.storage.s3 import make_s3_client


def _connect_src(policy: str) -> list[str]:
    (directive,) = [part.strip() for part in policy.split(";") if part.strip().startswith("connect-src")]
    return directive.split()[1:]


def test_local_storage_lets_the_page_talk_to_the_api_only() -> None:
    settings = Settings(storage_url="file:///var/lib/deepfakestream/storage")

    assert upload_origins(settings) == ()
    assert _connect_src(content_security_policy("/", upload_origins(settings))) == ["'self'"]


def test_s3_lets_the_page_put_to_the_public_endpoint_only() -> None:
    settings = Settings(
        storage_url="s3://clips/platform",
        s3_endpoint_url="http://minio:9000",
        s3_public_endpoint_url="http://localhost:9000",
    )

    policy = content_security_policy("/", upload_origins(settings))

    assert _connect_src(policy) == ["'self'", "http://localhost:9000"]
    # Only the page may connect there; every other answer still loads nothing.
    assert content_security_policy("/v1/jobs", upload_origins(settings)).startswith("default-src 'none';")


@pytest.mark.parametrize("bucket", ["clips", "team.clips"])
@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_aws_presigned_urls_are_among_the_allowed_origins(
    bucket: str, region: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    settings = Settings(
        storage_url=f"s3://{bucket}/platform",
        s3_region=region,
        s3_endpoint_url=None,
        s3_public_endpoint_url=None,
    )
    url = make_s3_client(settings, None).generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "videos/a", "ContentLength": 3}, ExpiresIn=60
    )
    parts = urlsplit(url)

    assert f"{parts.scheme}://{parts.netloc}" in _connect_src(
        content_security_policy("/", upload_origins(settings))
    )
