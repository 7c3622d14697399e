"""Relay settings, read from the environment.

A `Settings` snapshot is built per request from `os.environ` (cheap), so a
change to the Lambda's environment applies on the next request and nothing is
ever written back. Provider packages read their own variables through the
typed getters.
"""
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional

DEFAULT_ENTITIES_LIMIT = 100


def _parse_int(value, default, minimum=1, maximum=None):
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return default
    if number < minimum:
        return default
    if maximum is not None:
        number = min(number, maximum)
    return number


def _parse_float(value, default, minimum=0.0):
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return default
    return number if number > minimum else default


def _parse_bool(value, default):
    if value is None:
        return default
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    return default


def parse_entities_limit(value, default=DEFAULT_ENTITIES_LIMIT, maximum=None):
    """An entities limit: a positive integer, else `default`; capped at `maximum`."""
    return _parse_int(value, default, minimum=1, maximum=maximum)


@dataclass(frozen=True)
class Settings:
    """Immutable view of the relay's environment variables."""

    env: Mapping[str, str] = field(repr=False)

    @classmethod
    def from_env(cls, environ=None):
        return cls(MappingProxyType(dict(os.environ if environ is None else environ)))

    # typed getters ---------------------------------------------------------
    def get_str(self, name, default=None) -> Optional[str]:
        value = self.env.get(name)
        if value is None or not value.strip():
            return default
        return value.strip()

    def get_int(self, name, default, minimum=1, maximum=None) -> int:
        return _parse_int(self.env.get(name), default, minimum, maximum)

    def get_float(self, name, default) -> float:
        return _parse_float(self.env.get(name), default)

    def get_bool(self, name, default) -> bool:
        return _parse_bool(self.env.get(name), default)

    def get_url(self, name, default=None) -> Optional[str]:
        """A base URL without its trailing slash."""
        value = self.get_str(name, default)
        return value.rstrip("/") if value else value

    # settings every provider shares ---------------------------------------
    @property
    def secret_key(self) -> Optional[str]:
        return self.env.get("SECRET_KEY") or None

    @property
    def entities_limit(self) -> int:
        return parse_entities_limit(self.env.get("CTR_ENTITIES_LIMIT"))

    @property
    def default_provider(self) -> str:
        return (self.get_str("RELAY_PROVIDER", "misp")).lower()

    @property
    def http_timeout(self) -> float:
        """Seconds allowed for one upstream call (connect + read)."""
        return self.get_float("RELAY_HTTP_TIMEOUT", 8.0)

    @property
    def deadline(self) -> float:
        """Seconds allowed for a whole request, well under API Gateway's 29 s."""
        return self.get_float("RELAY_DEADLINE", 20.0)

    @property
    def concurrency(self) -> int:
        """Upstream calls in flight at once for one request."""
        return self.get_int("RELAY_CONCURRENCY", 50, maximum=200)

    @property
    def max_body_bytes(self) -> int:
        return self.get_int("RELAY_MAX_BODY_BYTES", 1024 * 1024)

    @property
    def max_observables(self) -> int:
        return self.get_int("RELAY_MAX_OBSERVABLES", 1000)
