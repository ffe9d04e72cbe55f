"""Still images through the whole pipeline and `deepfakestream analyze photo.jpg`: the face found
upright, one frame, the JSON's image form, the report without a chart, typed exits for the rest."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pipeline
from core.cli import main
from tests.utils.images import astronaut, bomb_png, encode, flat_grey_png, rotated_jpeg

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "photo.jpg"
    path.write_bytes(rotated_jpeg(astronaut()))
    return path


def _with_alpha(pixels: np.ndarray) -> np.ndarray:
    """RGBA: opaque, but for a transparent band along the bottom."""
    rgba = np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])
    rgba[-80:, :, 3] = 0
    return rgba


def _upright_face(box: list[float]) -> None:
    """The astronaut's face in the 384×512 portrait: upper half, middle third."""
    x1, y1, x2, y2 = box
    assert 0 <= x1 < x2 <= 384 and 0 <= y1 < y2 <= 512, box
    assert y2 < 320 and 60 < (x1 + x2) / 2 < 320, box
    assert 50 < x2 - x1 < 250, box


def test_cli_analyses_a_photo_with_json_and_report(
    photo: Path, random_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_html = tmp_path / "photo.json", tmp_path / "photo.html"

    code = main(["analyze", str(photo), "--model", str(random_checkpoint), "--json", str(out_json),
                 "--report", str(out_html), "--no-progress"])  # fmt: skip

    captured = capsys.readouterr()
    assert code == 0, captured.err
    words = "Signs of manipulation|No signs of manipulation found by this model|Inconclusive"
    assert re.search(rf"^photo\.jpg: ({words})  \(P\(fake\) 0\.\d{{3}}", captured.out, re.MULTILINE)
    assert "  image   384×512, jpeg" in captured.out
    assert "1 in 1 of 1 sampled frames" in captured.out
    doc = json.loads(out_json.read_text())
    assert doc["media_type"] == "image" and doc["verdict"] in ("fake", "real", "inconclusive")
    (face,) = doc["faces"]
    assert set(face) == {"box", "det_score", "score"} and face["det_score"] > 0.95
    assert face["score"] == pytest.approx(doc["score"], abs=1e-4)  # one face: it is the image's score
    _upright_face(face["box"])
    assert len(doc["frames"]) == 1 and len(doc["segments"]) == 1
    assert doc["video"]["width"] == 384 and doc["video"]["height"] == 512
    report = out_html.read_text()
    assert "<th>Image</th><td>384×512, jpeg</td>" in report
    assert "<circle" not in report and "Score over time" not in report
    assert report.count('src="data:image/jpeg;base64,') >= 1
    # One picture has no course over time: no tracks from 0.00 to 0.00 s, no segment table.
    assert "Face tracks" not in report and "<h2>Segments</h2>" not in report and "0.00 s" not in report
    assert "<tr><th>Faces</th><td>1 in the picture</td></tr>" in report


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("cmyk.jpg", lambda p: encode(Image.fromarray(p).convert("CMYK"), "JPEG", quality=92)),
        ("alpha.png", lambda p: encode(Image.fromarray(_with_alpha(p)), "PNG")),
        ("photo.webp", lambda p: encode(Image.fromarray(p), "WEBP", quality=90)),
        ("palette.gif", lambda p: encode(Image.fromarray(p).quantize(colors=256), "GIF")),
    ],
    ids=["cmyk-jpeg", "rgba-png", "webp", "palette-gif"],
)
def test_every_format_finds_the_face(
    random_checkpoint: Path, tmp_path: Path, name: str, make: object
) -> None:
    path = tmp_path / name
    path.write_bytes(make(astronaut()))  # type: ignore[operator]

    result = pipeline.analyze(path, model_path=random_checkpoint, device="cpu")

    assert result.video.media_type == "image"
    (frame,) = result.frames
    assert len(frame.faces) == 1, name
    _upright_face(list(frame.faces[0].box))


def test_a_one_frame_video_is_an_image(random_checkpoint: Path, tmp_path: Path) -> None:
    still = tmp_path / "still.png"
    Image.fromarray(astronaut()).save(still)
    video = tmp_path / "one-frame.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(still), "-frames:v", "1", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(video)], check=True)  # fmt: skip

    result = pipeline.analyze(video, model_path=random_checkpoint, device="cpu")
    doc = result.to_dict()

    assert result.video.media_type == "image" and result.video.codec == "h264"
    assert doc["media_type"] == "image" and len(doc["faces"]) == 1
    _upright_face(doc["faces"][0]["box"])


@pytest.mark.parametrize(
    ("kind", "exit_code", "error_code"),
    [
        ("animated", 5, "animated_image"),
        ("bomb", 8, "image_too_large"),
        ("line", 8, "image_too_large"),
        ("truncated", 7, "corrupt_image"),
    ],
)
def test_bad_images_exit_with_their_code(
    random_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    kind: str, exit_code: int, error_code: str,
) -> None:  # fmt: skip
    pixels = astronaut()
    if kind == "animated":
        path = tmp_path / "animated.gif"
        frames = [Image.fromarray(pixels), Image.fromarray(pixels[:, ::-1].copy())]
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=80, loop=0)
    elif kind == "bomb":
        path = bomb_png(tmp_path / "bomb.png")
    elif kind == "line":
        path = flat_grey_png(tmp_path / "line.png", width=49_999_999, height=1)  # under the pixel cap
    else:
        path = tmp_path / "truncated.jpg"
        path.write_bytes(encode(Image.fromarray(pixels), "JPEG")[:3000])

    assert main(["analyze", str(path), "--model", str(random_checkpoint)]) == exit_code

    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error [{error_code}]: "), captured.err
    assert captured.out == ""
