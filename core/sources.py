"""Where a job's video comes from: the kinds of client source URI and how each is told apart.

URI schemes are case-insensitive (RFC 3986, section 3.1): ``HTTPS://host/a.mp4`` and
``S3://bucket/key`` name the same things as their lower-case forms. Every place that classifies a
source asks ``source_scheme`` and stores ``normalize_source``'s form, so validation and the worker
cannot disagree on what a source is.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["SOURCE_SCHEMES", "normalize_source", "source_scheme"]

SOURCE_SCHEMES = ("s3", "https")


def source_scheme(uri: str) -> str:
    """The URI's scheme in lower case ('' when it has none or cannot be parsed)."""
    try:
        return urlsplit(uri.strip()).scheme.lower()
    except ValueError:
        return ""


def normalize_source(uri: str) -> str:
    """The URI with its scheme in lower case, everything else unchanged."""
    scheme = source_scheme(uri)
    if not scheme or uri[: len(scheme)].lower() != scheme:
        return uri
    return scheme + uri[len(scheme) :]
