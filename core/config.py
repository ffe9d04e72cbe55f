"""The service's settings: read from the environment once, validated before anything starts."""

from __future__ import annotations

import functools
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.errors import ConfigError
from core.media import DEFAULT_SAMPLE_FPS, KNOWN_CONTAINERS, MAX_SAMPLE_FPS, MIN_SAMPLE_FPS

__all__ = ["WAIT_CEILING_S", "Settings", "StorageKind", "get_settings", "load_settings"]

GIB = 1024**3
# Credentials shipped in examples (MinIO's and docker-compose.yml's defaults); refused in production.
_EXAMPLE_SECRETS = frozenset({"minioadmin", "changeme", "secret", "password", "deepfakestream-dev-secret"})
# Room, beyond WEBHOOK_TIMEOUT_S, for an attempt to resolve the address and record its outcome.
WEBHOOK_CLAIM_MARGIN_S = 30.0
# 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about 27 hours of retries.
WEBHOOK_RETRY_SCHEDULE_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
# The most any deployment lets a request wait for a job (WAIT_MAX_S chooses within it).
WAIT_CEILING_S = 120.0


class StorageKind(StrEnum):
    S3 = "s3"
    LOCAL = "file"


def _default_storage_url() -> str:
    return (Path.cwd() / "var" / "storage").as_uri()


def _default_work_dir() -> Path:
    return Path.cwd() / "var" / "work"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


