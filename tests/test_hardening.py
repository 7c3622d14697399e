"""Issue 11 hardening across providers: credential claims, request bodies,
size caps and error labels, over real HTTP against the emulators."""
import pytest

from api import providers
from tests.conftest import bearer
from tests.emulators import load as load_emulator

OBSERVABLE = {
    "misp": {"type": "ip", "value": "198.51.100.23"},
    "pulsedive": {"type": "domain", "value": "pulsedive.com"},
    "otx": {"type": "ip", "value": "198.51.100.23"},
    "cyberprotect": {"type": "ip", "value": "1.1.1.1"},
}
WRONG_PAYLOAD = [{"type": "fatal", "code": "authorization error",
                  "message": "Authorization failed: Wrong JWT payload structure"}]
# Keys that would break a header or a log line, or quote themselves in an error.
BAD_KEYS = {
    "trailing CRLF": "\r\n",
    "trailing LF": "\n",
    "leading space": " ",
    "trailing tab": "\t",
    "NUL inside": "\x00",
    "escape inside": "\x1b",
    "DEL inside": "\x7f",
    "no-break space": "\u00a0",
    "line separator": "\u2028",
    "zero-width space": "\u200b",
}


def _with(key, case):
    extra = BAD_KEYS[case]
    if case.startswith("leading"):
        return extra + key
    if "inside" in case or case in ("zero-width space", "line separator"):
        return key[:4] + extra + key[4:]
    return key + extra


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
@pytest.mark.parametrize("name", ["misp", "pulsedive", "otx"])
def test_keys_with_whitespace_or_control_characters_are_refused(
        client, use_emulator, name, case):
    emulator = use_emulator(name)
    module = load_emulator(name)
    claims = dict(module.CLAIMS, key=_with(module.CLAIMS["key"], case))
    for route, body in (("health", None), ("observe/observables", [OBSERVABLE[name]]),
                        ("deliberate/observables", [OBSERVABLE[name]])):
        response = client.post(f"/{name}/{route}", json=body, headers=bearer(claims))
        assert response.get_json() == {"errors": WRONG_PAYLOAD}, (route, case)
    assert emulator.calls == 0


@pytest.mark.parametrize("name", providers.NAMES)
def test_every_credential_claim_is_checked(client, use_emulator, monkeypatch, name):
    """Whatever claims a provider declares, each one is checked the same way."""
    provider = providers.get(name)
    claims = {claim: "good-value-1234" for claim in provider.credential_claims}
    claims["secret"] = "abc\r\n"
    monkeypatch.setattr(type(provider), "credential_claims",
                        tuple(provider.credential_claims) + ("secret",))
    emulator = use_emulator(name)
    response = client.post(f"/{name}/health", headers=bearer(claims))
    assert response.get_json() == {"errors": WRONG_PAYLOAD}
    assert emulator.calls == 0


# --- item 13: an error names its observable once ---------------------------------
def _subjects_named_once(body, values):
    messages = [error["message"] for error in body["errors"]]
    for message in messages:
        for value in values:
            assert message.count(value) <= 1, message
    return messages


def test_deadline_errors_name_the_observable_once(client, use_emulator, relay_env):
    emulator = use_emulator("otx")
    emulator.latency = 2.0
    relay_env.setenv("RELAY_DEADLINE", "0.4")
    relay_env.setenv("RELAY_HTTP_TIMEOUT", "5")
    values = ["198.51.100.23", "198.51.100.24"]
    body = client.post("/otx/deliberate/observables",
                       json=[{"type": "ip", "value": v} for v in values],
                       headers=bearer(load_emulator("otx").CLAIMS)).get_json()
    (message,) = _subjects_named_once(body, values)
    assert message.startswith("ip 198.51.100.23, ip 198.51.100.24: ")


