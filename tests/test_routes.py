"""The relay contract on every route: auth, bodies, envelopes, routing."""
import io
import time

import pytest

from api import providers
from api.providers.base import Outcome, Provider
from tests.conftest import SECRET, bearer, make_token

OBS = [{"type": "ip", "value": "198.51.100.23"}]
TRIGGER = {"action-id": "misp-add-sighting", "observable_type": "ip",
           "observable_value": "198.51.100.23"}
ROUTES = ["/health", "/observe/observables", "/deliberate/observables",
          "/refer/observables", "/respond/observables", "/respond/trigger"]
PREFIXES = ["", "/misp"]


def body_for(route):
    return TRIGGER if route.endswith("trigger") else OBS


AUTH_FAILURES = [
    ("missing header", None, "Authorization header is missing"),
    ("basic scheme", "Basic dXNlcjpwYXNz", "Wrong authorization type"),
    ("bearer alone", "Bearer", "Wrong JWT structure"),
    ("three parts", "Bearer a.b.c extra", "Wrong JWT structure"),
    ("not a jwt", "Bearer not-a-jwt", "Wrong JWT structure"),
    ("wrong secret", "Bearer " + make_token(secret="another-secret-" + "y" * 40),
     "Failed to decode JWT with provided key"),
    # `alg` picks the route (HS256 or RS256); any other is a wrong structure.
    ("alg none", "Bearer " + make_token(secret=None, algorithm="none"), "Wrong JWT structure"),
    ("alg HS512", "Bearer " + make_token(algorithm="HS512"), "Wrong JWT structure"),
    ("expired", "Bearer " + make_token({"key": "k", "exp": int(time.time()) - 60}),
     "JWT has expired"),
    ("not yet valid", "Bearer " + make_token({"key": "k", "nbf": int(time.time()) + 600}),
     "JWT is not yet valid"),
    ("no key claim", "Bearer " + make_token({"other": "x"}), "Wrong JWT payload structure"),
    ("blank key claim", "Bearer " + make_token({"key": "  "}), "Wrong JWT payload structure"),
    ("non-string key", "Bearer " + make_token({"key": 42}), "Wrong JWT payload structure"),
]


@pytest.mark.parametrize("prefix", PREFIXES, ids=["plain", "prefixed"])
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case,header,reason", AUTH_FAILURES,
                         ids=[c[0] for c in AUTH_FAILURES])
