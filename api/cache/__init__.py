"""Upstream answers cached per (provider, credential, observable, kind of lookup).

Two tiers: an in-process LRU bounded in bytes (`memory`), and, when
RELAY_CACHE_TABLE names a DynamoDB table, a shared tier every Lambda
container of the deployment reads and writes (`dynamo`). Lookups go memory
-> table -> upstream; an upstream answer is written to both. Only answers
are stored: a call that raised (error, timeout, 429) stores nothing.

Settings: RELAY_CACHE_TTL seconds (default 300, 0 = off; a module may set it
by JWT claim), RELAY_CACHE_BYTES for the in-process bound (default 64 MiB),
RELAY_CACHE_TABLE (default none: in-process only).
"""
import json
import threading
import time

from api.cache import keys
from api.cache.memory import MemoryTier

TTL_SETTING = "RELAY_CACHE_TTL"
DEFAULT_TTL = 300
MAX_TTL = 86400
DEFAULT_BYTES = 64 * 1024 * 1024
MIN_BYTES = 64 * 1024

_lock = threading.Lock()
_memory = MemoryTier(DEFAULT_BYTES)
_MISSING = object()


def ttl(ctx):
    """RELAY_CACHE_TTL of this request (strict: a bad claim is `invalid argument`)."""
    return ctx.settings.setting_int(TTL_SETTING, DEFAULT_TTL, minimum=0, maximum=MAX_TTL)


def memory(ctx=None):
    """The in-process tier, its bound following RELAY_CACHE_BYTES."""
    if ctx is not None:
        _memory.max_bytes = ctx.settings.get_int("RELAY_CACHE_BYTES", DEFAULT_BYTES,
                                                 minimum=MIN_BYTES)
    return _memory


def shared(ctx):
    """The DynamoDB tier when RELAY_CACHE_TABLE is set and reachable, else None."""
    name = ctx.settings.get_str("RELAY_CACHE_TABLE")
    if not name:
        return None
    from api.cache import dynamo

    return dynamo.tier(ctx, name)


def _encode(answer):
    return json.dumps(answer, separators=(",", ":")).encode()


def _key(ctx, provider, kind, value, scope):
    return keys.EntryKey(provider, keys.credential_tag(ctx, provider, *scope), value, kind)


def _get(ctx, key, seconds):
    """The cached answer of `key` no older than `seconds`, else _MISSING."""
    not_before = time.time() - seconds
    found = memory(ctx).get(key, not_before)
    if found is None:
        table = shared(ctx)
        found = table.get(ctx, key, not_before) if table is not None else None
        if found is None:
            return _MISSING
        _memory.put(key, *found)
    ctx.stats.cache_hit()
    return json.loads(found[0])


def _put(ctx, key, answer, seconds):
    body, stored_at = _encode(answer), time.time()
    memory(ctx).put(key, body, stored_at)
    table = shared(ctx)
    if table is not None:
        table.put(ctx, key, body, stored_at, seconds)


def fetch(ctx, provider, kind, value, load, scope=()):
    """`load()`'s answer for `value`, from the cache when it holds a fresh one.

    `kind` names the lookup (e.g. "info", "general"); `scope` holds what else
    the answer depends on (the upstream base URL, settings sent upstream).
    Whatever `load` raises propagates and nothing is stored.
    """
    seconds = ttl(ctx)
    if not seconds:
        return load()
    key = _key(ctx, provider, kind, value, scope)
    answer = _get(ctx, key, seconds)
    if answer is _MISSING:
        answer = load()
        _put(ctx, key, answer, seconds)
    return answer


def fetch_many(ctx, provider, kind, values, load_many, scope=()):
    """({value: answer}, errors) for `values`, asking upstream once at most.

    `load_many(missing)` gets only the values the cache does not hold (one
    batched call) and returns ({value: answer}, errors); a value it leaves
    out is answered None. Its answers are stored only when `errors` is empty
    (a partial answer, e.g. a later page failed, is not worth keeping).
    """
    seconds = ttl(ctx)
    if not seconds:
        return load_many(list(values))
    wanted = {value: _key(ctx, provider, kind, value, scope) for value in values}
    not_before = time.time() - seconds
    found = {}
    for value, key in wanted.items():
        item = memory(ctx).get(key, not_before)
        if item is not None:
            found[value] = item
    table = shared(ctx)
    if table is not None and len(found) < len(wanted):
        # One BatchGetItem for what this container does not hold.
        rest = [key for value, key in wanted.items() if value not in found]
        for key, item in table.get_many(ctx, rest, not_before).items():
            _memory.put(key, *item)
            found[key.value] = item
    if found:
        ctx.stats.cache_hit(len(found))
    answers = {value: json.loads(item[0]) for value, item in found.items()}
    missing = [value for value in wanted if value not in found]
    errors = []
    if missing:
        loaded, errors = load_many(missing)
        for value in missing:
            answers[value] = loaded.get(value)
            if not errors:
                _put(ctx, wanted[value], answers[value], seconds)
    return answers, errors


def invalidate(ctx, provider, value):
    """Drop every cached lookup of `value`, for every credential (after a change)."""
    key = keys.EntryKey(provider, "", value, "")
    memory(ctx).drop_owner(key.owner)
    table = shared(ctx)
    if table is not None:
        table.drop(ctx, key)


def reset():
    """Forget the in-process tier and the shared tier's clients (tests)."""
    _memory.clear()
    from api.cache import dynamo

    dynamo.reset()
