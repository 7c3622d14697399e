"""Cisco XDR's token-signing keys: the JWKS of a pinned host, cached per host,
and the RS256 signature check itself.

`https://<host>/.well-known/jwks` is fetched over TLS (verified; the CA
bundle of `REQUESTS_CA_BUNDLE` / `SSL_CERT_FILE` when set), with a timeout and
no redirects. A warm Lambda fetches a host's keys at most once per
`MAX_AGE` while the tokens' `kid` is known; an unknown `kid` refetches at once
(a rotated key works on its first use), then at most once per
`UNKNOWN_KID_INTERVAL`. The cache is process-wide, keyed by host (bounded by
the allow-list, RELAY_JWKS_HOSTS); it holds public keys only.

RS256 is checked here rather than by PyJWT's RS256, which needs `cryptography`:
+5.7 MB in the Lambda zip (over its 8 MB target) and about 100 ms more on every
cold start, HS256 modules included, for one modular exponentiation. `verify`
is RFC 8017 §8.2.2 (RSASSA-PKCS1-v1_5 with SHA-256): it rebuilds the whole
expected encoding and compares, never parses the decrypted block.
"""
import base64
import hashlib
import hmac
import logging
import threading
import time
from typing import NamedTuple

from api import http
from api.errors import RelayError

log = logging.getLogger(__name__)

MAX_AGE = 600.0
UNKNOWN_KID_INTERVAL = 60.0
FETCH_TIMEOUT = 5.0
TITLE = "Cisco XDR JWKS"

_cache = {}                # host -> _Keys
_lock = threading.Lock()   # one fetch at a time; fetches are rare


# DER of DigestInfo(sha256, <32 bytes>) before the hash (RFC 8017 §9.2, note 1).
_SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
MIN_MODULUS_BITS = 2048


class PublicKey(NamedTuple):
    """An RSA public key: modulus and public exponent."""

    n: int
    e: int


def verify(key, message, signature):
    """True when `signature` is `key`'s RSASSA-PKCS1-v1_5 SHA-256 signature of
    `message` (RFC 8017 §8.2.2)."""
    size = (key.n.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    number = int.from_bytes(signature, "big")
    if number >= key.n:
        return False
    digest_info = _SHA256_PREFIX + hashlib.sha256(message).digest()
    expected = (b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00"
                + digest_info)
    return hmac.compare_digest(pow(number, key.e, key.n).to_bytes(size, "big"), expected)


def rs256():
    """A PyJWT algorithm object checking RS256 signatures with `verify`."""
    from jwt.algorithms import Algorithm

    class RS256(Algorithm):
        def prepare_key(self, key):
            if not isinstance(key, PublicKey):
                raise TypeError("a jwks.PublicKey is needed")
            return key

        def sign(self, msg, key):
            raise NotImplementedError("the relay never signs")

        def verify(self, msg, key, sig):
            return verify(key, msg, sig)

        @staticmethod
        def to_jwk(key_obj, as_dict=False):
            raise NotImplementedError

        @staticmethod
        def from_jwk(jwk):
            raise NotImplementedError

    return RS256()


def _integer(text):
    """A JWK base64url integer (RFC 7518 §6.3.1)."""
    if not isinstance(text, str) or not text:
        raise ValueError("not a base64url string")
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


class JwksUnavailable(Exception):
    """The host's JWKS could not be fetched or read."""


class _Keys:
    __slots__ = ("keys", "fetched", "kid_refetched")

    def __init__(self, keys, fetched, kid_refetched=float("-inf")):
        self.keys = keys                    # kid -> public key object
        self.fetched = fetched
        self.kid_refetched = kid_refetched


def ca_bundle(settings):
    """What `verify` gets: the configured CA bundle, else the default trust."""
    return (settings.get_str("REQUESTS_CA_BUNDLE") or settings.get_str("SSL_CERT_FILE")
            or True)


def _parse(body):
    """{kid: PublicKey} of a JWKS document; unusable entries are skipped."""
    entries = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise JwksUnavailable("no 'keys' list")
    keys = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" \
                or entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256" \
                or not isinstance(entry.get("kid"), str):
            continue
        try:
            key = PublicKey(_integer(entry.get("n")), _integer(entry.get("e")))
        except (ValueError, TypeError):
            continue
        if key.n.bit_length() >= MIN_MODULUS_BITS and key.e % 2 and 3 <= key.e < key.n:
            keys[entry["kid"]] = key
    return keys


def _fetch(ctx, host):
    url = f"https://{host}/.well-known/jwks"
    try:
        # http.request never follows a redirect: a 3xx raises.
        response = http.request(ctx, TITLE, "GET", url, session_name="jwks",
                                verify=ca_bundle(ctx.settings),
                                timeout=min(ctx.timeout(), FETCH_TIMEOUT))
        if response.status_code != 200:
            raise JwksUnavailable(f"HTTP {response.status_code}")
        keys = _parse(http.json_body(response, TITLE))
    except (RelayError, JwksUnavailable) as error:
        log.warning("JWKS of %s unavailable: %s", host, getattr(error, "message", error))
        raise JwksUnavailable(host) from None
    return keys


def key(ctx, host, kid):
    """The public key `kid` of `host`'s JWKS, or None when the JWKS lacks it.

    Raises JwksUnavailable when the keys are needed and cannot be fetched.
    """
    with _lock:
        now = time.monotonic()
        entry = _cache.get(host)
        if entry is None or now - entry.fetched >= MAX_AGE:
            kid_refetched = entry.kid_refetched if entry else float("-inf")
        elif kid not in entry.keys and now - entry.kid_refetched >= UNKNOWN_KID_INTERVAL:
            entry.kid_refetched = kid_refetched = now   # counts even if the fetch fails
        else:
            return entry.keys.get(kid)
        entry = _cache[host] = _Keys(_fetch(ctx, host), now, kid_refetched)
        return entry.keys.get(kid)


def reset():
    """Forget every cached JWKS (tests)."""
    with _lock:
        _cache.clear()
