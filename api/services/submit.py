"""Submitting a job: the request read, the job stored idempotently, its probe message sent.

The request is a multipart upload (streamed to storage) or JSON naming an ``s3://`` source or a
direct upload, or carrying a small image inline (``image_base64``). An ``Idempotency-Key`` sent
again with the same request returns the first job; with another request it is a conflict. A video
uploaded for a request that fails, or that replays an earlier one, is removed from storage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.body import receive_json_body, receive_multipart
from api.schemas.jobs import JobCreate, JobOptions
from api.services import images
from api.services.limits import ensure_in_flight_capacity
from api.services.sources import VideoDraft, resolve_source, resolve_upload
from api.services.webhooks import check_callback_url
from core.config import Settings
from core.errors import ConflictError, InvalidRequestError, UnsupportedMediaTypeError
from core.logs import log_event
from core.media import content_type_for
from core.models import Job, Upload, Video
from core.queue import enqueue_probe
from core.storage import ObjectStore, video_path
from lifecycle.job_rows import new_job_values
from lifecycle.jobs import mark_enqueued

__all__ = [
    "FORM_FIELDS",
    "create_job",
    "enqueue_job",
    "find_replay",
    "request_hash",
    "resolve_options",
    "submit_job",
]

log = logging.getLogger(__name__)

FORM_FIELDS = ("callback_url", "external_id", "sample_fps", "segment_seconds")


def request_hash(document: dict[str, Any]) -> str:
    """Hash of a request's meaning (not its bytes): key order and whitespace do not matter."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def resolve_options(options: JobOptions, settings: Settings) -> dict[str, float]:
    """The analysis options a job runs with: the request's, or the service's defaults, within bounds.
    The callback URL is checked here too, so a bad one is refused before storage is touched."""
    check_callback_url(options.callback_url, settings=settings)
    sample_fps = options.sample_fps if options.sample_fps is not None else settings.default_sample_fps
    segment_seconds = (
        options.segment_seconds if options.segment_seconds is not None else settings.default_segment_seconds
    )
    if not settings.min_sample_fps <= sample_fps <= settings.max_sample_fps:
        raise InvalidRequestError(
            f"sample_fps must be between {settings.min_sample_fps} and {settings.max_sample_fps}, "
            f"got {sample_fps:g}",
            code="invalid_option",
        )
    if not settings.min_segment_seconds <= segment_seconds <= settings.max_segment_seconds:
        raise InvalidRequestError(
            "segment_seconds must be between "
            f"{settings.min_segment_seconds} and {settings.max_segment_seconds}, got {segment_seconds:g}",
            code="invalid_option",
        )
    return {"sample_fps": float(sample_fps), "segment_seconds": float(segment_seconds)}


def _replay(job: Job, request_digest: str) -> Job:
    if job.request_hash != request_digest:
        raise ConflictError(
            "this Idempotency-Key was used with a different request", code="idempotency_key_reused"
        )
    return job


def _find_by_idempotency_key(session: Session, *, tenant_id: uuid.UUID, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key))


def find_replay(
    session: Session, *, tenant_id: uuid.UUID, idempotency_key: str | None, request_digest: str
) -> Job | None:
    """The job an earlier identical request made, None when the key is new, ConflictError when
    the key came with a different request."""
    if idempotency_key is None:
        return None
    existing = _find_by_idempotency_key(session, tenant_id=tenant_id, key=idempotency_key)
    return None if existing is None else _replay(existing, request_digest)


