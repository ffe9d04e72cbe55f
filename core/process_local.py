"""Clients that belong to one process: built on first use, built again in a forked child.

A pool of sockets (a database engine, a Redis or S3 client, a Celery producer) must not cross
``fork()``: parent and child would read each other's answers on the shared sockets. An accessor
made by ``per_process`` keys what it built by the process id as well as by its arguments, so a
child never sees its parent's client and builds its own on first use.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Hashable
from typing import Generic, ParamSpec, TypeVar

__all__ = ["PerProcess", "per_process"]

P = ParamSpec("P")
T = TypeVar("T")


class PerProcess(Generic[P, T]):
    """``factory``'s result for these arguments in this process (arguments must be hashable)."""

    def __init__(self, factory: Callable[P, T]) -> None:
        self._factory = factory
        # The parent's clients stay referenced in a child, never closed there: closing them would
        # close sockets the parent still uses.
        self._built: dict[tuple[int, tuple[Hashable, ...], frozenset[tuple[str, Hashable]]], T] = {}
        functools.update_wrapper(self, factory)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        key = (os.getpid(), args, frozenset(kwargs.items()))
        try:
            return self._built[key]
        except KeyError:
            # Two threads may both build; both then use the first one stored.
            return self._built.setdefault(key, self._factory(*args, **kwargs))

    def cache_clear(self) -> None:
        """Forgets every client built so far (tests)."""
        self._built.clear()


def per_process(factory: Callable[P, T]) -> PerProcess[P, T]:
    """Decorates ``factory`` into its per-process cached accessor."""
    return PerProcess(factory)
