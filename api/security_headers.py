"""Security headers on every response: no sniffing, no framing, and a Content-Security-Policy.

The page (``/``) runs only the scripts and styles it is served from this origin (``/web/``) and
talks only to this API, and, with S3 storage, to the storage endpoint its batch uploads are PUT
to through presigned URLs; the HTML report is one self-contained file (inline styles, ``data:``
images, no script); the interactive docs run their own inline set-up script; everything else
(JSON, event streams, files) is no document at all and may load nothing. No response may be
framed by another site (clickjacking).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.config import Settings, StorageKind

__all__ = ["SecurityHeadersMiddleware", "content_security_policy", "security_headers", "upload_origins"]

_NOTHING = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
_PAGE = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'{uploads}; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_REPORT = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
# Swagger UI and ReDoc start from an inline script and ReDoc runs a worker from a blob.
_DOCS = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; base-uri 'none'; frame-ancestors 'none'"
)
_PAGE_PATHS = frozenset({"/", "/web/index.html"})
_DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
_REPORT_PATH = re.compile(r"^/v1/jobs/[^/]+/report/?$")

_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Event-stream URLs carry a token in their query: never sent on to another site.
    "Referrer-Policy": "no-referrer",
}


def upload_origins(settings: Settings) -> tuple[str, ...]:
    """Where presigned upload URLs point (the page PUTs a batch's files there), for the page's
    connect-src; none when storage is a local directory and uploads go through the API itself."""
    if settings.storage_kind is StorageKind.LOCAL:
        return ()
    endpoint = settings.s3_public_endpoint_url or settings.s3_endpoint_url
    if endpoint:
        parts = urlsplit(endpoint)
        return (f"{parts.scheme}://{parts.netloc}",)
    # AWS itself: the bucket's virtual-hosted names, or path-style URLs for a bucket whose name
    # cannot be a host name (dots), as boto3 signs them.
    bucket, region = settings.storage_bucket, settings.s3_region
    return (
        f"https://{bucket}.s3.amazonaws.com",
        f"https://{bucket}.s3.{region}.amazonaws.com",
        "https://s3.amazonaws.com",
        f"https://s3.{region}.amazonaws.com",
    )


def security_headers(path: str, uploads: Sequence[str] = ()) -> dict[str, str]:
    """Every header this module adds to a response to ``path``."""
    return {**_HEADERS, "Content-Security-Policy": content_security_policy(path, uploads)}


def content_security_policy(path: str, uploads: Sequence[str] = ()) -> str:
    """The policy a response to ``path`` carries; ``uploads``: the origins the page may PUT files to."""
    if path in _PAGE_PATHS:
        return _PAGE.format(uploads="".join(f" {origin}" for origin in uploads))
    if path in _DOCS_PATHS:
        return _DOCS
    if _REPORT_PATH.match(path):
        return _REPORT
    return _NOTHING


class SecurityHeadersMiddleware:
    """Plain ASGI (see ``api.access_log``): adds the headers to every HTTP response's start."""

    def __init__(self, app: ASGIApp, *, uploads: Sequence[str] = ()) -> None:
        self.app = app
        self.uploads = tuple(uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = security_headers(scope["path"], self.uploads)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in added.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
