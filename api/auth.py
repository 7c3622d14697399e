"""Zappa-era authentication: `Authorization: Bearer <JWT>`, HS256 only.

The JWT is signed with the relay's `SECRET_KEY` by `jwt dev`; its payload
carries the provider credential (e.g. `{"key": "..."}`) and, optionally,
`CTR_ENTITIES_LIMIT`. Reasons follow Cisco's relays word for word.
"""
from api.errors import AuthorizationError

ALGORITHMS = ["HS256"]

HEADER_MISSING = "Authorization header is missing"
WRONG_TYPE = "Wrong authorization type"
WRONG_STRUCTURE = "Wrong JWT structure"
WRONG_PAYLOAD = "Wrong JWT payload structure"
WRONG_KEY = "Failed to decode JWT with provided key"
SECRET_MISSING = "SECRET_KEY is missing"
# HS256 with a short secret can be brute-forced offline from any one token.
MIN_SECRET_BYTES = 32
SECRET_TOO_SHORT = (f"SECRET_KEY is too short: it must be at least {MIN_SECRET_BYTES} bytes "
                    "(`jwt dev` prints a 64-character one)")
EXPIRED = "JWT has expired"
NOT_YET_VALID = "JWT is not yet valid"


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


def decode(token, secret_key):
    """Verified claims of `token`; `exp`/`nbf` are honoured when present."""
    import jwt  # PyJWT, imported on first use to keep cold starts short

    if not secret_key:
        raise AuthorizationError(SECRET_MISSING)
    if len(secret_key.encode("utf-8")) < MIN_SECRET_BYTES:
        raise AuthorizationError(SECRET_TOO_SHORT)
    try:
        claims = jwt.decode(token, secret_key, algorithms=ALGORITHMS,
                            options={"verify_aud": False})
    except jwt.ExpiredSignatureError:
        raise AuthorizationError(EXPIRED) from None
    except jwt.ImmatureSignatureError:
        raise AuthorizationError(NOT_YET_VALID) from None
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
        raise AuthorizationError(WRONG_KEY) from None
    except jwt.InvalidTokenError:
        raise AuthorizationError(WRONG_STRUCTURE) from None
    if not isinstance(claims, dict):
        raise AuthorizationError(WRONG_PAYLOAD)
    return claims


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
