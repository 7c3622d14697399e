"""Authentication: HS256 (`jwt dev`, SECRET_KEY) and Cisco XDR configuration
tokens (RS256 + the JWKS of a pinned host), the module audience, tokens bound
to their provider, the secret's strength, auth before setup errors, paths that
never redirect."""
import base64
import hashlib
import hmac
import json
import socket
import time

import pytest

from api import auth, jwks, providers
from api.providers.base import Provider
from tests.conftest import SECRET, bearer, make_token
from tests.xdr import SigningKey

OBS = [{"type": "ip", "value": "198.51.100.23"}]


class Recorder(Provider):
    """Stands in for every provider: its health records the request context."""

    title = "Recorder"
    supported_types = frozenset({"ip"})
    credential_claims = ("key",)
    capabilities = ("health",)
    seen = []

    def health(self, ctx):
        Recorder.seen.append(ctx)


@pytest.fixture
def recorder(monkeypatch):
    Recorder.seen = []
    for name in providers.NAMES:
        monkeypatch.setitem(providers._loaded, name, type(name, (Recorder,), {"name": name})())
    return Recorder.seen


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("weak", [" ", "a", "x" * 31, "é" * 15])
def test_weak_secret_key_is_refused_with_a_clear_reason(client, relay_env, weak):
    relay_env.setenv("SECRET_KEY", weak)
    body = client.post("/health", headers=bearer(secret=weak)).get_json()
    assert body == {"errors": [{
        "type": "fatal", "code": "authorization error",
        "message": "Authorization failed: SECRET_KEY is too short: it must be at least "
                   "32 bytes (`jwt dev` prints a 64-character one)"}]}


def test_a_32_byte_secret_key_is_enough(client, relay_env, recorder):
    relay_env.setenv("SECRET_KEY", "é" * 16)
    body = client.post("/otx/health", headers=bearer(secret="é" * 16)).get_json()
    assert body == {"data": {"status": "ok"}} and len(recorder) == 1


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer x.y.z"}])
def test_bad_relay_provider_is_not_reported_before_authentication(client, relay_env, headers):
    relay_env.setenv("RELAY_PROVIDER", "virustotal")
    error = client.post("/observe/observables", json=OBS, headers=headers).get_json()["errors"]
    assert [e["code"] for e in error] == ["authorization error"]
    assert "virustotal" not in str(error)


@pytest.mark.parametrize("path", ["//observe/observables", "/misp//health", "//health",
                                  "/health//", "//misp/refer/observables"])
def test_double_slash_answers_json_without_a_redirect(client, path):
    response = client.post(path, json=OBS, headers={**bearer(), "Host": "evil.example"})
    assert response.status_code < 300 or response.status_code >= 400
    assert "Location" not in response.headers
    assert response.is_json and response.get_json()["errors"][0]["type"] == "fatal"


# --- RS256: Cisco XDR configuration tokens ---------------------------------

ROUTES = ["/health", "/observe/observables", "/deliberate/observables",
          "/refer/observables", "/respond/observables", "/respond/trigger"]
TRIGGER = {"action-id": "x", "observable_type": "ip", "observable_value": "198.51.100.23"}
ROOT = "http://localhost"


def post(client, path, token):
    body = TRIGGER if path.endswith("trigger") else OBS
    return client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})


def reason(response):
    assert response.status_code == 200
    (error,) = response.get_json()["errors"]
    assert error["code"] == "authorization error", error
    assert error["message"].startswith("Authorization failed: ")
    return error["message"][len("Authorization failed: "):]


