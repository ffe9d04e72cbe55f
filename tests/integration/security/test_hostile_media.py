"""Hostile media: a corpus generated here (truncated, corrupt header, zero bytes, 0×0 and
20000×20000 frames, durations that lie, audio only, an image or a text file named .mp4, single
frames, one keyframe in 80 s) and hostile file names (path traversal, bytes that are not UTF-8,
control characters, names too long for a file system). Each ends as a typed 4xx or as a failed
job with an error code, never a 5xx, never a retry loop, and the worker goes on; decoding stays
within its caps. Unusual but valid videos (variable frame rates, several video streams, a crowd
in every frame) are analysed."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.models import Frame, Job
from pipeline.decode import decode_segment
from pipeline.errors import DecodeTimeoutError
from pipeline.media_source import open_media_source
from pipeline.plan import plan_segments
from pipeline.types import AnalysisConfig
from tests.utils.bad_media import VALID_HOSTILE_MEDIA_KINDS, make_hostile_media
from tests.utils.media import FaceVideo, make_face_video
from tests.utils.stack import PrivateStack

pytestmark = pytest.mark.integration

# kind → (HTTP status at upload, or 202 and the job's end: "succeeded" or the error codes allowed)
REFUSED_AT_UPLOAD = {
    "text": (415, "unsupported_format"),
    "image_as_mp4": (415, "unsupported_format"),
    "empty": (422, "empty_file"),
}
FAILED_JOBS = {
    "truncated": {"corrupt_video", "decode_failed"},
    "corrupt_header": {"corrupt_video", "not_a_video"},
    "audio_only": {"no_video_stream"},
    "absurd_resolution": {"limit_exceeded"},
    "absurd_duration": {"limit_exceeded"},
    "zero_size_frames": {"corrupt_video"},
    "claims_20000_frames": {"corrupt_video"},
    "claims_16k_frames": {"limit_exceeded"},
    "claims_ten_hours": {"limit_exceeded"},
    "container_claims_ten_hours": {"limit_exceeded"},
    "sparse_keyframes": {"sparse_keyframes"},
}

# One picture in a video container is a still picture: analysed as an image job (no face in it).
IMAGE_JOBS = ("single_frame_image", "single_frame_video")


def _frames(stack: PrivateStack, job_id: str) -> int:
    with stack.session() as session:
        query = select(func.count()).select_from(Frame).where(Frame.job_id == uuid.UUID(job_id))
        return int(session.scalar(query) or 0)


def test_bad_media_corpus_gets_typed_errors(
    security_stack: PrivateStack, face_clip: FaceVideo, tmp_path: Path
) -> None:
    stack = security_stack
    headers = stack.new_key()
    tried = 0
    for kind, (status, code) in REFUSED_AT_UPLOAD.items():
        response = stack.post_video(headers, make_hostile_media(kind, tmp_path / f"{kind}.mp4"))
        tried += 1
        assert response.status_code == status, f"{kind}: {response.text}"
        assert response.json()["error"]["code"] == code, f"{kind}: {response.text}"

    jobs = {}
    for kind in FAILED_JOBS:
        path = make_hostile_media(kind, tmp_path / f"{kind}.mp4")
        jobs[kind] = stack.submit(headers, path)["id"]
        tried += 1
    images = {kind: stack.submit(headers, make_hostile_media(kind, tmp_path / f"{kind}.mp4"))["id"]
              for kind in IMAGE_JOBS}
    tried += len(images)
    ended = {kind: stack.wait_job(headers, job_id, timeout_s=300) for kind, job_id in jobs.items()}
    healthy = stack.wait_job(headers, stack.submit(headers, face_clip.path)["id"])
    for kind, job_id in images.items():
        job = stack.wait_job(headers, job_id, timeout_s=300)
        assert (job["status"], job["media_type"], job["verdict"]) == ("succeeded", "image", "no_face"), job
        assert _frames(stack, job_id) == 1, kind

    problems = []
    for kind, codes in FAILED_JOBS.items():
        job = ended[kind]
        if job["status"] != "failed" or job["error"]["code"] not in codes or not job["error"]["message"]:
            problems.append(f"{kind}: {job['status']} {job.get('error')}")
        elif job["attempts"] != 1:  # input errors are never retried
            problems.append(f"{kind}: {job['attempts']} attempts")
    assert not problems, "\n".join(problems)
    assert "10.0 h" in ended["container_claims_ten_hours"]["error"]["message"]
    assert all(_frames(stack, job_id) == 0 for job_id in jobs.values())  # nothing was decoded
    assert healthy["status"] == "succeeded"
    assert stack.workers[0].alive()
    assert tried == len(REFUSED_AT_UPLOAD) + len(FAILED_JOBS) + len(IMAGE_JOBS)


def test_unusual_but_valid_media_is_analysed(security_stack: PrivateStack, tmp_path: Path) -> None:
    stack = security_stack
    headers = stack.new_key()
    jobs = {}
    for kind in VALID_HOSTILE_MEDIA_KINDS:
        path = make_hostile_media(kind, tmp_path / f"{kind}.mp4")
        jobs[kind] = stack.submit(headers, path, sample_fps="3")["id"]
    ended = {kind: stack.wait_job(headers, job_id, timeout_s=300) for kind, job_id in jobs.items()}
    failed = [f"{kind}: {job['status']} {job.get('error')}" for kind, job in ended.items()
              if job["status"] != "succeeded"]
    assert not failed, "\n".join(failed)

    faces: dict[str, list[int]] = {}
    times: dict[str, list[float]] = {}
    with stack.session() as session:
        for kind, job_id in jobs.items():
            query = select(Frame.t, Frame.faces).where(Frame.job_id == uuid.UUID(job_id))
            rows = session.execute(query.order_by(Frame.frame_index)).all()
            times[kind] = [float(t) for t, _ in rows]
            faces[kind] = [len(frame_faces) for _, frame_faces in rows]
    # 30 then 15 fps over 4 s: sampled three times a second to the end, one face each time.
    for kind in ("variable_frame_rate_webm", "variable_frame_rate_mkv"):
        assert len(times[kind]) == 11 and times[kind][-1] > 3.3 and faces[kind] == [1] * 11, kind
    # The face stream of two, whichever comes first in the file (the stream index travels with the job).
    assert faces["small_stream_first"] == faces["still_stream_first"] == [1] * 6
    # 50 faces in each frame, the 16 largest analysed.
    assert faces["many_faces"] == [16] * 6


HOSTILE_NAMES: dict[str, bytes] = {
    "parent_dirs": b"../../../../../tmp/dfs-escape.mp4",
    "windows_parent_dirs": b"..\\..\\..\\dfs-escape.mp4",
    "absolute": b"/etc/dfs-escape.mp4",
    "dot_dot": b"..",
    "not_utf8": b"\xff\xfe\xfd-clip.mp4",
    "control_chars": b"bad\x00\x07name\x1b[31m\t.mp4",
    "too_long_for_a_file_system": ("\u00e9" * 250 + ".mp4").encode(),
}


def _multipart(filename: bytes, data: bytes) -> tuple[bytes, str]:
    """A multipart body with the file name's raw bytes (clients do not all send UTF-8)."""
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"".encode()
        + filename.replace(b'"', b"")
        + b"\"\r\nContent-Type: video/mp4\r\n\r\n"
    )
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
def test_hostile_file_names_are_harmless(
    security_stack: PrivateStack, face_clip: FaceVideo, case: str
) -> None:
    stack = security_stack
    headers = stack.new_key()
    body, content_type = _multipart(HOSTILE_NAMES[case], face_clip.path.read_bytes())
    with stack.client(headers) as client:
        created = client.post("/v1/jobs", content=body, headers={"Content-Type": content_type})
    assert created.status_code == 202, created.text

    job = stack.wait_job(headers, created.json()["id"])

    assert job["status"] == "succeeded", job
    name = job["video"]["filename"]
    assert name is None or ("/" not in name and "\\" not in name and name not in (".", ".."))
    assert name is None or not any(ord(char) < 32 or ord(char) == 127 for char in name)
    # Storage keys come from ids alone: the name shapes none of them.
    with stack.session() as session:
        stored = session.get(Job, uuid.UUID(job["id"]))
        assert stored is not None
        video_dir = f"{stack.settings.storage_prefix}videos/{stored.tenant_id}/{stored.video_id}/"
    keys = stack.stored_keys(f"videos/{stored.tenant_id}/")
    assert f"{video_dir}source" in keys
    assert all(key.startswith(video_dir) and ".." not in key for key in keys), keys
    assert not Path("/tmp/dfs-escape.mp4").exists() and not Path("/etc/dfs-escape.mp4").exists()


