"""The API keys an API process has looked up lately, so a busy client's requests skip the read.

Only keys found live are kept, each for ``API_KEY_CACHE_S`` seconds from its lookup: a revoked key
or a deactivated tenant is refused by every process once that time has passed. Unknown keys are
never kept (guessing is limited per address instead), and the table is bounded.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from core.keys import hash_api_key
from core.models import ApiKey

__all__ = ["KeyCache"]

_MAX_KEYS = 4096


class KeyCache:
    """Live keys by their hash, each with the moment it must be read again; safe across threads."""

    def __init__(
        self, *, ttl_s: float, max_keys: int = _MAX_KEYS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_load(self, key: str, load: Callable[[str], ApiKey | None]) -> ApiKey | None:
        """The live key behind this plaintext (or key id): remembered if looked up less than the
        TTL ago, else ``load(key)`` (None for an unknown or revoked key, which is not remembered)."""
        if self._ttl_s <= 0:
            return load(key)
        digest = hash_api_key(key)
        now = self._clock()
        with self._lock:
            entry = self._keys.get(digest)
            if entry is not None:
                if entry[0] > now:
                    self._keys.move_to_end(digest)
                    return entry[1]
                del self._keys[digest]
        record = load(key)
        if record is not None:
            with self._lock:
                self._keys[digest] = (now + self._ttl_s, record)
                self._keys.move_to_end(digest)
                while len(self._keys) > self._max_keys:
                    self._keys.popitem(last=False)
        return record

    def __len__(self) -> int:
        return len(self._keys)
