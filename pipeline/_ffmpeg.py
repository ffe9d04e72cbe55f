"""ffmpeg and ffprobe as child processes: found on the PATH, stopped without hanging the caller."""

from __future__ import annotations

import shutil
import subprocess

from pipeline.errors import PipelineError

__all__ = ["ffmpeg_binary", "stop_process"]


def ffmpeg_binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PipelineError(f"{name} is not installed (Debian: apt-get install ffmpeg)",
                            code="ffmpeg_missing")
    return found


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """terminate → wait → kill: ffmpeg gets a chance to exit cleanly, but never hangs the caller."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
