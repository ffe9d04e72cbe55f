"""SQLAlchemy models: tenants and their API keys, uploads, videos, jobs and their results.

Unique keys on (job, segment), (job, frame) and (job, track) make every write of a result an
upsert, so a task that runs twice rewrites its rows instead of duplicating them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.states import JobStatus, SegmentStatus, Verdict

__all__ = [
    "ApiKey",
    "Base",
    "Batch",
    "CallbackSecret",
    "Explanation",
    "Frame",
    "HealthCheck",
    "Job",
    "JobReview",
    "JobShare",
    "JobStatistics",
    "Segment",
    "Tenant",
    "Track",
    "Upload",
    "Video",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]

# Stable constraint names, so migrations can refer to them and ON CONFLICT can name them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _values(enum: type[JobStatus] | type[SegmentStatus] | type[Verdict]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB, list[Any]: JSONB}


def _now_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = _now_column()

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="tenant", passive_deletes=True)


class ApiKey(Base):
    """A key is shown once; only its SHA-256 is kept (the key carries 256 random bits, so a
    fast hash is enough), and a short prefix so people can tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = _now_column()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    tenant: Mapped[Tenant] = relationship(back_populates="api_keys")


class Upload(Base):
    """A presigned slot a client fills directly in storage, then names in POST /v1/jobs."""

    __tablename__ = "uploads"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    storage_key: Mapped[str] = mapped_column(String(1024))
    filename: Mapped[str | None] = mapped_column(String(255))
    declared_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # What the last PUT through the API stored at ``storage_key`` (each such PUT writes an object
    # of its own, so a consumed upload's object is never written again).
    received_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    consumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Video(Base):
    """The input of a job: an object we stored (``owned``) or one the client named in a bucket."""

    __tablename__ = "videos"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # Our object (relative to STORAGE_URL) when owned; the client's s3:// URI otherwise.
    storage_key: Mapped[str | None] = mapped_column(String(1024))
    source_uri: Mapped[str | None] = mapped_column(String(2048))
    owned: Mapped[bool] = mapped_column(Boolean)
    filename: Mapped[str | None] = mapped_column(String(255))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    container: Mapped[str | None] = mapped_column(String(16))  # sniffed from the first bytes
    # Filled by the probe.
    duration_s: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    codec: Mapped[str | None] = mapped_column(String(64))
    format_name: Mapped[str | None] = mapped_column(String(128))
    info: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # pipeline VideoInfo
    created_at: Mapped[datetime] = _now_column()

    __table_args__ = (
        CheckConstraint("(storage_key IS NOT NULL) OR (source_uri IS NOT NULL)", name="has_location"),
    )


class Job(Base):
    """One analysis of one video. This table is the truth; broker messages only point at rows."""

    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    video_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    segments_total: Mapped[int | None] = mapped_column(Integer)
    segments_done: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The most tries any one task of this job needed (1 on a clean run).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[str | None] = mapped_column(String(128))
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    model_trained: Mapped[bool | None] = mapped_column(Boolean)
    # What the verdict was decided with, kept as it was at finalize so the job reads the same
    # after the model changes: the checkpoint's caveat, its inconclusive band [low, high) and
    # the aggregation that made the video's score.
    model_caveat: Mapped[str | None] = mapped_column(Text)
    inconclusive_low: Mapped[float | None] = mapped_column(Float)
    inconclusive_high: Mapped[float | None] = mapped_column(Float)
    aggregation: Mapped[str | None] = mapped_column(String(16))
    # The analysis settings the worker used (sample rate, segment length, limits), for reports.
    analysis_settings: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    plan: Mapped[list[Any] | None] = mapped_column(JSONB)  # SegmentPlan dicts, set by the probe
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    external_id: Mapped[str | None] = mapped_column(String(255))
    # Set for the items of a batch: which batch, and the item's position in its request.
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batches.id", ondelete="SET NULL"))
    batch_index: Mapped[int | None] = mapped_column(Integer)
    # The Celery priority of the job's messages (0 first): backlog items wait behind interactive jobs.
    priority: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=text("0"))
    # The probe's claim: which worker node, which message (a redelivery of the same message may
    # take the job over; a duplicate may not), and when.
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    # "image" for a still picture (or a video of one frame), "video" otherwise: set from the sniffed
    # format at submission, confirmed by the probe.
    media_type: Mapped[str] = mapped_column(String(8), default="video", server_default=text("'video'"))
    # An image job's faces, [{box, det_score, score}], written when it succeeds.
    faces: Mapped[list[Any] | None] = mapped_column(JSONB)
    # Why a no_face job scored nothing, when the analysis knows: {"code": "faces_too_small",
    # "faces_seen", "face_size_px", "min_face_size_px", "message"} (pipeline VideoResult.no_face_reason).
    no_face_reason: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # last message sent
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    video: Mapped[Video] = relationship(lazy="joined", innerjoin=True)
    # Loaded on access, never joined: an outer join would refuse the workers' FOR UPDATE reads.
    review: Mapped[JobReview | None] = relationship(uselist=False, viewonly=True)

    __table_args__ = (
        CheckConstraint(f"status IN ({_values(JobStatus)})", name="status"),
        CheckConstraint(f"verdict IS NULL OR verdict IN ({_values(Verdict)})", name="verdict"),
        CheckConstraint("segments_done >= 0 AND attempts >= 0", name="counters"),
        CheckConstraint("media_type IN ('video', 'image')", name="media_type"),
        UniqueConstraint("tenant_id", "idempotency_key"),
        # GET /v1/jobs pages newest first within a tenant.
        Index("ix_jobs_tenant_created", "tenant_id", text("created_at DESC"), text("id DESC")),
        # The reconciler scans only unfinished jobs.
        Index(
            "ix_jobs_active",
            "status",
            "enqueued_at",
            postgresql_where=text("status IN ('queued', 'processing')"),
        ),
        Index("ix_jobs_tenant_external_id", "tenant_id", "external_id"),
        # A batch's results are exported in item order.
        UniqueConstraint("batch_id", "batch_index"),
        # The per-tenant limit on jobs in flight counts these.
        Index(
            "ix_jobs_tenant_active",
            "tenant_id",
            postgresql_where=text("status IN ('queued', 'processing')"),
        ),
    )


