"""The OTX provider over real HTTP against the loopback OTX emulator."""
import json
import pathlib
import time

import pytest

from api.providers.otx import PROVIDER
from tests.conftest import bearer
from tests.emulators import otx as emu_data

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO = json.loads((ROOT / "observables.json").read_text())
IP = {"type": "ip", "value": "198.51.100.23"}
DOMAIN = {"type": "domain", "value": "login-verify.example.net"}
HOSTNAME = {"type": "hostname", "value": "cdn.login-verify.example.net"}
URL = {"type": "url", "value": emu_data.DEMO_URL}
EMAIL = {"type": "email", "value": "billing@login-verify.example.net"}
UNKNOWN = {"type": "ip", "value": "192.0.2.200"}
AUTH = bearer(emu_data.CLAIMS)


@pytest.fixture
def otx(use_emulator):
    return use_emulator("otx")


def post(client, route, observables, headers=AUTH):
    response = client.post(f"/otx/{route}", json=observables, headers=headers)
    assert response.status_code == 200
    return response.get_json()


def docs(body, key):
    return body.get("data", {}).get(key, {}).get("docs", [])


def by_observable(body, key, observable):
    return [d for d in docs(body, key)
            if d.get("observable") == observable or observable in d.get("observables", [])]


def sighting_times(body, observable):
    """{pulse id: sighting start_time} for one observable."""
    indicators = {d["id"]: d["external_ids"][0] for d in docs(body, "indicators")}
    links = {r["source_ref"]: indicators[r["target_ref"]] for r in docs(body, "relationships")}
    return {links[s["id"]]: s["observed_time"]["start_time"]
            for s in by_observable(body, "sightings", observable)}


def pulse_calls(otx):
    return [r for r in otx.requests if r["path"].startswith("/api/v1/pulses/")]


# --- observe ---
def test_observe_demo_observables(client, otx):
    body = post(client, "observe/observables", DEMO)
    assert "errors" not in body
    verdicts = {(v["observable"]["type"], v["observable"]["value"]): v["disposition_name"]
                for v in docs(body, "verdicts")}
    expected = {(o["type"], o["value"]): "Malicious" for o in DEMO
                if o not in (HOSTNAME, EMAIL, UNKNOWN)}
    expected[(HOSTNAME["type"], HOSTNAME["value"])] = "Suspicious"
    assert verdicts == expected
    # One indicator per pulse although several observables share the pulses.
    assert sorted(i["external_ids"][0] for i in docs(body, "indicators")) == [
        emu_data.KIT, emu_data.DROPPER, emu_data.HONEYPOT]
    assert len(by_observable(body, "sightings", IP)) == 3
    assert len(by_observable(body, "sightings", HOSTNAME)) == 1
    assert not by_observable(body, "sightings", EMAIL)
    assert not by_observable(body, "sightings", UNKNOWN)
    assert body["data"]["relationships"]["count"] == body["data"]["sightings"]["count"]
    # Each observable dated by its own row in each pulse.
    assert sighting_times(body, IP) == {
        emu_data.KIT: "2024-05-20T08:15:05Z", emu_data.DROPPER: "2024-05-25T21:03:50Z",
        emu_data.HONEYPOT: "2024-06-01T20:00:00Z"}
    # 9 general sections (not e-mail) + each shared pulse page read once.
    assert otx.calls == 12
    assert len(pulse_calls(otx)) == 3
    assert all(r["headers"]["X-Otx-Api-Key"] == emu_data.KEY for r in otx.requests)
    for verdict in docs(body, "verdicts"):
        judgement = [j for j in docs(body, "judgements") if j["id"] == verdict["judgement_id"]]
        assert judgement and judgement[0]["observable"] == verdict["observable"]


def test_observe_sends_encoded_values(client, otx):
    odd = {"type": "url", "value": "http://a.example/x y?q=1&r=2#frag"}
    body = post(client, "observe/observables", [URL, odd])
    assert "errors" not in body
    assert by_observable(body, "verdicts", URL)
    paths = [r["path"] for r in otx.requests]
    assert f"/api/v1/indicators/url/{odd['value']}/general" in paths  # one decoded segment
    assert all(not r["args"] for r in otx.requests if "/indicators/url/" in r["path"])