def test_file_name_breaking_the_part_header_is_422(
    security_stack: PrivateStack, face_clip: FaceVideo
) -> None:
    stack = security_stack
    headers = stack.new_key()
    body, content_type = _multipart(b"bad\r\nX-Injected: yes\r\n.mp4", face_clip.path.read_bytes())
    with stack.client(headers) as client:
        refused = client.post("/v1/jobs", content=body, headers={"Content-Type": content_type})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "invalid_multipart"
    assert stack.stored_keys(f"videos/{stack.tenant_id(headers)}/") == set()


def test_decoding_stops_at_its_time_cap(tmp_path: Path) -> None:
    video = make_face_video(tmp_path / "long.mp4", seconds=6.0, width=640, height=360, fps=30.0)
    config = AnalysisConfig(sample_fps=30.0, segment_seconds=6.0, max_frames=180, decode_timeout_s=0.05)
    info = open_media_source(video.path, config).info
    plan = plan_segments(info, config)[0]

    started = time.monotonic()
    with pytest.raises(DecodeTimeoutError) as raised:
        decode_segment(video.path, info, plan, config)
    elapsed = time.monotonic() - started

    assert raised.value.code == "decode_timeout" and raised.value.retryable
    assert elapsed < 10
    leftover = subprocess.run(["pgrep", "-f", str(video.path)], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", "ffmpeg was left running"