@pytest.mark.parametrize("prefix", ["", "/misp", "/pulsedive", "/otx", "/cyberprotect"])
def test_xdr_token_accepted_on_every_route_and_provider(client, xdr, recorder, prefix):
    token = xdr.token({"key": "k", "aud": ROOT + prefix})
    for route in ROUTES:
        body = post(client, prefix + route, token).get_json()
        assert "errors" not in body or route.endswith("trigger"), (route, body)
        if route.endswith("trigger"):   # the recorder offers no action: past auth
            assert body["errors"][0]["code"] != "authorization error"
    assert len(recorder) == 1 and recorder[0].key == "k"
    assert xdr.fetches == 1


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hmac_token(header, payload, secret):
    """A JWT signed with HMAC-SHA256 whatever its header says (PyJWT refuses)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _hs256_header_swap(xdr):
    """An RS256-labelled token whose signature is an HMAC with SECRET_KEY."""
    return _hmac_token({"alg": "RS256", "typ": "JWT", "kid": "xdr-key-1"},
                       {"key": "k", "jwks_host": xdr.host, "aud": ROOT + "/misp"},
                       SECRET.encode())


def _public_pem(xdr):
    from cryptography.hazmat.primitives import serialization

    return xdr.keys[0].private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


FAILURES = [
    ("missing jwks_host", lambda x: x.token({"key": "k", "aud": ROOT + "/misp",
                                             "jwks_host": None}), auth.JWKS_HOST_MISSING),
    ("unknown kid", lambda x: x.token({"key": "k", "aud": ROOT + "/misp"},
                                      key=SigningKey("not-published")), auth.KID_NOT_FOUND),
    ("no kid", lambda x: x.token({"key": "k", "aud": ROOT + "/misp"},
                                 headers={"kid": None}), auth.WRONG_PAYLOAD),
    ("bad signature", lambda x: x.token({"key": "k", "aud": ROOT + "/misp"},
                                        key=_forged(x)), auth.WRONG_RS256_KEY),
    ("wrong aud", lambda x: x.token({"key": "k", "aud": "https://elsewhere.example/misp"}),
     auth.WRONG_AUDIENCE),
    ("missing aud", lambda x: x.token({"key": "k"}), auth.WRONG_AUDIENCE),
    ("token for another provider", lambda x: x.token({"key": "k", "aud": ROOT + "/otx"}),
     auth.WRONG_AUDIENCE),
    ("un-prefixed module's token", lambda x: x.token({"key": "k", "aud": ROOT}),
     auth.WRONG_AUDIENCE),
    ("expired", lambda x: x.token({"key": "k", "aud": ROOT + "/misp"}, lifetime=-60),
     auth.EXPIRED),
    ("not yet valid", lambda x: x.token({"key": "k", "aud": ROOT + "/misp",
                                         "nbf": int(time.time()) + 600}), auth.NOT_YET_VALID),
    ("RS256 header, HMAC with SECRET_KEY", _hs256_header_swap, auth.WRONG_RS256_KEY),
    ("HS256 signed with the JWKS public key", lambda x: _hmac_token(
        {"alg": "HS256", "typ": "JWT"}, {"key": "k", "jwks_host": x.host,
                                         "aud": ROOT + "/misp"}, _public_pem(x)),
     auth.WRONG_KEY),
    ("HS256 signed with the RSA private key", lambda x: _rsa_as_hs256(x), auth.WRONG_KEY),
    ("alg none", lambda x: make_token({"key": "k"}, secret=None, algorithm="none"),
     auth.WRONG_STRUCTURE),
    ("alg RS512", lambda x: make_token({"key": "k", "jwks_host": x.host},
                                       secret=x.keys[0].private, algorithm="RS512",
                                       headers={"kid": "xdr-key-1"}), auth.WRONG_STRUCTURE),
    ("alg HS512", lambda x: make_token({"key": "k"}, algorithm="HS512"), auth.WRONG_STRUCTURE),
    ("no credential claim", lambda x: x.token({"aud": ROOT + "/misp"}), auth.WRONG_PAYLOAD),
    ("iat not a number", lambda x: x.token({"key": "k", "aud": ROOT + "/misp", "iat": "x"}),
     auth.WRONG_STRUCTURE),
]


def _forged(xdr):
    """Another RSA key presenting the published `kid`."""
    forged = SigningKey("xdr-key-1")
    return forged


def _rsa_as_hs256(xdr):
    """Header says HS256; the signature is RS256's (the swap the other way)."""
    real = xdr.token({"key": "k", "aud": ROOT + "/misp"})
    _, payload, signature = real.split(".")
    return f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{payload}.{signature}"


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("case,build,expected", FAILURES, ids=[f[0] for f in FAILURES])
def test_each_failure_answers_its_reason(client, xdr, recorder, case, build, expected):
    for route in ("/misp/health", "/misp/observe/observables", "/misp/respond/trigger"):
        assert reason(post(client, route, build(xdr))) == expected
    assert recorder == []


def test_host_not_in_the_allow_list_is_refused_without_any_connection(client, xdr, relay_env):
    relay_env.delenv("RELAY_JWKS_HOSTS")
    token = xdr.token({"key": "k", "aud": ROOT + "/misp"})
    message = reason(post(client, "/misp/health", token))
    assert message == (f"jwks_host '{xdr.host}' is not allowed by RELAY_JWKS_HOSTS "
                       "(visibility.amp.cisco.com, visibility.eu.amp.cisco.com, "
                       "visibility.apjc.amp.cisco.com)")
    assert xdr.connections == 0 and xdr.fetches == 0
    # exact match: another port of the same host is another host
    relay_env.setenv("RELAY_JWKS_HOSTS", "localhost")
    assert "not allowed by RELAY_JWKS_HOSTS" in reason(post(
        client, "/misp/health", xdr.token({"key": "k", "aud": ROOT + "/misp"})))
    assert xdr.connections == 0


