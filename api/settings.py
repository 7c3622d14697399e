"""Relay settings, read from the environment and, per module, from the JWT.

A `Settings` snapshot is built per request from `os.environ` (cheap), so a
change to the Lambda's environment applies on the next request and nothing is
ever written back. `for_module()` lays the claims of a module's token over it
for the settings the provider allows per module (never where it sends a
request: `API_URL` and the `*_API_URL` settings stay env-only).

Two kinds of getters: the lenient `get_*` fall back to their default on a
value they cannot read (long-standing relay-wide settings), the strict
`setting_*` raise `invalid argument` naming the setting and where it came
from, for the settings a module may set.
"""
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional

from api.errors import InvalidArgumentError

DEFAULT_ENTITIES_LIMIT = 100
# Relay-wide settings a module's token may set for itself (providers add theirs).
MODULE_SETTINGS = ("RELAY_CACHE_TTL",)
# What each of them means, for module types and docs.
MODULE_SETTING_HELP = {
    "RELAY_CACHE_TTL": "seconds an upstream answer is reused for this module's key "
                       "(0 = no cache)",
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


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
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return default


def _claim_text(value):
    """A claim as the env var would hold it (JSON true -> "true", 3 -> "3")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return None


def parse_entities_limit(value, default=DEFAULT_ENTITIES_LIMIT, maximum=None):
    """An entities limit: a positive integer, else `default`; capped at `maximum`."""
    return _parse_int(value, default, minimum=1, maximum=maximum)


@dataclass(frozen=True)
class Settings:
    """Immutable view of the relay's environment variables."""

    env: Mapping[str, str] = field(repr=False)
    from_claims: frozenset = frozenset()   # names whose value came from the JWT

    @classmethod
    def from_env(cls, environ=None):
        return cls(MappingProxyType(dict(os.environ if environ is None else environ)))

    def for_module(self, claims, names):
        """This snapshot with the claims named in `names` laid over the env.

        A claim that is not a string, number, boolean or list of strings is an
        `invalid argument` error naming the setting.
        """
        overrides = {}
        for name in names:
            if name in claims:
                text = _claim_text(claims[name])
                if text is None:
                    raise InvalidArgumentError(
                        f"Module setting {name} (JWT claim) must be a string, number, "
                        "boolean or list of strings")
                overrides[name] = text
        if not overrides:
            return self
        return Settings(MappingProxyType({**self.env, **overrides}),
                        self.from_claims | frozenset(overrides))

    def _invalid(self, name, value, expected):
        origin = "JWT claim" if name in self.from_claims else "environment variable"
        shown = str(value).strip()
        shown = shown if len(shown) <= 40 else shown[:39] + "…"
        return InvalidArgumentError(
            f"Invalid setting {name} ({origin}): '{shown}' is not {expected}")

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

    # strict getters, for the settings a module may set -------------------
    def setting_bool(self, name, default) -> bool:
        value = self.env.get(name)
        if value is None or not value.strip():
            return default
        parsed = _parse_bool(value, None)
        if parsed is None:
            raise self._invalid(name, value, "true or false")
        return parsed

    def setting_int(self, name, default, minimum=0, maximum=None) -> Optional[int]:
        value = self.env.get(name)
        if value is None or not value.strip():
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise self._invalid(name, value, "a whole number") from None
        if number < minimum or (maximum is not None and number > maximum):
            upper = f" to {maximum}" if maximum is not None else " or more"
            raise self._invalid(name, value, f"a whole number from {minimum}{upper}")
        return number

    def setting_choice(self, name, default, choices) -> str:
        value = self.env.get(name)
        if value is None or not value.strip():
            return default
        text = value.strip().lower()
        if text not in choices:
            raise self._invalid(name, value, "one of " + ", ".join(choices))
        return text

    def setting_list(self, name) -> tuple:
        """A comma-separated list: stripped, blanks dropped, order kept."""
        value = self.env.get(name) or ""
        return tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))

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

    @property
    def max_value_length(self) -> int:
        """Characters allowed in one observable value (the longest URLs fit)."""
        return self.get_int("RELAY_MAX_VALUE_LENGTH", 2048)

    @property
    def max_response_bytes(self) -> int:
        """Bytes of an answer as Lambda returns it; Lambda refuses over 6 MB."""
        return self.get_int("RELAY_MAX_RESPONSE_BYTES", 5_000_000, maximum=6_000_000)
