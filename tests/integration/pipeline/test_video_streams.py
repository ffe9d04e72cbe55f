"""Files with several video streams: the probe's choice is the stream decoded."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.analyzer import Analyzer
from pipeline.decode import decode_segment
from pipeline.media_source import open_media_source
from pipeline.plan import plan_segments
from tests.utils.bad_media import make_hostile_media
from tests.utils.media import read_frame_code

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "kind",
    [
        "small_stream_first",  # a 64×64 pattern, then the 320×240 face video (MP4)
        "still_stream_first",  # one 640×480 MJPEG picture, then the face video (MKV)
    ],
)
def test_the_face_stream_is_probed_and_decoded_whatever_comes_first(
    kind: str, media_dir: Path, analyzer: Analyzer
) -> None:
    path = make_hostile_media(kind, media_dir / f"{kind}.mp4")
    info = open_media_source(path).info
    assert (info.width, info.height) == (320, 240)
    assert info.duration_s == pytest.approx(2.0, abs=0.05) and info.fps == pytest.approx(25.0)
    for plan in plan_segments(info):
        times, frames = decode_segment(path, info, plan)
        assert frames.shape == (len(plan.frame_times), 240, 320, 3)
        assert [read_frame_code(f) for f in frames] == [round(t * 25) for t in times]
    assert info.stream_index == 1  # stored with the job: the segments decode the same stream

    result = analyzer.analyze(path)
    assert [len(frame.faces) for frame in result.frames] == [1] * 6