@pytest.mark.parametrize("case", ["closed port", "HTTP 500", "not JSON", "no keys",
                                  "redirect", "untrusted certificate"])
def test_jwks_unavailable_is_cisco_s_wrong_jwks_host(client, xdr, relay_env, case):
    host = xdr.host
    if case == "closed port":
        host = f"localhost:{_closed_port()}"
        relay_env.setenv("RELAY_JWKS_HOSTS", host)
    elif case == "HTTP 500":
        xdr.status = 500
    elif case == "not JSON":
        xdr.body = "<html>"
    elif case == "no keys":
        xdr.body = json.dumps({"keys": "none"})
    elif case == "redirect":
        xdr.status, xdr.headers = 302, {"Location": "/.well-known/jwks"}
    else:
        relay_env.delenv("REQUESTS_CA_BUNDLE")
    token = xdr.token({"key": "k", "aud": ROOT + "/misp", "jwks_host": host})
    assert reason(post(client, "/misp/health", token)) == auth.WRONG_JWKS_HOST
    assert xdr.fetches <= 1, "a redirect is never followed"


def test_ssl_cert_file_is_honoured_too(client, xdr, ca, relay_env, recorder):
    relay_env.delenv("REQUESTS_CA_BUNDLE")
    relay_env.setenv("SSL_CERT_FILE", str(ca.ca_file))
    token = xdr.token({"key": "k", "aud": ROOT + "/misp"})
    assert post(client, "/misp/health", token).get_json() == {"data": {"status": "ok"}}


def test_warm_requests_fetch_the_jwks_once(client, xdr, recorder):
    tokens = [xdr.token({"key": f"k{i}", "aud": ROOT + "/otx"}) for i in range(100)]
    for token in tokens:
        assert post(client, "/otx/health", token).get_json() == {"data": {"status": "ok"}}
    assert xdr.fetches <= 1 and len(recorder) == 100


