"""`deepfakestream analyze`: JSON shape, report, untrained-model rules and one-line exit codes."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest
from PIL import Image

from core.cli import main
from tests.conftest import make_random_checkpoint
from tests.utils.images import astronaut, encode
from tests.utils.media import FaceVideo, make_bad_media

pytestmark = pytest.mark.integration

EXIT_CODES = {
    "text": (5, "not_a_video"),
    "image_as_mp4": (5, "not_a_video"),
    "empty": (4, "empty_file"),
    "truncated": (7, "corrupt_video"),
    "corrupt_header": (7, "corrupt_video"),
    "audio_only": (6, "no_video_stream"),
    "absurd_resolution": (8, "limit_exceeded"),
    "absurd_duration": (8, "limit_exceeded"),
}


def _one_error_line(stderr: str, code: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error [{code}]: "), lines[0]
    assert "Traceback" not in stderr


def test_json_report_and_summary(
    long_video: FaceVideo, random_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_html = tmp_path / "out" / "result.json", tmp_path / "report.html"
    code = main(["analyze", str(long_video.path), "--model", str(random_checkpoint), "--json", str(out_json),
                 "--report", str(out_html), "--segment-seconds", "2", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = captured.out.splitlines()
    assert summary[0].startswith("UNTRAINED MODEL")
    verdict = r"(Signs of manipulation|No signs of manipulation found by this model)"
    assert re.match(rf"long\.mp4: {verdict}  \(P\(fake\) 0\.\d{{3}}, threshold 0\.500\)$", summary[1])
    assert summary[2].startswith("  why     The video's score is the average")
    assert "15 in 15 of 15 sampled frames, 1 track(s), 3 segment(s)" in captured.out
    assert "real-time factor" in captured.out
    assert "UNTRAINED MODEL" in captured.err

    doc = json.loads(out_json.read_text())
    assert set(doc) >= {
        "verdict", "score", "model", "video", "segments", "frames", "tracks", "timings", "rtf"
    }
    assert doc["verdict"] in ("fake", "real") and 0 < doc["score"] < 1
    assert doc["verdict_label"] in ("Signs of manipulation", "No signs of manipulation found by this model")
    assert doc["inconclusive_band"] is None and doc["aggregation"] == "mean" and doc["caveat"] is None
    assert doc["explanation"].startswith("The video's score is the average")
    assert doc["settings"]["segment_seconds"] == 2.0 and doc["settings"]["aggregation"] == "mean"
    assert doc["model"]["trained"] is False
    assert set(doc["model"]) == {"name", "version", "sha256", "trained"}
    assert doc["video"] == {"duration_s": pytest.approx(5.0, abs=0.05), "fps": 25.0, "width": 640,
                            "height": 360, "codec": "h264"}
    assert [s["index"] for s in doc["segments"]] == [0, 1, 2]
    assert set(doc["segments"][0]) == {"index", "start_s", "end_s", "score", "frames", "faces"}
    assert doc["segments"][0]["frames"] == 6 and doc["segments"][0]["faces"] == 6
    assert len(doc["frames"]) == 15
    frame = doc["frames"][3]
    assert set(frame) == {"index", "t", "score", "faces"} and frame["index"] == 25
    face = frame["faces"][0]
    assert set(face) == {"box", "det_score", "track", "score"} and len(face["box"]) == 4
    assert face["track"] == 1
    assert [set(t) >= {"id", "first_t", "last_t", "score"} for t in doc["tracks"]] == [True]
    assert set(doc["timings"]) == {"probe_s", "decode_s", "detect_s", "classify_s", "total_s"}
    assert doc["rtf"] == pytest.approx(doc["timings"]["total_s"] / doc["video"]["duration_s"], rel=0.01)

    report = out_html.read_text()
    assert report.startswith("<!DOCTYPE html>")
    assert "UNTRAINED MODEL" in report
    # One point per sampled frame, in each of the chart's two drawings (desktop and phone).
    assert "<svg" in report and report.count("<circle") == 2 * 15
    assert report.count('src="data:image/jpeg;base64,') >= 3
    # Provenance: the input's name, size and SHA-256, and the settings used.
    assert hashlib.sha256(long_video.path.read_bytes()).hexdigest() in report
    assert "long.mp4, " in report and f"({long_video.path.stat().st_size} bytes)" in report
    assert "segment_seconds 2.0" in report
    assert "http://" not in report.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in report


@pytest.mark.parametrize("kind", sorted(EXIT_CODES))
def test_bad_input_exits_with_its_code_and_one_line(
    kind: str, random_checkpoint: Path, media_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_bad_media(kind, media_dir / f"cli-{kind}.mp4")
    exit_code, error_code = EXIT_CODES[kind]
    assert main(["analyze", str(path), "--model", str(random_checkpoint)]) == exit_code
    captured = capsys.readouterr()
    _one_error_line(captured.err, error_code)
    assert captured.out == ""


def test_missing_file_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(tmp_path / "nope.mp4")]) == 3
    _one_error_line(capsys.readouterr().err, "file_not_found")


def test_refuses_without_a_trained_model(
    long_video: FaceVideo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pipeline.model

    monkeypatch.setattr(pipeline.model, "DEFAULT_MODEL_PATH", tmp_path / "models" / "absent.safetensors")
    assert main(["analyze", str(long_video.path)]) == 9
    captured = capsys.readouterr()
    _one_error_line(captured.err, "model_not_found")
    assert "--model" in captured.err
    assert captured.out == ""


def test_bad_model_file_exits_9(
    long_video: FaceVideo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_model = tmp_path / "model.safetensors"
    fake_model.write_text("not weights")
    assert main(["analyze", str(long_video.path), "--model", str(fake_model)]) == 9
    _one_error_line(capsys.readouterr().err, "model_invalid")
    pickled = tmp_path / "model.pt"
    pickled.write_bytes(b"\x80\x04K\x01.")
    assert main(["analyze", str(long_video.path), "--model", str(pickled)]) == 9
    _one_error_line(capsys.readouterr().err, "model_untrusted_format")


def test_bad_options_exit_2(long_video: FaceVideo, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(long_video.path), "--sample-fps", "0"]) == 2
    _one_error_line(capsys.readouterr().err, "usage")
    assert main(["analyze", str(long_video.path), "--sample-fps", "60"]) == 2  # past the API's 30
    assert "between 0.1 and 30" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["analyze", str(long_video.path), "--device", "tpu"])
    assert caught.value.code == 2


def test_console_script_json_to_stdout_and_clean_errors(
    no_face_video: FaceVideo, random_checkpoint: Path, media_dir: Path
) -> None:
    script = Path(sys.executable).with_name("deepfakestream")
    assert script.exists(), "the console script is installed by pip install -e ."
    done = subprocess.run([str(script), "analyze", str(no_face_video.path), "--model", str(random_checkpoint),
                           "--json", "-"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["verdict"] == "no_face" and doc["score"] is None and doc["tracks"] == []
    bad = make_bad_media("text", media_dir / "script-text.mp4")
    done = subprocess.run([str(script), "analyze", str(bad)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 5
    _one_error_line(done.stderr, "not_a_video")


CAVEAT = "Trained on test faces only; it misses everything that matters."


def test_summary_says_inconclusive_with_the_band_model_and_caveat(
    two_faces_video: FaceVideo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = make_random_checkpoint(
        tmp_path / "banded.safetensors",
        inconclusive_band=(0.0, 1.0),
        caveat=CAVEAT,
        name="banded",
        version="2.1",
    )
    out_json = tmp_path / "result.json"
    code = main(["analyze", str(two_faces_video.path), "--model", str(model), "--json", str(out_json)])
    captured = capsys.readouterr()
    assert code == 0, captured.err

    lines = captured.out.splitlines()
    band = r"threshold 0\.500, inconclusive 0\.000–1\.000"
    assert re.match(rf"two-faces\.mp4: Inconclusive  \(P\(fake\) 0\.\d{{3}}, {band}\)$", lines[1]), lines[1]
    assert "inside the inconclusive band 0.000–1.000" in lines[2]
    assert any(line.startswith("  model   banded 2.1, loaded in") for line in lines)
    assert lines[-1] == f"  caveat  {CAVEAT}"
    doc = json.loads(out_json.read_text())
    assert doc["verdict"] == "inconclusive" and doc["verdict_label"] == "Inconclusive"
    assert doc["inconclusive_band"] == [0.0, 1.0] and doc["caveat"] == CAVEAT
    # Not a terminal: nothing but the untrained-model warning on stderr.
    assert captured.err.strip() == "warning: UNTRAINED MODEL: scores come from random weights"


def _read_all(fd: int, sink: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal closed
            return
        if not chunk:
            return
        sink.append(chunk)


def _analyze_on_a_terminal(media: Path, checkpoint: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """``deepfakestream analyze`` with its stderr on a pseudo-terminal; the run and what it showed."""
    script = Path(sys.executable).with_name("deepfakestream")
    controller, terminal = pty.openpty()
    # A terminal 100 columns wide, as a person's would be (a bare pty has no size at all).
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    output: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(controller, output), daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            [str(script), "analyze", str(media), "--model", str(checkpoint)],
            stdout=subprocess.PIPE, stderr=terminal, text=True, timeout=300, check=False,
        )
    finally:
        os.close(terminal)
        reader.join(timeout=10)
        os.close(controller)
    return done, b"".join(output).decode(errors="replace")


def test_terminal_is_told_what_happens_and_sees_frames_progress_on_a_short_video(
    no_face_video: FaceVideo, random_checkpoint: Path
) -> None:
    done, shown = _analyze_on_a_terminal(no_face_video.path, random_checkpoint)

    assert done.returncode == 0, shown
    # In order: what it is doing before the first frame, then a bar counted in frames (one
    # 2-second segment at 3 frames per second: 6 of them).
    assert shown.index("reading the video") < shown.index("loading the model") < shown.index("analysing")
    assert "/6 [" in shown and "frame" in shown
    assert "No face found" in done.stdout and "Try a clip" in done.stdout


def test_terminal_is_told_a_photo_is_read_as_an_image(random_checkpoint: Path, tmp_path: Path) -> None:
    photo = tmp_path / "portrait.jpg"
    photo.write_bytes(encode(Image.fromarray(astronaut()), "JPEG", quality=90))

    done, shown = _analyze_on_a_terminal(photo, random_checkpoint)

    assert done.returncode == 0, shown
    assert shown.index("reading the image") < shown.index("loading the model") < shown.index("analysing")
    assert "reading the video" not in shown