class JobReview(Base):
    """A person's label for a succeeded job, kept beside the model's verdict (never over it). One
    per job: reviewing again replaces the label, the note, who and when. ``model_verdict`` is the
    job's verdict when it was reviewed, so agreement is counted without reading the jobs."""

    __tablename__ = "job_reviews"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(8))
    note: Mapped[str | None] = mapped_column(Text)
    model_verdict: Mapped[str] = mapped_column(String(16))
    # Who: the name the reviewer gave, and the key that recorded it (its prefix outlives the key).
    reviewer: Mapped[str | None] = mapped_column(String(100))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    api_key_prefix: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = _now_column()
    reviewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("label IN ('fake', 'real', 'unsure')", name="label"),
        # The export and the agreement summary read a tenant's reviews by time.
        Index("ix_job_reviews_tenant_reviewed_at", "tenant_id", "reviewed_at"),
    )


class JobShare(Base):
    """A read-only link to one job's result and report for someone without a key. The link's
    token is signed and names only this row, so revoking the row closes the link before it
    expires, and the row's tenant bounds what the link can reach."""

    __tablename__ = "job_shares"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    api_key_prefix: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = _now_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Segment(Base):
    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    segment_index: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default=SegmentStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float)
    frame_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    face_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    tracks: Mapped[list[Any] | None] = mapped_column(JSONB)  # track summaries, ids local to the segment
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Input statistics of the sampled frames (pipeline.quality.QualityStats as sums, so segments merge).
    quality: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("job_id", "segment_index"),
        CheckConstraint(f"status IN ({_values(SegmentStatus)})", name="status"),
    )


class Frame(Base):
    __tablename__ = "frames"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    segment_index: Mapped[int] = mapped_column(Integer)
    frame_index: Mapped[int] = mapped_column(Integer)  # frame number in the source video
    t: Mapped[float] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)  # None: no face in this frame
    faces: Mapped[list[Any]] = mapped_column(JSONB, default=list)  # [{box, det_score, track, score}]

    __table_args__ = (UniqueConstraint("job_id", "frame_index"),)


class Track(Base):
    """A face followed across frames, with ids global to the video (set when the job finishes)."""

    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    track_id: Mapped[int] = mapped_column(Integer)
    first_t: Mapped[float] = mapped_column(Float)
    last_t: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    faces: Mapped[int] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("job_id", "track_id"),)


class Batch(Base):
    """Many videos submitted as one request. ``jobs_finished`` is bumped in the transaction that
    ends each job, so exactly one of them sees the last one end and completes the batch."""

    __tablename__ = "batches"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(255))
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), default="running")
    jobs_total: Mapped[int] = mapped_column(Integer)
    jobs_finished: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now_column()
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('running', 'completed', 'canceled')", name="status"),
        CheckConstraint("jobs_finished >= 0 AND jobs_finished <= jobs_total", name="counters"),
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_batches_tenant_created", "tenant_id", text("created_at DESC"), text("id DESC")),
    )


