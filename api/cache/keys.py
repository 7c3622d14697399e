"""Cache and rate-limit keys: who asked (a credential tag), what, which kind.

A credential never appears in a key in clear: it is reduced to an HMAC with
the relay's SECRET_KEY, so neither the in-process tier nor the DynamoDB
table holds anything that could be replayed against a provider.
"""
import hashlib
import hmac
import json
from dataclasses import dataclass

_TAG_BYTES = 16


def credential_tag(ctx, provider, *scope):
    """HMAC-SHA256(SECRET_KEY, provider, scope..., `key` claim), hex, truncated.

    `scope` holds what else separates answers (e.g. the upstream base URL).
    Only the `key` claim counts: tokens differing in `iat`, `exp` or module
    settings share one credential.
    """
    secret = (ctx.settings.secret_key or "").encode()
    key = ctx.key if isinstance(ctx.key, str) else ""
    message = "\x00".join((provider, *scope, key)).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:2 * _TAG_BYTES]


def value_tag(value):
    """A short fixed-length digest of an observable value (table key part)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def digest(*parts):
    """A short tag of JSON-able `parts` (settings an answer depends on)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EntryKey:
    """One cached answer: (provider, credential tag, value, kind of lookup)."""

    provider: str
    credential: str
    value: str
    kind: str

    @property
    def owner(self):
        """What a respond/trigger on this value invalidates: every credential's
        lookups of it (a sighting changes what every reader sees)."""
        return (self.provider, self.value)

    @property
    def partition(self):
        """DynamoDB partition key: one partition per (provider, value)."""
        return f"cache#{self.provider}#{value_tag(self.value)}"

    @property
    def sort(self):
        """DynamoDB sort key: credential tag and kind of lookup."""
        return f"{self.credential}#{self.kind}"

    def size(self):
        return len(self.provider) + len(self.credential) + len(self.value) + len(self.kind)


def rate_partition(provider, credential):
    """DynamoDB partition key of a (provider, credential)'s rate-limit state."""
    return f"rate#{provider}#{credential}"
