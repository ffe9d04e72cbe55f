"""File-name hygiene of uploaded videos (a display name only: storage keys never use it)."""

from __future__ import annotations

import pytest

from api.body import sanitize_filename


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("clip.mp4", "clip.mp4"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\v.mov", "v.mov"),
        ("bad\x00name\n.mp4", "badname.mp4"),
        ("..", None),
        ("", None),
        ("x" * 400, "x" * 255),
    ],
)
def test_sanitize_filename(raw: str, expected: str | None) -> None:
    assert sanitize_filename(raw) == expected