@pytest.mark.parametrize("name", ["pulsedive", "otx", "cyberprotect"])
def test_internal_errors_name_the_observable_once(client, use_emulator, monkeypatch, name):
    use_emulator(name)
    provider = providers.get(name)

    def broken(ctx, observable):
        raise KeyError(observable["value"])

    monkeypatch.setattr(type(provider), "deliberate_one", broken)
    obs = OBSERVABLE[name]
    body = client.post(f"/{name}/deliberate/observables", json=[obs],
                       headers=bearer(load_emulator(name).CLAIMS)).get_json()
    assert _subjects_named_once(body, [obs["value"]]) == [
        f"{obs['type']} {obs['value']}: unexpected error in the relay"]


def test_cyberprotect_shape_errors_name_the_observable_once(client, use_emulator):
    emulator = use_emulator("cyberprotect")
    emulator.options["responses"] = {"1.1.1.1": (200, {"scores": "x"})}
    body = client.post("/cyberprotect/observe/observables", json=[OBSERVABLE["cyberprotect"]],
                       headers=bearer({})).get_json()
    (message,) = _subjects_named_once(body, ["1.1.1.1"])
    assert message.startswith("ip 1.1.1.1: ")


# --- item 10: dot segments never reach a path -------------------------------------
@pytest.mark.parametrize("value", [".", "..", " .. "])
@pytest.mark.parametrize("name", ["otx", "cyberprotect"])
def test_dot_segments_are_refused_where_the_value_is_a_path(client, use_emulator, name, value):
    emulator = use_emulator(name)
    observables = [{"type": t, "value": value} for t in ("ip", "domain")]
    for route in ("observe", "deliberate"):
        body = client.post(f"/{name}/{route}/observables", json=observables,
                           headers=bearer(load_emulator(name).CLAIMS)).get_json()
        assert body == {"data": {}}
    assert emulator.calls == 0


def test_pulsedive_sends_dot_values_as_a_query_parameter(client, use_emulator):
    emulator = use_emulator("pulsedive")
    body = client.post("/pulsedive/deliberate/observables",
                       json=[{"type": "domain", "value": ".."}],
                       headers=bearer(load_emulator("pulsedive").CLAIMS)).get_json()
    assert "verdicts" not in body.get("data", {})
    assert emulator.requests
    assert {r["path"] for r in emulator.requests} == {"/api/info.php"}
    assert {r["args"]["indicator"][0] for r in emulator.requests} == {".."}


# --- item 12: nested request bodies ----------------------------------------------
@pytest.mark.parametrize("route", ["observe/observables", "respond/trigger"])
def test_deeply_nested_bodies_are_invalid_arguments(client, route):
    nested = b"[" * 100000 + b"]" * 100000
    trigger = b'{"action-id": "x", "observable_type": "ip", "observable_value": "1.1.1.1", ' \
              b'"extra": ' + nested + b"}"
    response = client.post(f"/otx/{route}", data=trigger if "trigger" in route else nested,
                           content_type="application/json",
                           headers=bearer(load_emulator("otx").CLAIMS))
    (error,) = response.get_json()["errors"]
    assert error["code"] == "invalid argument"
    assert error["message"] == "Invalid JSON payload received. The body is nested too deeply."


# --- item 9: answers bounded like requests ------------------------------------------
def test_values_over_the_length_limit_are_refused(client, use_emulator, relay_env):
    emulator = use_emulator("otx")
    auth = bearer(load_emulator("otx").CLAIMS)
    long_url = "http://example.com/" + "a" * 2029
    assert len(long_url) == 2048
    body = client.post("/otx/deliberate/observables", json=[{"type": "url", "value": long_url}],
                       headers=auth).get_json()
    assert "errors" not in body
    body = client.post("/otx/deliberate/observables",
                       json=[{"type": "ip", "value": "1.1.1.1"},
                             {"type": "url", "value": long_url + "b"}], headers=auth).get_json()
    assert body == {"errors": [{
        "type": "fatal", "code": "invalid argument",
        "message": "Invalid JSON payload received. Item 1: 'value' is longer than the relay's "
                   "limit of 2048 characters (RELAY_MAX_VALUE_LENGTH)."}]}
    relay_env.setenv("RELAY_MAX_VALUE_LENGTH", "10")
    body = client.post("/otx/refer/observables", json=[{"type": "ip", "value": "192.0.2.100"}],
                       headers=auth).get_json()
    assert body["errors"][0]["code"] == "invalid argument"
    assert emulator.calls == 1


