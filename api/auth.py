"""Authentication: `Authorization: Bearer <JWT>`, two routes picked by `alg`.

- HS256 (`jwt dev`, or an XDR module type with `configuration-token-key`):
  signed with the relay's `SECRET_KEY`, exactly as in the Zappa-era relays.
- RS256 (an XDR module type with `custom_jwks_host`): signed by Cisco XDR and
  checked against the JWKS of the token's `jwks_host`, which must be one of
  RELAY_JWKS_HOSTS (checked before any outbound request); `aud` must be the
  module's own URL.

Any other `alg` (`none` included) is a wrong structure: an RS256 token is
never checked with `SECRET_KEY`, an HS256 token never with a JWKS key. A token
with a `provider` claim serves that provider's routes only. Both routes hand
back the module's configuration claims only (`custom_<NAME>` → `<NAME>`), so
the rest of the relay sees the same dict whichever signed it. Reasons follow
Cisco's relays word for word (reference-relays.md §0.1.3, §0.1.4).
"""
import functools

from api import jwks
from api.errors import AuthorizationError

HEADER_MISSING = "Authorization header is missing"
WRONG_TYPE = "Wrong authorization type"
WRONG_STRUCTURE = "Wrong JWT structure"
WRONG_PAYLOAD = "Wrong JWT payload structure"
WRONG_KEY = "Failed to decode JWT with provided key"
SECRET_MISSING = "SECRET_KEY is missing"
EXPIRED = "JWT has expired"
NOT_YET_VALID = "JWT is not yet valid"
# HS256 with a short secret can be brute-forced offline from any one token.
MIN_SECRET_BYTES = 32
SECRET_TOO_SHORT = (f"SECRET_KEY is too short: it must be at least {MIN_SECRET_BYTES} bytes "
                    "(`jwt dev` prints a 64-character one)")
# Cisco's RS256 reasons (api/utils.py of the hosted relays).
JWKS_HOST_MISSING = ("jwks_host is missing in JWT payload. Make sure custom_jwks_host field "
                     "is present in module_type")
WRONG_JWKS_HOST = ("Wrong jwks_host in JWT payload. Make sure domain follows the "
                   "visibility.<region>.cisco.com structure")
KID_NOT_FOUND = "kid from JWT header not found in API response"
WRONG_RS256_KEY = ("Failed to decode JWT with provided key. Make sure domain in "
                   "custom_jwks_host corresponds to your SecureX instance region.")
WRONG_AUDIENCE = "Wrong configuration-token-audience"

DEFAULT_JWKS_HOSTS = ("visibility.amp.cisco.com,visibility.eu.amp.cisco.com,"
                      "visibility.apjc.amp.cisco.com")
# Claims about the token itself, not the module's configuration.
TOKEN_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
                          "jwks_host", "provider"})


def bearer_token(header):
    """The token of an `Authorization: Bearer <token>` header value."""
    if header is None:
        raise AuthorizationError(HEADER_MISSING)
    parts = header.split()
    if not parts or parts[0].lower() != "bearer":
        raise AuthorizationError(WRONG_TYPE)
    if len(parts) != 2:
        raise AuthorizationError(WRONG_STRUCTURE)
    return parts[1]


def _verified(token, key, algorithm, errors, **options):
    """PyJWT's verified claims, its errors mapped to `errors`' reasons."""
    import jwt  # PyJWT, imported on first use to keep cold starts short

    try:
        claims = jwt.decode(token, key, algorithms=[algorithm], **options)
    except jwt.ExpiredSignatureError:
        raise AuthorizationError(EXPIRED) from None
    except jwt.ImmatureSignatureError:
        raise AuthorizationError(NOT_YET_VALID) from None
    except jwt.InvalidTokenError as error:
        for kind, reason in errors:
            if isinstance(error, kind):
                raise AuthorizationError(reason) from None
        raise AuthorizationError(WRONG_STRUCTURE) from None
    if not isinstance(claims, dict):
        raise AuthorizationError(WRONG_PAYLOAD)
    return claims