def test_rotated_key_is_accepted_on_first_use_and_refetches_are_bounded(
        client, xdr, recorder, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(jwks.time, "monotonic", lambda: clock[0])
    assert "errors" not in post(client, "/misp/health",
                                xdr.token({"key": "k", "aud": ROOT + "/misp"})).get_json()
    assert xdr.fetches == 1
    clock[0] += 5
    new = xdr.rotate("xdr-key-2")
    token = xdr.token({"key": "k", "aud": ROOT + "/misp"}, key=new)
    assert "errors" not in post(client, "/misp/health", token).get_json()
    assert xdr.fetches == 2
    # unknown kids: at most one refetch a minute
    for kid in ("bogus-1", "bogus-2", "bogus-3"):
        clock[0] += 10
        bogus = xdr.token({"key": "k", "aud": ROOT + "/misp"}, key=SigningKey(kid))
        assert reason(post(client, "/misp/health", bogus)) == auth.KID_NOT_FOUND
    assert xdr.fetches == 2
    clock[0] += 31
    assert reason(post(client, "/misp/health", bogus)) == auth.KID_NOT_FOUND
    assert xdr.fetches == 3
    # known kids: one fetch per 10 minutes
    clock[0] += jwks.MAX_AGE - 1
    assert "errors" not in post(client, "/misp/health", token).get_json()
    assert xdr.fetches == 3
    clock[0] += 1
    assert "errors" not in post(client, "/misp/health", token).get_json()
    assert xdr.fetches == 4


def test_unknown_kid_refetch_is_rate_limited_even_when_it_fails(client, xdr, recorder):
    known = xdr.token({"key": "k", "aud": ROOT + "/misp"})
    assert "errors" not in post(client, "/misp/health", known).get_json()
    xdr.status = 503
    bogus = xdr.token({"key": "k", "aud": ROOT + "/misp"}, key=SigningKey("rotated?"))
    assert reason(post(client, "/misp/health", bogus)) == auth.WRONG_JWKS_HOST
    fetches = xdr.fetches
    assert reason(post(client, "/misp/health", bogus)) == auth.KID_NOT_FOUND
    assert "errors" not in post(client, "/misp/health", known).get_json()
    assert xdr.fetches == fetches, "no refetch within the minute, failed or not"


def test_public_urls_are_audiences_too(client, xdr, relay_env, recorder):
    relay_env.setenv("RELAY_PUBLIC_URLS", "https://relay.example.com/, https://b.example/x")
    for aud, path in [("https://relay.example.com/misp", "/misp/health"),
                      ("https://b.example/x/otx", "/otx/health"),
                      ("https://relay.example.com", "/health"),
                      (ROOT + "/otx", "/otx/health")]:
        body = post(client, path, xdr.token({"key": "k", "aud": aud})).get_json()
        assert body == {"data": {"status": "ok"}}, (aud, path, body)
    assert reason(post(client, "/otx/health", xdr.token(
        {"key": "k", "aud": "https://relay.example.com/misp"}))) == auth.WRONG_AUDIENCE


def test_stage_path_is_part_of_the_audience(client, xdr, recorder):
    """Under API Gateway the stage is the script root: `<host>/dev/misp`."""
    token = xdr.token({"key": "k", "aud": "https://api.example/dev/misp"})
    response = client.post("/misp/health", headers={"Authorization": f"Bearer {token}"},
                           base_url="https://api.example/dev")
    assert response.get_json() == {"data": {"status": "ok"}}


@pytest.mark.parametrize("path,accepted", [("/misp/health", True), ("/otx/health", False),
                                           ("/health", True), ("/cyberprotect/health", False)])
def test_hs256_provider_claim_binds_the_token(client, recorder, path, accepted):
    body = client.post(path, headers={"Authorization": "Bearer " + make_token(
        {"key": "k", "provider": "misp"})}).get_json()
    if accepted:
        assert body == {"data": {"status": "ok"}}
    else:
        assert body["errors"][0]["message"] == (
            f"Authorization failed: this JWT is for the 'misp' module, "
            f"not '{path.split('/')[1]}'")


def test_hs256_token_without_provider_claim_works_everywhere(client, recorder):
    token = make_token({"key": "k", "aud": "anything", "jwks_host": "evil.example"})
    for path in ("/health", "/misp/health", "/otx/health", "/pulsedive/health"):
        assert client.post(path, headers={"Authorization": f"Bearer {token}"}).get_json() \
            == {"data": {"status": "ok"}}


def test_both_routes_give_the_same_claims(client, xdr, recorder):
    config = {"key": "k", "CTR_ENTITIES_LIMIT": 5}
    rs = xdr.token({**config, "aud": ROOT + "/otx"})
    hs = make_token({**config, "provider": "otx", "iat": int(time.time())})
    for token in (rs, hs):
        assert post(client, "/otx/health", token).get_json() == {"data": {"status": "ok"}}
    assert [dict(ctx.claims) for ctx in recorder] == [config, config]
    assert [ctx.entities_limit for ctx in recorder] == [5, 5]


# --- the RS256 check itself (RFC 8017 §8.2.2), against `cryptography` --------

def _public(signing_key):
    numbers = signing_key.private.public_key().public_numbers()
    return jwks.PublicKey(numbers.n, numbers.e)


def _sign(signing_key, message):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return signing_key.private.sign(message, padding.PKCS1v15(), hashes.SHA256())


def test_verify_agrees_with_cryptography():
    key = SigningKey("k")
    public = _public(key)
    for message in (b"", b"a.b", bytes(range(256)) * 5):
        signature = _sign(key, message)
        assert jwks.verify(public, message, signature)
        assert not jwks.verify(public, message + b"x", signature)
        tampered = bytes([signature[0] ^ 1]) + signature[1:]
        assert not jwks.verify(public, message, tampered)
        assert not jwks.verify(public, message, signature[1:])          # wrong length
        assert not jwks.verify(public, message, b"\x00" + signature)
        assert not jwks.verify(_public(SigningKey("other")), message, signature)
    too_big = (public.n + 1).to_bytes(256, "big")
    assert not jwks.verify(public, b"m", too_big)


def test_jwks_parsing_keeps_usable_rsa_signing_keys_only():
    good = SigningKey("good").jwk
    small = {**good, "kid": "small", "n": "AQAB" * 30}
    parsed = jwks._parse({"keys": [good, small, {**good, "kid": "no-n", "n": None},
                                   {**good, "kid": "enc", "use": "enc"},
                                   {**good, "kid": "ec", "kty": "EC"}, {**good, "kid": 5},
                                   {**good, "kid": "rs512", "alg": "RS512"},
                                   {**good, "kid": "bad-n", "n": "!!"},
                                   {**good, "kid": "even-e", "e": "AQAA"}, "junk"]})
    assert list(parsed) == ["good"]
    assert parsed["good"].e == 65537


def test_the_pyjwt_algorithm_only_verifies():
    algorithm = jwks.rs256()
    with pytest.raises(TypeError):
        algorithm.prepare_key(b"a PEM is not a jwks.PublicKey")
    for call in (lambda: algorithm.sign(b"m", None), lambda: algorithm.to_jwk(None),
                 lambda: algorithm.from_jwk("{}")):
        with pytest.raises(NotImplementedError):
            call()