def test_email_is_refer_only(client, otx):
    assert post(client, "observe/observables", [EMAIL]) == {"data": {}}
    assert post(client, "deliberate/observables", [EMAIL]) == {"data": {}}
    assert otx.calls == 0


def test_unknown_and_malformed_values_give_no_data(client, otx):
    malformed = {"type": "ip", "value": "999.1.1.1"}
    assert post(client, "observe/observables", [UNKNOWN, malformed]) == {"data": {}}
    assert otx.calls == 2


def test_benign_indicators_are_clean(client, otx):
    fp = {"type": "ip", "value": "203.0.113.53"}
    whitelisted = {"type": "domain", "value": "benign.example.org"}
    body = post(client, "observe/observables", [fp, whitelisted])
    assert [v["disposition_name"] for v in docs(body, "verdicts")] == ["Clean", "Clean"]
    assert not by_observable(body, "sightings", fp)
    # The whitelisted domain is Clean despite its pulse, which is still shown.
    assert len(by_observable(body, "sightings", whitelisted)) == 1
    # That pulse was never modified: its rows carry its own date, no lookup.
    assert otx.calls == 2 and not pulse_calls(otx)
    assert sighting_times(body, whitelisted) == {emu_data.BENIGN: "2023-11-02T10:00:00Z"}


def test_thresholds_are_settings(client, otx, relay_env):
    relay_env.setenv("OTX_MALICIOUS_PULSES", "3")
    relay_env.setenv("OTX_SUSPICIOUS_PULSES", "2")
    body = post(client, "observe/observables", [IP, DOMAIN, HOSTNAME])
    names = {v["observable"]["value"]: v["disposition_name"] for v in docs(body, "verdicts")}
    assert names == {IP["value"]: "Malicious", DOMAIN["value"]: "Suspicious"}
    assert not by_observable(body, "judgements", HOSTNAME)
    assert len(by_observable(body, "sightings", HOSTNAME)) == 1


def test_entities_limit_keeps_newest_pulses(client, otx):
    headers = bearer(dict(emu_data.CLAIMS, CTR_ENTITIES_LIMIT=2))
    body = post(client, "observe/observables", [IP], headers=headers)
    assert set(sighting_times(body, IP)) == {emu_data.KIT, emu_data.HONEYPOT}
    assert len(docs(body, "indicators")) == 2


# --- pulse lookups ---
def test_failing_pulse_lookup_keeps_every_pulse(client, otx):
    otx.fail = {emu_data.KIT: 500, emu_data.DROPPER: "not json"}
    body = post(client, "observe/observables", [IP])
    assert "errors" not in body
    # The failed pulses fall back to their own dates; the third keeps its row's.
    assert sighting_times(body, IP) == {
        emu_data.KIT: "2024-05-20T08:15:02Z", emu_data.DROPPER: "2024-05-25T21:03:44Z",
        emu_data.HONEYPOT: "2024-06-01T20:00:00Z"}


def test_pulse_pages_are_bounded(client, otx, relay_env):
    relay_env.setenv("RELAY_CACHE_TTL", "0")   # every lookup goes upstream here
    relay_env.setenv("OTX_PULSE_PAGE_SIZE", "10")
    relay_env.setenv("OTX_PULSE_PAGES", "3")
    body = post(client, "observe/observables", [IP])
    assert sighting_times(body, IP)[emu_data.HONEYPOT] == "2024-06-01T20:00:00Z"
    honeypot = [r for r in pulse_calls(otx) if emu_data.HONEYPOT in r["path"]]
    assert [r["args"]["page"] for r in honeypot] == [["1"], ["2"], ["3"]]
    assert honeypot[0]["args"]["limit"] == ["10"]
    assert honeypot[0]["args"]["sort"] == ["-created"]

    otx.reset()
    relay_env.setenv("OTX_PULSE_PAGES", "2")
    body = post(client, "observe/observables", [IP])
    # Not on the pages read: the pulse's own date, and no third page.
    assert sighting_times(body, IP)[emu_data.HONEYPOT] == "2024-06-01T22:18:45Z"
    assert len([r for r in pulse_calls(otx) if emu_data.HONEYPOT in r["path"]]) == 2