def _heavy_general(pulses=10):
    """An OTX general section with `pulses` pulses of maximal text."""
    return {"pulse_info": {"count": pulses, "pulses": [{
        "id": f"{n:024x}", "name": "N" * 1024, "description": "D" * 5000,
        "created": "2024-01-01T00:00:00", "modified": "2024-01-01T00:00:00",
        "is_modified": False, "tags": [f"tag{n}-{t}" for t in range(20)]}
        for n in range(pulses)]}}


def test_answers_over_the_response_limit_keep_their_verdicts(client, use_emulator, relay_env):
    from api import response_size

    emulator = use_emulator("otx")
    values = [f"198.18.7.{n}" for n in range(30)]
    emulator.options["body"] = {value: _heavy_general() for value in values}
    relay_env.setenv("RELAY_MAX_RESPONSE_BYTES", "400000")
    observables = [{"type": "ip", "value": value} for value in values]
    response = client.post("/otx/observe/observables", json=observables,
                           headers=bearer(load_emulator("otx").CLAIMS))
    text = response.get_data(as_text=True)
    assert response_size.lambda_size(text) <= 400000
    body = response.get_json()
    (error,) = body["errors"]
    assert error["code"] == "response too large"
    assert "relationships, sightings and indicators were left out" in error["message"]
    assert body["data"]["verdicts"]["count"] == 30
    assert body["data"]["judgements"]["count"] == 30
    assert "relationships" not in body["data"]
    # Untrimmed, the same request is far larger.
    relay_env.setenv("RELAY_MAX_RESPONSE_BYTES", "6000000")
    full = client.post("/otx/observe/observables", json=observables,
                       headers=bearer(load_emulator("otx").CLAIMS))
    assert "errors" not in full.get_json()
    assert response_size.lambda_size(full.get_data(as_text=True)) > 3 * 400000


def test_the_default_limit_is_under_lambdas(app):
    from api import response_size
    from api.settings import Settings

    limit = Settings.from_env({}).max_response_bytes
    assert limit <= 6 * 1024 * 1024 - 200 * 1024   # room for status and headers
    doc = {"id": "x", "description": '"quoted" \\ ' * 500}
    big = {"data": {"verdicts": {"count": 1, "docs": [doc]},
                    "sightings": {"count": 2000, "docs": [doc] * 2000}}}
    with app.app_context():
        text = response_size.fit(big, limit)
        assert response_size.lambda_size(text) <= limit
        assert '"response too large"' in text
        huge_verdicts = {"data": {"verdicts": {"count": 2000, "docs": [doc] * 2000}}}
        assert json_errors(response_size.fit(huge_verdicts, limit)) == ["response too large"]


def json_errors(text):
    import json

    body = json.loads(text)
    assert "data" not in body
    return [e["code"] for e in body["errors"]]


def test_trigger_values_over_the_length_limit_are_refused(client, use_emulator):
    emulator = use_emulator("pulsedive")
    body = client.post("/pulsedive/respond/trigger", json={
        "action-id": "pulsedive-scan", "observable_type": "domain",
        "observable_value": "a" * 2045 + ".com"}, headers=bearer(load_emulator("pulsedive").CLAIMS))
    assert body.get_json() == {"data": {"status": "failure"}, "errors": [{
        "type": "fatal", "code": "invalid argument",
        "message": "Invalid JSON payload received. 'observable_value' is longer than the "
                   "relay's limit of 2048 characters (RELAY_MAX_VALUE_LENGTH)."}]}
    assert emulator.calls == 0