class Settings(BaseSettings):
    """Every knob of the API and the workers. Environment variables use the upper-case names."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, frozen=True)

    environment: Literal["development", "test", "production"] = "development"

    # Services
    database_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/deepfakestream"
    database_pool_size: int = Field(default=5, ge=1, le=100)
    broker_url: str = "redis://127.0.0.1:6379/0"
    # Prepended to every Redis key the broker uses, so several deployments (or test runs) can
    # share one Redis without seeing each other's queues.
    broker_key_prefix: str = ""

    # Object storage
    storage_url: str = Field(default_factory=_default_storage_url)
    s3_endpoint_url: str | None = None
    # Clients reach presigned URLs through this endpoint when it differs from the internal one
    # (compose: the API talks to http://minio:9000, a browser to http://localhost:9000).
    s3_public_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("s3_access_key_id", "aws_access_key_id")
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("s3_secret_access_key", "aws_secret_access_key")
    )
    # Buckets a client may name in {"source": "s3://bucket/key"}; empty refuses S3 sources.
    source_buckets: Annotated[tuple[str, ...], NoDecode] = ()
    upload_url_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    upload_part_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024, le=512 * 1024 * 1024)

    # Input limits
    max_upload_bytes: int = Field(default=2 * GIB, ge=1)
    max_duration_s: float = Field(default=3600.0, gt=0)
    max_width: int = Field(default=7680, ge=16)
    max_height: int = Field(default=4320, ge=16)
    allowed_containers: Annotated[tuple[str, ...], NoDecode] = KNOWN_CONTAINERS
    # Still images: pixels (width × height, read from the header before anything is decoded, so a
    # small file that would inflate to gigabytes is refused unread), and the decoded size of a
    # JSON {"image_base64": ...} body.
    max_image_pixels: int = Field(default=50_000_000, ge=64 * 64)
    # Each side, and the long side over the short: a line of pixels under the pixel cap still
    # costs gigabytes to resample.
    max_image_side: int = Field(default=20_000, ge=64)
    max_image_aspect_ratio: float = Field(default=20.0, ge=1.0)
    max_image_base64_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)

    # Analysis defaults and the bounds a request may choose within
    default_sample_fps: float = Field(default=DEFAULT_SAMPLE_FPS, gt=0)
    default_segment_seconds: float = Field(default=10.0, gt=0)
    max_frames_per_segment: int = Field(default=32, ge=1, le=1024)
    # Faces analysed per frame, the largest first: a crowd costs no more than this many faces.
    max_faces_per_frame: int = Field(default=16, ge=1, le=256)
    min_sample_fps: float = Field(default=MIN_SAMPLE_FPS, gt=0)
    max_sample_fps: float = Field(default=MAX_SAMPLE_FPS, gt=0)
    min_segment_seconds: float = Field(default=1.0, gt=0)
    max_segment_seconds: float = Field(default=120.0, gt=0)

    # Workers
    model_path: Path | None = None  # None: the shipped checkpoint (pipeline.model.DEFAULT_MODEL_PATH)
    device: str = "auto"
    work_dir: Path = Field(default_factory=_default_work_dir)
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_s: float = Field(default=10.0, ge=0)
    task_soft_time_limit_s: int = Field(default=600, ge=1)
    task_time_limit_s: int = Field(default=660, ge=2)
    # Redis re-delivers an unacknowledged message after this long: it must exceed the longest
    # task, or a slow task runs twice at once.
    broker_visibility_timeout_s: int = Field(default=900, ge=3)
    broker_restore_interval_s: int = Field(default=10, ge=1)
    reconcile_interval_s: float = Field(default=60.0, gt=0)
    # A queued job, or a pending segment, with no message sent for this long is re-enqueued.
    reconcile_queued_after_s: float = Field(default=1800.0, gt=0)
    # On SIGTERM (remapped to SIGQUIT in containers) a worker gets this long to finish its task
    # before it re-queues the message and exits: keep it below the orchestrator's grace period.
    worker_soft_shutdown_timeout_s: float = Field(default=60.0, ge=0)
    # Port of each worker's Prometheus endpoint; 0 turns it off.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)

    # API
    page_size_default: int = Field(default=50, ge=1)
    page_size_max: int = Field(default=500, ge=1)
    json_body_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Every request body must arrive within a deadline on the wall clock (a video upload: the
    # upload one), with no wait for its next bytes longer than the idle one; past either, 408.
    body_timeout_s: float = Field(default=60.0, gt=0)
    upload_body_timeout_s: float = Field(default=3600.0, gt=0)
    body_idle_timeout_s: float = Field(default=30.0, gt=0)
    enqueue_timeout_s: float = Field(default=3.0, gt=0)
    # `deepfakestream serve` closes a connection whose request headers are not complete this long
    # after their first byte (or after it opened), and refuses connections from one client address
    # past max_connections_per_address in each API process (0: no cap; addresses trusted as
    # proxies through FORWARDED_ALLOW_IPS are never capped). What a reverse proxy gives (nginx's
    # client_header_timeout and limit_conn), for an API exposed without one.
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_connections_per_address: int = Field(default=64, ge=0)
    # ?wait=S on GET and POST /v1/jobs holds a request until the job ends, at most this long.
    wait_max_s: float = Field(default=30.0, ge=1, le=WAIT_CEILING_S)
    # GET /v1/jobs/{id}/events: a comment this often keeps proxies from closing a quiet stream
    # (and the job's row is re-read, in case an event was lost); a stream closes after
    # events_stream_max_s and the client reconnects with Last-Event-ID.
    events_heartbeat_s: float = Field(default=15.0, gt=0, le=300)
    events_stream_max_s: float = Field(default=900.0, ge=1)
    # Lifetime of the signed ?token= a browser's EventSource sends instead of a header.
    stream_token_ttl_s: int = Field(default=600, ge=10, le=3600)
    # Share links (POST /v1/jobs/{id}/shares): how long one opens the job without a key when the
    # request names no lifetime, and the longest lifetime a request may name.
    share_ttl_s: int = Field(default=7 * 86400, ge=60)
    share_ttl_max_s: int = Field(default=30 * 86400, ge=60)
    # Per-tenant request rates (a token bucket in Redis, shared by every API process): a sustained
    # rate per second and a burst; writes (POST, PUT, PATCH, DELETE) also draw from a smaller
    # bucket. Past either, 429 with Retry-After. RATE_LIMIT_REDIS_URL defaults to BROKER_URL.
    rate_limit_enabled: bool = True
    rate_limit_per_s: float = Field(default=300.0, gt=0)
    rate_limit_burst: int = Field(default=600, ge=1)
    rate_limit_writes_per_s: float = Field(default=50.0, gt=0)
    rate_limit_writes_burst: int = Field(default=200, ge=1)
    rate_limit_redis_url: str | None = None
    # Requests without a valid key are limited per client address (uvicorn resolves it from
    # X-Forwarded-For only for trusted proxies): each failed authentication spends a token; an
    # address with none left gets 429 for every key, a right one included, until its bucket
    # refills, so guessing keys stays slow. Successful requests spend nothing here.
    auth_failures_per_min: float = Field(default=60.0, gt=0)
    auth_failures_burst: int = Field(default=30, ge=1)
    # How long an API process trusts a key it has looked up before reading it again: a status poll
    # then costs one database read instead of two (bench/api.py). A key revoked (or a tenant
    # deactivated) is refused by every process within this many seconds; 0 reads the key on every
    # request.
    api_key_cache_s: float = Field(default=2.0, ge=0, le=60)

    # Webhooks and https:// sources. Loopback and private receivers are refused unless allowed (an
    # on-premises receiver, or tests); link-local and cloud metadata addresses, in any IPv6
    # spelling, are refused always.
    webhook_allow_private: bool = False
    # One attempt, from the first connection to the answer's last byte read, on the wall clock;
    # the connection alone may take WEBHOOK_CONNECT_TIMEOUT_S of it. A delivery is claimed for
    # WEBHOOK_TIMEOUT_S plus a margin (``webhook_claim_s``), so no second attempt starts while
    # one may still run.
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    webhook_connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Delay before each retry (the first attempt is immediate), ±jitter, as Standard Webhooks
    # recommends.
    webhook_retry_schedule_s: Annotated[tuple[float, ...], NoDecode] = WEBHOOK_RETRY_SCHEDULE_S
    webhook_retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    # A receiver's Retry-After is honoured up to this long.
    webhook_retry_after_max_s: float = Field(default=86400.0, gt=0)
    # How often due deliveries are looked for, and when a message sent for one that was never
    # claimed (lost with a worker or a flushed broker) is sent again.
    webhook_dispatch_interval_s: float = Field(default=2.0, gt=0)
    webhook_redispatch_after_s: float = Field(default=300.0, gt=0)
    # POST /v1/deliveries/{id}/redeliver within this long of the last one accepted is refused
    # (409): requests sent together (a double click, a client retrying) start one redelivery,
    # even when its attempt ends before the others arrive.
    webhook_redeliver_window_s: float = Field(default=10.0, ge=0)
    # Encrypts the stored signing secrets (they must be recovered to sign, so they are not hashed).
    webhook_secrets_key: SecretStr = SecretStr("deepfakestream-dev-secret")
    # Extra CA certificates trusted for webhooks and https sources (a private CA); None: certifi's.
    outbound_ca_bundle: Path | None = None

    # Batches and backlog
    batch_max_items: int = Field(default=10_000, ge=1, le=100_000)
    # A batch request (JSON, CSV or JSONL) may be larger than other JSON bodies.
    batch_body_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # Celery priority of batch items (0 is served first; interactive jobs use 0).
    batch_priority: int = Field(default=9, ge=1, le=9)
    # Queued plus processing jobs one tenant may have; past it, 429 with Retry-After.
    max_jobs_in_flight_per_tenant: int = Field(default=20_000, ge=1)
    in_flight_retry_after_s: int = Field(default=30, ge=1)
    # https:// sources are fetched by the workers under the webhook address guard.
    https_source_max_bytes: int = Field(default=2 * GIB, ge=1)
    # The whole download on the wall clock, and each wait for the next bytes.
    https_source_timeout_s: float = Field(default=600.0, gt=0)
    https_source_read_timeout_s: float = Field(default=30.0, gt=0)
    https_source_connect_timeout_s: float = Field(default=10.0, gt=0)
    https_source_max_redirects: int = Field(default=3, ge=0, le=10)

    # Monitoring
    # Grad-CAM heatmaps for this many of each job's most suspicious faces (0: none).
    explain_top_k: int = Field(default=4, ge=0, le=32)
    # Workers write their CPU, memory and GPU figures to Redis this often (read by
    # GET /system/resource/consumption/); a report older than three intervals is stale.
    resource_report_interval_s: float = Field(default=5.0, gt=0, le=300)
    # Drift: the recent window and the reference window just before it (seconds), the PSI and
    # p-value a feature must pass to be flagged, the fewest jobs per window for a verdict, and
    # how long the /metrics drift gauges are cached.
    drift_window_s: float = Field(default=86400.0, gt=0)
    drift_reference_s: float = Field(default=7 * 86400.0, gt=0)
    drift_psi_threshold: float = Field(default=0.2, gt=0)
    drift_p_value: float = Field(default=0.01, gt=0, lt=1)
    drift_min_samples: int = Field(default=30, ge=2)
    drift_refresh_s: float = Field(default=60.0, ge=0)

    # Logging
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme in ("postgres", "postgresql"):
            value = "postgresql+psycopg2" + value[len(scheme) :]
        elif scheme != "postgresql+psycopg2":
            raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got scheme {scheme!r}")
        if not urlsplit(value).path.strip("/"):
            raise ValueError("DATABASE_URL must name a database")
        return value

    @field_validator("broker_url", "rate_limit_redis_url")
    @classmethod
    def _check_broker_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = urlsplit(value).scheme
        if scheme not in ("redis", "rediss"):
            raise ValueError(f"must be a redis:// or rediss:// URL, got scheme {scheme!r}")
        return value

    @field_validator("storage_url")
    @classmethod
    def _check_storage_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme == "s3":
            if not parts.netloc:
                raise ValueError("STORAGE_URL s3://bucket[/prefix] needs a bucket")
            if parts.query or parts.fragment:
                raise ValueError("STORAGE_URL must not carry a query or fragment")
            return value.rstrip("/")
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
                raise ValueError("STORAGE_URL file:///absolute/dir must be an absolute local path")
            return value.rstrip("/")
        raise ValueError(f"STORAGE_URL must be s3://bucket/prefix or file:///dir, got {value!r}")

    @field_validator("s3_endpoint_url", "s3_public_endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"S3 endpoint must be an http(s):// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("source_buckets", "allowed_containers", mode="before")
    @classmethod
    def _parse_lists(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("webhook_retry_schedule_s", mode="before")
    @classmethod
    def _parse_schedule(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("webhook_retry_schedule_s")
    @classmethod
    def _check_schedule(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(delay < 0 for delay in value):
            raise ValueError("WEBHOOK_RETRY_SCHEDULE_S delays must not be negative")
        return value

    @field_validator("allowed_containers")
    @classmethod
    def _check_containers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(KNOWN_CONTAINERS))
        if unknown:
            raise ValueError(f"unknown containers {unknown}; known: {', '.join(KNOWN_CONTAINERS)}")
        if not value:
            raise ValueError("ALLOWED_CONTAINERS must name at least one container")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"LOG_LEVEL {value!r} is not a logging level")
        return level

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if not self.task_soft_time_limit_s < self.task_time_limit_s < self.broker_visibility_timeout_s:
            raise ValueError(
                "need TASK_SOFT_TIME_LIMIT_S < TASK_TIME_LIMIT_S < BROKER_VISIBILITY_TIMEOUT_S "
                f"(got {self.task_soft_time_limit_s}, {self.task_time_limit_s}, "
                f"{self.broker_visibility_timeout_s}): a message must not be re-delivered while "
                "its first delivery may still be running"
            )
        if self.min_sample_fps > self.max_sample_fps:
            raise ValueError("MIN_SAMPLE_FPS is above MAX_SAMPLE_FPS")
        if not self.min_sample_fps <= self.default_sample_fps <= self.max_sample_fps:
            raise ValueError("DEFAULT_SAMPLE_FPS is outside MIN_SAMPLE_FPS..MAX_SAMPLE_FPS")
        if not self.min_segment_seconds <= self.default_segment_seconds <= self.max_segment_seconds:
            raise ValueError("DEFAULT_SEGMENT_SECONDS is outside MIN_SEGMENT_SECONDS..MAX_SEGMENT_SECONDS")
        if self.page_size_default > self.page_size_max:
            raise ValueError("PAGE_SIZE_DEFAULT is above PAGE_SIZE_MAX")
        if self.storage_kind is StorageKind.S3 and (self.s3_access_key_id is None) != (
            self.s3_secret_access_key is None
        ):
            raise ValueError("set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither")
        if self.environment == "production":
            secret = self.s3_secret_access_key.get_secret_value() if self.s3_secret_access_key else ""
            if secret in _EXAMPLE_SECRETS:
                raise ValueError("S3_SECRET_ACCESS_KEY is an example value; set a real secret in production")
            if self.webhook_secrets_key.get_secret_value() in _EXAMPLE_SECRETS:
                raise ValueError("WEBHOOK_SECRETS_KEY is an example value; set a real secret in production")
        if self.webhook_connect_timeout_s > self.webhook_timeout_s:
            raise ValueError(
                "WEBHOOK_CONNECT_TIMEOUT_S is above WEBHOOK_TIMEOUT_S: the connection is part of the "
                "attempt that WEBHOOK_TIMEOUT_S caps"
            )
        if self.body_idle_timeout_s > self.upload_body_timeout_s:
            raise ValueError("BODY_IDLE_TIMEOUT_S is above UPLOAD_BODY_TIMEOUT_S")
        if len(self.webhook_secrets_key.get_secret_value()) < 16:
            raise ValueError("WEBHOOK_SECRETS_KEY must have at least 16 characters")
        return self

    @property
    def webhook_claim_s(self) -> float:
        """How long one attempt holds its delivery: longer than the attempt can last (its total
        is WEBHOOK_TIMEOUT_S on the wall clock), plus room to look up the address and record it."""
        return self.webhook_timeout_s + WEBHOOK_CLAIM_MARGIN_S

    @property
    def storage_kind(self) -> StorageKind:
        return StorageKind(urlsplit(self.storage_url).scheme)

    @property
    def storage_bucket(self) -> str:
        """The bucket of an s3:// STORAGE_URL."""
        return urlsplit(self.storage_url).netloc

    @property
    def storage_prefix(self) -> str:
        """The key prefix of an s3:// STORAGE_URL ('' or ending in '/')."""
        prefix = urlsplit(self.storage_url).path.strip("/")
        return f"{prefix}/" if prefix else ""

    @property
    def storage_dir(self) -> Path:
        """The directory of a file:// STORAGE_URL."""
        return Path(urlsplit(self.storage_url).path)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (plus overrides), or ConfigError naming every bad value."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']).upper() or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once on first use (never at import)."""
    return load_settings()