def test_pulse_lookups_per_observable_are_capped(client, otx, relay_env):
    relay_env.setenv("RELAY_CACHE_TTL", "0")   # every lookup goes upstream here
    relay_env.setenv("OTX_PULSE_LOOKUPS", "1")
    body = post(client, "observe/observables", [IP])
    assert [r["path"] for r in pulse_calls(otx)] == [
        f"/api/v1/pulses/{emu_data.KIT}/indicators"]  # the newest pulse only
    assert len(sighting_times(body, IP)) == 3

    otx.reset()
    relay_env.setenv("OTX_PULSE_LOOKUPS", "0")
    body = post(client, "observe/observables", [IP])
    assert otx.calls == 1
    assert sighting_times(body, IP)[emu_data.KIT] == "2024-05-20T08:15:02Z"


def test_slow_pulse_lookup_stops_at_the_deadline(client, otx, relay_env):
    relay_env.setenv("RELAY_DEADLINE", "1")
    otx.options["delay"] = {emu_data.KIT: 3.0}
    started = time.monotonic()
    body = post(client, "observe/observables", [IP])
    assert time.monotonic() - started < 1.5
    assert "errors" not in body
    assert sighting_times(body, IP)[emu_data.KIT] == "2024-05-20T08:15:02Z"
    assert sighting_times(body, IP)[emu_data.DROPPER] == "2024-05-25T21:03:50Z"


# --- upstream errors ---
@pytest.mark.parametrize("status", [400, 404])
def test_missing_answers_are_no_data(client, otx, status):
    otx.fail = {IP["value"]: status}
    body = post(client, "observe/observables", [IP, DOMAIN])
    assert "errors" not in body
    assert not by_observable(body, "sightings", IP)
    assert by_observable(body, "sightings", DOMAIN)


@pytest.mark.parametrize("failure, code", [
    (500, "service unavailable"),
    (503, "service unavailable"),
    ("not json", "unexpected response"),
    (418, "unexpected response"),
])
def test_failing_observable_keeps_the_others(client, otx, failure, code):
    otx.fail = {IP["value"]: failure}
    body = post(client, "observe/observables", [IP, DOMAIN])
    assert [e["code"] for e in body["errors"]] == [code]
    assert body["errors"][0]["message"].startswith("ip 198.51.100.23: AlienVault OTX")
    assert by_observable(body, "verdicts", DOMAIN)
    assert not by_observable(body, "verdicts", IP)


def test_timeout_keeps_the_others(client, otx, relay_env):
    relay_env.setenv("RELAY_HTTP_TIMEOUT", "0.3")
    otx.options["delay"] = {IP["value"]: 1.0}
    body = post(client, "observe/observables", [IP, DOMAIN])
    assert body["errors"] == [{
        "type": "fatal", "code": "request timeout",
        "message": "ip 198.51.100.23: AlienVault OTX did not answer in time"}]
    assert by_observable(body, "sightings", DOMAIN)
    assert not by_observable(body, "sightings", IP)


def test_rate_limit_is_too_many_requests(client, otx, relay_env):
    relay_env.setenv("RELAY_CACHE_TTL", "0")   # every lookup goes upstream here
    otx.fail = {IP["value"]: 429}
    otx.options["delay"] = {IP["value"]: 0.3}  # the domain's answers come first
    body = post(client, "observe/observables", [IP, DOMAIN])
    assert [e["code"] for e in body["errors"]] == ["too many requests"]
    assert by_observable(body, "verdicts", DOMAIN)
    # The key is now known to be limited: the next request fails fast.
    calls = otx.calls
    body = post(client, "deliberate/observables", [DOMAIN])
    assert body["errors"][0]["code"] == "too many requests"
    assert otx.calls == calls


def test_rate_limit_knob(client, otx):
    otx.rate_limit = 0
    body = post(client, "deliberate/observables", [IP])
    assert body["errors"][0]["code"] == "too many requests"
    assert "retry in 1 s" in body["errors"][0]["message"]


def test_wrong_key_is_an_authorization_error(client, otx):
    body = post(client, "observe/observables", [IP, DOMAIN], headers=bearer({"key": "wrong"}))
    assert "data" not in body
    assert [e["code"] for e in body["errors"]] == ["authorization error"]
    assert "AlienVault OTX rejected the API key (HTTP 403)" in body["errors"][0]["message"]


