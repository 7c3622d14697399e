"""The in-process tier: a least-recently-used map bounded in bytes.

Answers are kept as their JSON encoding, so the bound counts real bytes and
a caller mutating what it got back never changes the cached copy. The size
of an entry is its encoded body plus its key plus a fixed overhead per
entry; an answer larger than an eighth of the bound is not kept at all.
"""
import threading
from collections import OrderedDict

# Python object overhead per entry (tuple, dict slot, index set), counted
# so that many tiny entries cannot exceed the bound either.
ENTRY_OVERHEAD = 256


class MemoryTier:
    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items = OrderedDict()    # EntryKey -> (body bytes, stored_at, size)
        self._owners = {}              # EntryKey.owner -> {EntryKey}
        self._lock = threading.Lock()

    def __len__(self):
        return len(self._items)

    def get(self, key, not_before):
        """(body, stored_at) of `key` if stored at or after `not_before`, else None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[1] < not_before:
                self._drop(key)
                return None
            self._items.move_to_end(key)
            return item[0], item[1]

    def put(self, key, body, stored_at):
        size = len(body) + key.size() + ENTRY_OVERHEAD
        with self._lock:
            if key in self._items:
                self._drop(key)
            if size > self.max_bytes // 8:
                return False
            self._items[key] = (body, stored_at, size)
            self._owners.setdefault(key.owner, set()).add(key)
            self.bytes += size
            while self.bytes > self.max_bytes:
                self._drop(next(iter(self._items)))
            return True

    def drop_owner(self, owner):
        """Forget every lookup of one (provider, value), any credential, any kind."""
        with self._lock:
            for key in list(self._owners.get(owner, ())):
                self._drop(key)

    def clear(self):
        with self._lock:
            self._items.clear()
            self._owners.clear()
            self.bytes = 0

    def _drop(self, key):
        _, _, size = self._items.pop(key)
        self.bytes -= size
        keys = self._owners.get(key.owner)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._owners[key.owner]