def create_job(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    draft: VideoDraft,
    options: JobOptions,
    settings: Settings,
    idempotency_key: str | None,
    request_digest: str,
    upload_id: uuid.UUID | None = None,
) -> tuple[Job, bool]:
    """Stores the video and job rows. Returns (job, created); an earlier job with the same
    Idempotency-Key and request comes back with created=False. Commits."""
    existing = find_replay(
        session, tenant_id=tenant_id, idempotency_key=idempotency_key, request_digest=request_digest
    )
    if existing is not None:
        return existing, False
    resolved = resolve_options(options, settings)
    ensure_in_flight_capacity(session, tenant_id=tenant_id, adding=1, settings=settings)
    video = Video(
        id=draft.video_id,
        tenant_id=tenant_id,
        storage_key=draft.storage_key,
        source_uri=draft.source_uri,
        owned=draft.owned,
        filename=draft.filename,
        size_bytes=draft.size_bytes,
        sha256=draft.sha256,
        container=draft.container,
    )
    job = Job(
        video=video,
        **new_job_values(
            tenant_id=tenant_id,
            video_id=video.id,
            container=draft.container,
            options=resolved,
            external_id=options.external_id,
            callback_url=options.callback_url,
            idempotency_key=idempotency_key,
            request_hash=request_digest,
        ),
    )
    session.add(job)
    if upload_id is not None:
        # Consumed only while it still points at the object the draft checked: a PUT that
        # finished in between stored another object, and this job must not run on either blindly.
        claimed = session.execute(
            update(Upload)
            .where(
                Upload.id == upload_id,
                Upload.tenant_id == tenant_id,
                Upload.consumed_at.is_(None),
                Upload.storage_key == draft.storage_key,
            )
            .values(consumed_at=datetime.now(UTC))
            .execution_options(synchronize_session=False)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            session.rollback()
            if session.scalar(
                select(Upload.id).where(
                    Upload.id == upload_id, Upload.tenant_id == tenant_id, Upload.consumed_at.is_(None)
                )
            ):
                raise ConflictError(
                    "the upload was replaced by a PUT while the job was being created; send the "
                    "request again",
                    code="upload_changed",
                )
            if idempotency_key is not None:  # a concurrent replay of this very request consumed it
                existing = _find_by_idempotency_key(session, tenant_id=tenant_id, key=idempotency_key)
                if existing is not None:
                    return _replay(existing, request_digest), False
            raise ConflictError("this upload already belongs to a job", code="upload_consumed")
    try:
        session.commit()
    except IntegrityError:
        # Two requests with one Idempotency-Key raced; the unique key let exactly one in.
        session.rollback()
        if idempotency_key is None:
            raise
        existing = _find_by_idempotency_key(session, tenant_id=tenant_id, key=idempotency_key)
        if existing is None:
            raise
        return _replay(existing, request_digest), False
    log_event(
        log,
        "job.create.succeeded",
        job_id=str(job.id),
        tenant_id=str(tenant_id),
        owned=draft.owned,
        size_bytes=draft.size_bytes,
    )
    return job, True


def enqueue_job(session: Session, celery: Celery, *, job: Job, settings: Settings) -> bool:
    """Sends the probe message. A broker outage is not the client's problem: the job row is
    stored, and the reconciler sends the message once the broker is back."""
    try:
        enqueue_probe(celery, job_id=job.id, timeout_s=settings.enqueue_timeout_s)
    except Exception as exc:  # kombu raises many types; the reconciler recovers all of them
        log_event(
            log,
            "job.enqueue.failed",
            level=logging.WARNING,
            job_id=str(job.id),
            error=f"{type(exc).__name__}: {exc}"[:300],
        )
        return False
    mark_enqueued(session, job_id=job.id)
    session.commit()
    return True


# --- reading the request -----------------------------------------------------------------------


async def submit_job(
    request: Request,
    *,
    celery: Celery,
    tenant_id: uuid.UUID,
    session: Session,
    settings: Settings,
    storage: ObjectStore,
    idempotency_key: str | None,
) -> tuple[Job, bool]:
    """Reads the request (multipart/form-data or JSON), stores the job and sends its probe message.
    Returns (job, created); a replay of an earlier request returns its job with created=False."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        read = _create_from_multipart
    elif media_type == "application/json" or media_type.endswith("+json"):
        read = _create_from_json
    else:
        raise UnsupportedMediaTypeError(
            "send multipart/form-data with a 'file' field, or application/json with 'source', "
            "'upload_id' or 'image_base64'",
            code="unsupported_content_type",
        )
    submission = _Submission(
        tenant_id=tenant_id,
        session=session,
        settings=settings,
        storage=storage,
        idempotency_key=idempotency_key,
    )
    job, created = await read(request, submission)
    if created:
        await run_in_threadpool(lambda: enqueue_job(session, celery, job=job, settings=settings))
    return job, created


@dataclass(frozen=True)
class _Submission:
    """Who submits, and where the job and its video go."""

    tenant_id: uuid.UUID
    session: Session
    settings: Settings
    storage: ObjectStore
    idempotency_key: str | None

    def create(
        self, draft: VideoDraft, options: JobOptions, digest: str, *, upload_id: uuid.UUID | None = None
    ) -> tuple[Job, bool]:
        return create_job(
            self.session,
            tenant_id=self.tenant_id,
            draft=draft,
            options=options,
            settings=self.settings,
            idempotency_key=self.idempotency_key,
            request_digest=digest,
            upload_id=upload_id,
        )


def _body_errors(exc: ValidationError) -> RequestValidationError:
    errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
    return RequestValidationError(errors)


async def _delete_quietly(storage: ObjectStore, key: str) -> None:
    try:
        await run_in_threadpool(storage.delete, key)
    except Exception as exc:  # best effort; an orphan object is logged, not fatal
        log_event(log, "job.upload.cleanup_failed", level=logging.WARNING, key=key, error=str(exc)[:300])


def _precheck_capacity(session: Session, *, tenant_id: uuid.UUID, settings: Settings) -> None:
    try:
        ensure_in_flight_capacity(session, tenant_id=tenant_id, adding=1, settings=settings, lock=False)
    finally:
        session.rollback()  # no transaction stays open during the upload


async def _create_from_multipart(request: Request, submission: _Submission) -> tuple[Job, bool]:
    session, settings, storage = submission.session, submission.settings, submission.storage
    if submission.idempotency_key is None:
        # Refuse before the upload rather than after it; create_job checks again under a lock.
        await run_in_threadpool(
            lambda: _precheck_capacity(session, tenant_id=submission.tenant_id, settings=settings)
        )
    video_id = uuid.uuid4()
    key = video_path(tenant_id=submission.tenant_id, video_id=video_id)
    form = await receive_multipart(
        request,
        open_writer=lambda container: storage.open_writer(key, content_type=content_type_for(container)),
        max_bytes=settings.max_upload_bytes,
        allowed_containers=settings.allowed_containers,
        allowed_fields=FORM_FIELDS,
    )
    if form.file is None:
        raise InvalidRequestError("send the video in a multipart field named 'file'", code="missing_file")
    received = form.file
    try:
        try:
            options = JobOptions.model_validate(form.fields)
        except ValidationError as exc:
            raise _body_errors(exc) from exc
        digest = request_hash(
            {
                "kind": "multipart",
                "options": options.model_dump(exclude_none=True),
                "file_sha256": received.sha256,
                "filename": received.filename,
            }
        )
        draft = VideoDraft(
            video_id=video_id,
            owned=True,
            storage_key=key,
            source_uri=None,
            filename=received.filename,
            size_bytes=received.size,
            sha256=received.sha256,
            container=received.container,
        )
        job, created = await run_in_threadpool(lambda: submission.create(draft, options, digest))
    except BaseException:
        await _delete_quietly(storage, key)
        raise
    if not created:  # a replay: the first request's copy is the one kept
        await _delete_quietly(storage, key)
    return job, created


async def _create_from_json(request: Request, submission: _Submission) -> tuple[Job, bool]:
    session, settings = submission.session, submission.settings
    body = await receive_json_body(
        request,
        max_bytes=images.json_body_limit(settings),
        too_large_message=images.json_body_limit_message(settings),
    )
    try:
        # Strict: JSON says what type a value is, so true is no number and "3" no rate (a
        # multipart form's fields are text, and are read as such).
        payload = JobCreate.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise _body_errors(exc) from exc
    document = payload.model_dump(mode="json", exclude_none=True)
    if payload.image_base64 is not None:  # the request's meaning is the picture, not its spelling
        image, image_format = images.decode_image_base64(payload.image_base64, settings=settings)
        document["image_base64"] = hashlib.sha256(image).hexdigest()
    digest = request_hash({"kind": "json", **document})
    replay = await run_in_threadpool(
        lambda: find_replay(
            session,
            tenant_id=submission.tenant_id,
            idempotency_key=submission.idempotency_key,
            request_digest=digest,
        )
    )
    if replay is not None:
        return replay, False
    # Options are checked before storage is touched.
    resolve_options(payload, settings)
    if payload.image_base64 is not None:
        return await _create_from_image(submission, payload, digest, image, image_format)
    if payload.source is not None:
        source = payload.source
        draft = await run_in_threadpool(lambda: resolve_source(source=source, settings=settings))
    else:
        assert payload.upload_id is not None
        upload_id = payload.upload_id
        draft = await run_in_threadpool(
            lambda: resolve_upload(
                session,
                tenant_id=submission.tenant_id,
                upload_id=upload_id,
                storage=submission.storage,
                settings=settings,
            )
        )
    try:
        job, created = await run_in_threadpool(
            lambda: submission.create(draft, payload, digest, upload_id=payload.upload_id)
        )
    except BaseException:
        if draft.superseded_key is not None and draft.storage_key is not None:
            await _delete_quietly(submission.storage, draft.storage_key)  # the job's copy, unused
        raise
    leftover = draft.superseded_key if created else draft.storage_key
    if draft.superseded_key is not None and leftover is not None:
        await _delete_quietly(submission.storage, leftover)
    return job, created


async def _create_from_image(
    submission: _Submission, payload: JobCreate, digest: str, image: bytes, image_format: str
) -> tuple[Job, bool]:
    """A JSON body's inline image: stored like an upload, then the job."""
    storage = submission.storage
    draft = await run_in_threadpool(
        lambda: images.store_image(storage, tenant_id=submission.tenant_id, data=image, fmt=image_format)
    )
    assert draft.storage_key is not None
    try:
        job, created = await run_in_threadpool(lambda: submission.create(draft, payload, digest))
    except BaseException:
        await _delete_quietly(storage, draft.storage_key)
        raise
    if not created:
        await _delete_quietly(storage, draft.storage_key)
    return job, created
