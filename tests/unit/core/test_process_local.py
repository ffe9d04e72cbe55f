"""core.process_local: one client per process and arguments, a new one after fork."""

from __future__ import annotations

import os

import pytest

from core.process_local import per_process


def test_built_once_per_arguments() -> None:
    calls: list[str] = []

    @per_process
    def client(url: str, *, timeout_s: float = 1.0) -> object:
        calls.append(url)
        return object()

    first = client("a")
    assert client("a") is first
    assert client("b") is not first
    assert client("a", timeout_s=2.0) is not first
    assert calls == ["a", "b", "a"]
    client.cache_clear()
    assert client("a") is not first


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_builds_its_own() -> None:
    @per_process
    def client() -> int:
        return os.getpid()

    assert client() == os.getpid()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: reports whether it built a client of its own
        os.close(read)
        os.write(write, b"1" if client() == os.getpid() else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert client() == os.getpid()