def test_every_route_rejects_bad_authorization(client, prefix, route, case, header, reason):
    headers = {} if header is None else {"Authorization": header}
    response = client.post(prefix + route, json=body_for(route), headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["errors"] == [{"type": "fatal", "code": "authorization error",
                               "message": f"Authorization failed: {reason}"}]
    if route.endswith("trigger"):
        assert body["data"] == {"status": "failure"}
    else:
        assert "data" not in body


@pytest.mark.parametrize("route", ROUTES)
def test_missing_secret_key_is_an_authorization_error(client, relay_env, route):
    relay_env.delenv("SECRET_KEY")
    response = client.post(route, json=body_for(route), headers=bearer())
    assert response.get_json()["errors"][0]["message"] == \
        "Authorization failed: SECRET_KEY is missing"


def test_version_and_watchdog_need_no_token(client):
    from api.version import VERSION

    assert client.post("/version").get_json() == {"version": VERSION}
    assert client.post("/otx/version/").get_json() == {"version": VERSION}
    assert client.get("/watchdog", headers={"Health-Check": "ping"}).get_json() == \
        {"data": "ping"}


def test_watchdog_without_header_is_an_error(client):
    body = client.get("/watchdog").get_json()
    assert body == {"errors": [{"type": "fatal", "code": "health check failed",
                                "message": "Invalid Health Check"}]}


@pytest.mark.parametrize("method,path,status", [
    ("post", "/post", 404), ("get", "/get", 404), ("post", "/foo/health", 404),
    ("get", "/health", 405), ("get", "/observe/observables", 405),
    ("put", "/refer/observables", 405), ("post", "/watchdog", 405),
    ("delete", "/misp/health", 405),
])
def test_unknown_paths_and_methods_answer_json(client, method, path, status):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.is_json
    assert response.get_json()["errors"][0]["type"] == "fatal"


INVALID_BODIES = [
    ("not json", b"{not json", "not valid JSON"),
    ("object", b'{"type": "ip", "value": "1.1.1.1"}', "Expected a list"),
    ("list of strings", b'["1.1.1.1"]', "Item 0 is not an object"),
    ("missing type", b'[{"value": "1.1.1.1"}]', "missing 'type'"),
    ("missing value", b'[{"type": "ip"}]', "missing 'value'"),
    ("blank value", b'[{"type": "ip", "value": ""}]', "'value' may not be blank"),
    ("blank type", b'[{"type": "", "value": "x"}]', "'type' may not be blank"),
    ("number value", b'[{"type": "ip", "value": 1}]', "'value' must be a string"),
    ("extra key", b'[{"type": "ip", "value": "1.1.1.1", "x": 1}]', "unknown field(s): x"),
    ("empty body", b"", "not valid JSON"),
]


@pytest.mark.parametrize("route", ROUTES[1:5])
@pytest.mark.parametrize("case,raw,fragment", INVALID_BODIES,
                         ids=[c[0] for c in INVALID_BODIES])
def test_invalid_bodies_are_invalid_argument(client, route, case, raw, fragment):
    response = client.post(route, data=raw, headers=bearer(),
                           content_type="application/json")
    errors = response.get_json()["errors"]
    assert errors[0]["code"] == "invalid argument"
    assert fragment in errors[0]["message"]


@pytest.mark.parametrize("raw", [b"[1, 2]", b'{"action-id": "x"}',
                                 b'{"action-id": "x", "observable_type": "ip", '
                                 b'"observable_value": " "}'])
def test_invalid_trigger_bodies(client, raw):
    body = client.post("/respond/trigger", data=raw, headers=bearer()).get_json()
    assert body["data"] == {"status": "failure"}
    assert body["errors"][0]["code"] == "invalid argument"


def test_body_over_the_size_limit_is_refused(client, relay_env):
    relay_env.setenv("RELAY_MAX_BODY_BYTES", "1000")
    big = [{"type": "ip", "value": f"10.0.{i // 250}.{i % 250}"} for i in range(100)]
    errors = client.post("/observe/observables", json=big, headers=bearer()).get_json()["errors"]
    assert errors[0]["code"] == "invalid argument"
    assert "larger than the relay's limit of 1000 bytes" in errors[0]["message"]


def test_chunked_body_over_the_limit_is_refused(client, relay_env):
    relay_env.setenv("RELAY_MAX_BODY_BYTES", "100")

    raw = b"[" + b'{"type": "ip", "value": "10.0.0.1"},' * 10 + b'{"type": "ip", "value": "x"}]'
    headers = dict(bearer(), **{"Transfer-Encoding": "chunked"})
    response = client.post("/refer/observables", input_stream=io.BytesIO(raw),
                           headers=headers, content_type="application/json",
                           environ_overrides={"wsgi.input_terminated": True})
    assert "larger than the relay's limit" in response.get_json()["errors"][0]["message"]


def test_too_many_observables_are_refused(client, relay_env):
    relay_env.setenv("RELAY_MAX_OBSERVABLES", "3")
    errors = client.post("/refer/observables", json=OBS * 4,
                         headers=bearer()).get_json()["errors"]
    assert "4 observables exceed the relay's limit of 3" in errors[0]["message"]


class FakeProvider(Provider):
    """A provider with observe only, to exercise the generic routing."""

    name = "cyberprotect"
    title = "Fake"
    supported_types = frozenset({"ip"})
    credential_claims = ()
    capabilities = ("observe",)
    calls = []

    def observe(self, ctx, observables):
        FakeProvider.calls.append((ctx, observables))
        return Outcome()


@pytest.fixture
def fake(monkeypatch):
    FakeProvider.calls = []
    provider = FakeProvider()
    monkeypatch.setitem(providers._loaded, "cyberprotect", provider)
    return provider


@pytest.mark.parametrize("route,empty", [
    ("/deliberate/observables", {}), ("/refer/observables", []),
    ("/respond/observables", []), ("/health", {"status": "ok"}),
])
def test_unsupported_capability_answers_the_empty_result(client, fake, route, empty):
    body = client.post("/cyberprotect" + route, json=OBS, headers=bearer({})).get_json()
    assert body == {"data": empty}


def test_trigger_on_a_provider_without_actions_fails_cleanly(client, fake):
    body = client.post("/cyberprotect/respond/trigger", json=TRIGGER,
                       headers=bearer({})).get_json()
    assert body["data"] == {"status": "failure"}
    assert "offers no response action 'misp-add-sighting'" in body["errors"][0]["message"]


def test_unsupported_types_dropped_and_duplicates_merged_in_order(client, fake):
    observables = [{"type": "ip", "value": "10.0.0.2"}, {"type": "sha1", "value": "ab"},
                   {"type": "ip", "value": "10.0.0.1"}, {"type": "ip", "value": "10.0.0.2"},
                   {"type": "IP", "value": "10.0.0.3"}]
    body = client.post("/cyberprotect/observe/observables", json=observables,
                       headers=bearer({})).get_json()
    assert body == {"data": {}}
    (_, seen), = FakeProvider.calls
    assert seen == [{"type": "ip", "value": "10.0.0.2"}, {"type": "ip", "value": "10.0.0.1"}]


def test_only_unsupported_types_make_no_provider_call(client, fake):
    body = client.post("/cyberprotect/observe/observables",
                       json=[{"type": "email", "value": "a@b.c"}],
                       headers=bearer({})).get_json()
    assert body == {"data": {}}
    assert FakeProvider.calls == []


def test_relay_provider_selects_the_unprefixed_provider(client, fake, relay_env):
    relay_env.setenv("RELAY_PROVIDER", "cyberprotect")
    client.post("/observe/observables/", json=OBS, headers=bearer({}))
    assert len(FakeProvider.calls) == 1


def test_unknown_relay_provider_is_a_clear_error(client, relay_env):
    relay_env.setenv("RELAY_PROVIDER", "virustotal")
    error = client.post("/health", headers=bearer()).get_json()["errors"][0]
    assert error["code"] == "provider unavailable"
    assert "RELAY_PROVIDER 'virustotal' is not one of misp" in error["message"]


def test_provider_that_does_not_load_is_a_clear_error(client, monkeypatch):
    monkeypatch.delitem(providers._loaded, "otx", raising=False)

    def broken(name):
        raise ImportError(name)

    monkeypatch.setattr(providers.importlib, "import_module", broken)
    error = client.post("/otx/observe/observables", json=OBS,
                        headers=bearer()).get_json()["errors"][0]
    assert error == {"type": "fatal", "code": "provider unavailable",
                     "message": "The 'otx' provider is not available in this relay version"}


def test_entities_limit_claim_and_env_reach_the_provider(client, fake, relay_env):
    relay_env.setenv("CTR_ENTITIES_LIMIT", "7")
    client.post("/cyberprotect/observe/observables", json=OBS, headers=bearer({}))
    client.post("/cyberprotect/observe/observables", json=OBS,
                headers=bearer({"CTR_ENTITIES_LIMIT": "3"}))
    client.post("/cyberprotect/observe/observables", json=OBS,
                headers=bearer({"CTR_ENTITIES_LIMIT": "-1"}))
    relay_env.setenv("CTR_ENTITIES_LIMIT", "zero")
    client.post("/cyberprotect/observe/observables", json=OBS, headers=bearer({}))
    assert [ctx.entities_limit for ctx, _ in FakeProvider.calls] == [7, 3, 7, 100]


def test_claims_travel_in_the_request_not_in_globals(client, fake, app):
    client.post("/cyberprotect/observe/observables", json=OBS,
                headers=bearer({"key": "tenant-a", "CTR_ENTITIES_LIMIT": 5}))
    client.post("/cyberprotect/observe/observables", json=OBS,
                headers=bearer({"key": "tenant-b"}))
    first, second = (ctx for ctx, _ in FakeProvider.calls)
    assert (first.key, first.entities_limit) == ("tenant-a", 5)
    assert (second.key, second.entities_limit) == ("tenant-b", 100)
    assert "CTR_ENTITIES_LIMIT" not in app.config
    with pytest.raises(TypeError):
        first.claims["key"] = "changed"


def test_unexpected_exception_is_an_envelope_not_a_500(client, fake, monkeypatch):
    def explode(ctx, observables):
        raise ValueError("boom")

    monkeypatch.setattr(fake, "observe", explode)
    response = client.post("/cyberprotect/observe/observables", json=OBS,
                           headers=bearer({}))
    assert response.status_code == 200
    assert response.get_json()["errors"][0]["code"] == "internal error"


def test_secret_is_never_echoed(client):
    body = client.post("/health", headers={"Authorization": f"Bearer {SECRET}"}).get_data(
        as_text=True)
    assert SECRET not in body