# --- deliberate, refer, health, routes ---
def test_deliberate_reads_general_only(client, otx):
    body = post(client, "deliberate/observables", [IP, HOSTNAME, UNKNOWN])
    assert list(body["data"]) == ["verdicts"]
    names = {v["observable"]["value"]: v["disposition_name"] for v in docs(body, "verdicts")}
    assert names == {IP["value"]: "Malicious", HOSTNAME["value"]: "Suspicious"}
    assert all("judgement_id" not in v for v in docs(body, "verdicts"))
    assert otx.calls == 3 and not pulse_calls(otx)


def test_refer_links_without_calling_otx(client, otx):
    odd = {"type": "url", "value": "http://a.example/x y?q=1#f"}
    body = post(client, "refer/observables", [EMAIL, odd, {"type": "ipv6", "value": "2001:db8::1"},
                                              {"type": "sha256", "value": emu_data.DEMO_SHA256}])
    links = body["data"]
    assert otx.calls == 0
    assert links[0] == {
        "id": "ref-avotx-search-email-billing%40login-verify.example.net",
        "title": "Search for this email",
        "description": "Lookup this email on AlienVault OTX",
        "url": f"{otx.url}/indicator/email/billing@login-verify.example.net",
        "categories": ["Search", "AlienVault OTX"]}
    assert links[1]["id"] == "ref-avotx-search-url-http%3A%2F%2Fa.example%2Fx%20y%3Fq%3D1%23f"
    assert links[1]["url"] == f"{otx.url}/indicator/url/http:%2F%2Fa.example%2Fx%20y%3Fq%3D1%23f"
    assert links[2]["url"] == f"{otx.url}/indicator/ip/2001:db8::1"
    assert links[2]["title"] == "Search for this IPv6"
    assert links[3]["url"] == f"{otx.url}/indicator/file/{emu_data.DEMO_SHA256}"


def test_refer_defaults_to_the_public_site(client):
    body = post(client, "refer/observables", [IP])
    assert body["data"][0]["url"] == "https://otx.alienvault.com/indicator/ip/198.51.100.23"


def test_health(client, otx):
    assert client.post("/otx/health", headers=AUTH).get_json() == {"data": {"status": "ok"}}
    assert otx.requests[-1]["path"] == "/api/v1/user/me"
    body = client.post("/otx/health", headers=bearer({"key": "wrong"})).get_json()
    assert body == {"errors": [{
        "type": "fatal", "code": "authorization error",
        "message": "Authorization failed: AlienVault OTX rejected the API key (HTTP 403)"}]}


@pytest.mark.parametrize("failure, code", [(404, "unexpected response"),
                                           (502, "service unavailable")])
def test_health_failures(client, otx, failure, code):
    otx.fail = {"user/me": failure}
    body = client.post("/otx/health", headers=AUTH).get_json()
    assert body["errors"][0]["code"] == code


def test_unprefixed_routes_with_relay_provider(client, otx, relay_env):
    relay_env.setenv("RELAY_PROVIDER", "otx")
    body = client.post("/deliberate/observables", json=[IP], headers=AUTH).get_json()
    assert docs(body, "verdicts")[0]["disposition_name"] == "Malicious"


def test_missing_key_claim(client, otx):
    body = post(client, "observe/observables", [IP], headers=bearer({}))
    assert body["errors"][0]["code"] == "authorization error"
    assert otx.calls == 0


def test_declaration():
    assert PROVIDER.name == "otx" and PROVIDER.title == "AlienVault OTX"
    assert PROVIDER.claim_prompts == {"key": "AlienVault OTX API key"}
    assert PROVIDER.max_entities_limit == 1000
    assert PROVIDER.supported_types == {"domain", "hostname", "email", "md5", "sha1",
                                        "sha256", "ip", "ipv6", "url"}


def test_emulator_bench_observables_are_hits(client, otx):
    observables = emu_data.observables(20)
    assert len({o["value"] for o in observables}) == 20
    body = post(client, "observe/observables", observables)
    assert len(docs(body, "verdicts")) == 20
    assert len(docs(body, "indicators")) == 3  # the campaign and two clusters
    assert otx.calls == 20 + 3