class WebhookEndpoint(Base):
    """A tenant's receiver of events. The signing secret is needed in plaintext to sign, so it is
    kept encrypted (AES-GCM under WEBHOOK_SECRETS_KEY), never hashed; it is shown once."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(255))
    event_types: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    secret_hint: Mapped[str] = mapped_column(String(16))  # the first characters, to tell secrets apart
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = _now_column()


class CallbackSecret(Base):
    """The secret that signs a tenant's per-job and per-batch ``callback_url`` deliveries."""

    __tablename__ = "webhook_callback_secrets"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    secret_encrypted: Mapped[str] = mapped_column(Text)
    secret_hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = _now_column()


class WebhookDelivery(Base):
    """One event for one destination (the ``webhook-id``); its body is fixed when the event
    happens, so every attempt sends the same bytes. Written in the transaction that made the
    event (an outbox): a crash can delay a delivery, never lose it."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="SET NULL"), index=True
    )
    # "callback" (a job's or batch's callback_url, signed with the tenant's callback secret) or
    # "endpoint" (endpoint_id; null once the endpoint is deleted).
    destination: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(2048))  # the endpoint's URL or the callback_url, at event time
    event_type: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), index=True
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Attempts since the delivery was created or last redelivered: the position in the schedule.
    series_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a message was last sent for it, and until when a worker's claim on it holds.
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a redelivery was last asked for: another within WEBHOOK_REDELIVER_WINDOW_S is refused.
    redelivery_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = _now_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        CheckConstraint("destination IN ('callback', 'endpoint')", name="destination"),
        # The dispatcher scans only deliveries still to make.
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    )


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery: the log behind GET /v1/jobs/{id}/deliveries."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[float] = mapped_column(Float)
    remote_address: Mapped[str | None] = mapped_column(String(64))  # the address actually connected to
    status_code: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("delivery_id", "attempt"),)


class Explanation(Base):
    """A Grad-CAM heatmap of one face, stored as images next to the video. Each segment explains
    its most suspicious faces; at finalize the job's best ``EXPLAIN_TOP_K`` get a rank."""

    __tablename__ = "explanations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    segment_index: Mapped[int] = mapped_column(Integer)
    frame_index: Mapped[int] = mapped_column(Integer)
    face: Mapped[int] = mapped_column(SmallInteger)  # position in the frame's faces
    t: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    box: Mapped[list[Any]] = mapped_column(JSONB)
    heatmap_key: Mapped[str] = mapped_column(String(1024))
    crop_key: Mapped[str] = mapped_column(String(1024))
    rank: Mapped[int | None] = mapped_column(Integer)  # 1: the job's most suspicious face
    created_at: Mapped[datetime] = _now_column()

    __table_args__ = (
        UniqueConstraint("job_id", "frame_index", "face"),
        Index("ix_explanations_job_rank", "job_id", "rank"),
    )


class JobStatistics(Base):
    """One finished job's input statistics (what arrived) and output statistics (what the model
    said): the rows drift is computed from. Columns are named after ``core.drift.FEATURES``."""

    __tablename__ = "job_statistics"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    frames_sampled: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    faces: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    brightness_pct: Mapped[float | None] = mapped_column(Float)
    histogram_mean: Mapped[float | None] = mapped_column(Float)
    histogram_std: Mapped[float | None] = mapped_column(Float)
    histogram_variance: Mapped[float | None] = mapped_column(Float)
    sharpness: Mapped[float | None] = mapped_column(Float)
    face_sharpness: Mapped[float | None] = mapped_column(Float)
    face_size_px: Mapped[float | None] = mapped_column(Float)
    face_size_ratio: Mapped[float | None] = mapped_column(Float)
    faces_per_frame: Mapped[float | None] = mapped_column(Float)
    face_frame_ratio: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    fps: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)
    codec: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[str | None] = mapped_column(String(16))
    no_face: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    storage_key: Mapped[str | None] = mapped_column(String(1024))  # the same document as JSON in storage

    __table_args__ = (
        # Drift reads a time window, of every tenant or of one.
        Index("ix_job_statistics_finished_at", "finished_at"),
        Index("ix_job_statistics_tenant_finished_at", "tenant_id", "finished_at"),
    )


class HealthCheck(Base):
    """One call of GET /healthcheck/: what every dependency answered, kept for the record."""

    __tablename__ = "health_checks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    checked_at: Mapped[datetime] = _now_column()
    status: Mapped[str] = mapped_column(String(16))
    duration_ms: Mapped[float] = mapped_column(Float)
    checks: Mapped[dict[str, Any]] = mapped_column(JSONB)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))

    __table_args__ = (
        CheckConstraint("status IN ('healthy', 'degraded', 'unhealthy')", name="status"),
        Index("ix_health_checks_checked_at", text("checked_at DESC")),
    )