def decode(token, secret_key):
    """HS256: verified claims of `token`; `exp`/`nbf` honoured when present."""
    import jwt

    if not secret_key:
        raise AuthorizationError(SECRET_MISSING)
    if len(secret_key.encode("utf-8")) < MIN_SECRET_BYTES:
        raise AuthorizationError(SECRET_TOO_SHORT)
    return _verified(token, secret_key, "HS256",
                     [((jwt.InvalidSignatureError, jwt.InvalidAlgorithmError), WRONG_KEY)],
                     options={"verify_aud": False})


def jwks_hosts(settings):
    """The hosts (`host[:port]`) whose JWKS may sign RS256 tokens."""
    return settings.setting_list("RELAY_JWKS_HOSTS") or tuple(DEFAULT_JWKS_HOSTS.split(","))


@functools.lru_cache(maxsize=1)
def _rs256_jws():
    """PyJWT's signature layer knowing RS256 only, checked by jwks.verify."""
    import jwt

    checker = jwt.PyJWS(algorithms=[])
    checker.register_algorithm("RS256", jwks.rs256())
    return checker


def decode_rs256(token, ctx, audiences):
    """RS256: claims verified with the key of the token's (allowed) `jwks_host`."""
    import jwt

    unverified = jwt.decode(token, options={"verify_signature": False})
    if "jwks_host" not in unverified:
        raise AuthorizationError(JWKS_HOST_MISSING)
    host = unverified["jwks_host"]
    allowed = jwks_hosts(ctx.settings)
    if not isinstance(host, str) or host not in allowed:
        shown = str(host)[:80]
        raise AuthorizationError(
            f"jwks_host '{shown}' is not allowed by RELAY_JWKS_HOSTS "
            f"({', '.join(allowed)})")
    kid = jwt.get_unverified_header(token).get("kid")
    if not isinstance(kid, str):
        raise AuthorizationError(WRONG_PAYLOAD)
    try:
        key = jwks.key(ctx, host, kid)
    except jwks.JwksUnavailable:
        raise AuthorizationError(WRONG_JWKS_HOST) from None
    if key is None:
        raise AuthorizationError(KID_NOT_FOUND)
    try:
        _rs256_jws().decode_complete(token, key, algorithms=["RS256"])
    except jwt.InvalidSignatureError:
        raise AuthorizationError(WRONG_RS256_KEY) from None
    # The signature holds: now the claims (`exp`, `nbf`, `iat`, `aud`).
    return _verified(token, None, "RS256",
                     [((jwt.InvalidAudienceError, jwt.MissingRequiredClaimError),
                       WRONG_AUDIENCE)],
                     audience=list(audiences),
                     options={"verify_signature": False, "verify_exp": True,
                              "verify_nbf": True, "verify_iat": True, "verify_aud": True})


def authenticate(header, ctx, provider_name, audiences):
    """The configuration claims of the request's token, for `provider_name`.

    `ctx` carries the settings and the deadline of a JWKS fetch; `audiences`
    are the module URLs an RS256 token's `aud` may name.
    """
    import jwt

    token = bearer_token(header)
    try:
        alg = jwt.get_unverified_header(token).get("alg")
        if alg == "HS256":
            claims = decode(token, ctx.settings.secret_key)
        elif alg == "RS256":
            claims = decode_rs256(token, ctx, audiences)
        else:
            raise AuthorizationError(WRONG_STRUCTURE)
    except jwt.InvalidTokenError:
        raise AuthorizationError(WRONG_STRUCTURE) from None
    bound = claims.get("provider")
    if bound is not None and bound != provider_name:
        raise AuthorizationError(
            f"this JWT is for the '{str(bound)[:40]}' module, not '{provider_name}'")
    return {name: value for name, value in claims.items() if name not in TOKEN_CLAIMS}


def credential_ok(value):
    """Whether a credential claim is usable as it is: printable ASCII, not blank,
    no surrounding whitespace. A CR/LF, NUL or other control character would
    break the header or query string carrying the key, and the resulting
    error would quote the key in a log line."""
    return (isinstance(value, str) and value.strip() == value != ""
            and value.isascii() and value.isprintable())


def require_claims(claims, names):
    """Check that every credential claim is usable (see `credential_ok`)."""
    for name in names:
        if not credential_ok(claims.get(name)):
            raise AuthorizationError(WRONG_PAYLOAD)
