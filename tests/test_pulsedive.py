"""The Pulsedive provider over real HTTP against its loopback emulator."""
import json
import pathlib

import pytest

from api.providers.pulsedive import PROVIDER, mapping
from tests import samples
from tests.conftest import bearer
from tests.emulators import pulsedive as emulator_module

KEY = emulator_module.CLAIMS
DEMO = json.loads((pathlib.Path(__file__).resolve().parents[1]
                   / "observables.json").read_text())
SUPPORTED = [o for o in DEMO if o["type"] in ("ip", "ipv6", "domain", "hostname", "url")]
IP = {"type": "ip", "value": "198.51.100.23"}
DOMAIN = {"type": "domain", "value": "login-verify.example.net"}
HOSTNAME = {"type": "hostname", "value": "cdn.login-verify.example.net"}
MISSING = {"type": "ip", "value": "192.0.2.200"}


@pytest.fixture
def emu(use_emulator):
    PROVIDER.iids.clear()     # iids learned by earlier tests
    return use_emulator("pulsedive")


def post(client, route, body, claims=KEY, prefix="/pulsedive"):
    response = client.post(prefix + route, json=body, headers=bearer(claims))
    assert response.status_code == 200
    return response.get_json()


def observe(client, body, **kwargs):
    return post(client, "/observe/observables", body, **kwargs)


def by_value(docs, field="observable"):
    return {doc[field]["value"]: doc for doc in docs}


# --- observe / deliberate ---------------------------------------------------------

def test_observe_demo_observables_one_call_each(client, emu):
    body = observe(client, DEMO)
    assert "errors" not in body
    data = body["data"]
    verdicts = by_value(data["verdicts"]["docs"])
    assert set(verdicts) == {o["value"] for o in SUPPORTED} - {MISSING["value"]}
    assert verdicts[IP["value"]]["disposition"] == 2
    assert verdicts["2001:db8:bad::23"]["disposition"] == 3
    # Pulsedive types the hostname "domain"; the entities keep "hostname".
    assert verdicts[HOSTNAME["value"]]["observable"] == HOSTNAME
    assert emu.calls == len(SUPPORTED)
    sent = [r["args"] for r in emu.requests]
    assert all(args["key"] == [KEY["key"]] for args in sent)
    assert sorted(args["indicator"][0] for args in sent) == sorted(
        o["value"] for o in SUPPORTED)
    ids = [doc["id"] for doc in data["indicators"]["docs"]]
    assert len(ids) == len(set(ids))
    relations = [rel for s in data["sightings"]["docs"] for rel in s.get("relations", [])]
    assert {"origin": mapping.ORIGIN, "relation": "Resolved_To", "source": DOMAIN,
            "related": IP} in relations


def test_shared_threat_is_one_indicator_across_observables(client, emu):
    data = observe(client, [DOMAIN, {"type": "url", "value": DEMO[4]["value"]}])["data"]
    titles = [doc["title"] for doc in data["indicators"]["docs"]]
    assert titles.count("Threat: Credential Phishing Kit") == 1
    sightings = [s for s in data["sightings"]["docs"]
                 if s["title"] == "Threat: Credential Phishing Kit"]
    assert len(sightings) == 2


def test_deliberate_gives_verdicts_only_from_one_lookup(client, emu):
    body = post(client, "/deliberate/observables", [IP, DOMAIN, MISSING])
    assert list(body["data"]) == ["verdicts"]
    verdicts = body["data"]["verdicts"]["docs"]
    assert {v["observable"]["value"] for v in verdicts} == {IP["value"], DOMAIN["value"]}
    assert all("judgement_id" not in v for v in verdicts)
    assert emu.calls == 3


def test_unknown_indicator_is_no_data_not_an_error(client, emu):
    assert observe(client, [MISSING]) == {"data": {}}
    assert post(client, "/deliberate/observables", [MISSING]) == {"data": {}}


def test_unsupported_and_blank_observables_make_no_call(client, emu):
    body = observe(client, [{"type": "md5", "value": "8b83fc5d3a6a80281269f9e337fe3fff"},
                            {"type": "domain", "value": "   "}])
    assert body == {"data": {}}
    assert emu.calls == 0


def test_entities_limit_from_the_token(client, emu):
    data = observe(client, [DOMAIN, IP], claims=dict(KEY, CTR_ENTITIES_LIMIT=1))["data"]
    for value in (DOMAIN["value"], IP["value"]):
        mine = [s for s in data["sightings"]["docs"] if s["observables"][0]["value"] == value]
        assert len(mine) == 1
    assert data["indicators"]["count"] == data["relationships"]["count"] == 2


@pytest.mark.parametrize("name", [
    "info_domain_parkingcrew.net_medium_threats_feeds.json",
    "info_domain_cisco.com_none_retired.json",
    "info_ip_144.76.107.175_none_retired_trimmed.json",
    "analyze_result_data_pulsedive.com.json",
])
def test_real_samples_replayed_through_the_emulator(client, emu, name):
    info = samples.load("pulsedive", name)
    obs = {"type": info["type"], "value": info["indicator"]}
    emu.options["responses"] = {obs["value"]: (200, info)}
    data = observe(client, [obs])["data"]
    assert data["judgements"]["docs"][0]["source_uri"].endswith(f"iid={info['iid']}")
    findings = sum(len(info.get(k, [])) for k in ("riskfactors", "threats", "feeds"))
    assert data.get("indicators", {}).get("count", 0) == findings


def test_real_404_sample_is_no_data(client, emu):
    emu.options["responses"] = {IP["value"]: (
        404, samples.load("pulsedive", "error_404_indicator_not_found.json"))}
    assert observe(client, [IP]) == {"data": {}}


# --- upstream errors ------------------------------------------------------------------

def error_of(body):
    assert len(body["errors"]) == 1
    return body["errors"][0]


def assert_partial(body, failed_value, code, fragment):
    """One observable failed with `code`; the others kept their data."""
    error = error_of(body)
    assert error["code"] == code, error
    assert fragment in error["message"]
    assert failed_value in error["message"]
    values = {v["observable"]["value"] for v in body["data"]["verdicts"]["docs"]}
    assert failed_value not in values and DOMAIN["value"] in values


def test_server_error_keeps_other_observables(client, emu):
    emu.fail = {IP["value"]: 500}
    body = observe(client, [IP, DOMAIN])
    assert_partial(body, IP["value"], "service unavailable",
                   "Pulsedive answered HTTP 500: Internal server error.")


def test_bad_gateway_html_is_service_unavailable(client, emu):
    emu.fail = {IP["value"]: 502}
    body = observe(client, [IP, DOMAIN])
    assert_partial(body, IP["value"], "service unavailable", "HTTP 502")


def slow_ip(client, emu, relay_env):
    relay_env.setenv("RELAY_HTTP_TIMEOUT", "0.2")
    emu.options["latency"] = {IP["value"]: 0.6}
    return observe(client, [IP, DOMAIN])


def test_timeout_keeps_other_observables(client, emu, relay_env):
    body = slow_ip(client, emu, relay_env)
    assert_partial(body, IP["value"], "request timeout", "Pulsedive did not answer in time")
    assert emu.calls == 2     # a read timeout is not retried


def test_non_json_200_is_an_unexpected_response(client, emu):
    emu.options["responses"] = {IP["value"]: (200, "<html>maintenance</html>")}
    assert_partial(observe(client, [IP, DOMAIN]), IP["value"], "unexpected response",
                   "not JSON")


def test_non_object_json_is_an_unexpected_response(client, emu):
    emu.options["responses"] = {IP["value"]: (200, [1, 2])}
    assert_partial(observe(client, [IP, DOMAIN]), IP["value"], "unexpected response",
                   "not an object")


def test_html_404_is_not_taken_for_no_data(client, emu):
    emu.options["responses"] = {IP["value"]: (404, "<html>Not Found</html>")}
    assert_partial(observe(client, [IP, DOMAIN]), IP["value"], "unexpected response",
                   "HTTP 404")


def test_error_inside_200_is_an_error(client, emu):
    emu.options["responses"] = {IP["value"]: (200, {"error": "Something odd."})}
    assert_partial(observe(client, [IP, DOMAIN]), IP["value"], "unexpected response",
                   "Pulsedive answered an error: Something odd.")


def test_not_found_inside_200_is_no_data(client, emu):
    emu.options["responses"] = {IP["value"]: (200, {"error": "Indicator not found."})}
    body = observe(client, [IP, DOMAIN])
    assert "errors" not in body and len(body["data"]["verdicts"]["docs"]) == 1


@pytest.mark.parametrize("status", [200, 408])
def test_still_processing(client, emu, status):
    processing = samples.load("pulsedive", "error_request_still_processing.json")
    emu.options["responses"] = {IP["value"]: (status, processing)}
    assert_partial(observe(client, [IP, DOMAIN]), IP["value"], "request timeout",
                   "Pulsedive is still processing this indicator "
                   "(Request(s) still processing.)")


def test_missing_fields_are_data_structure_changed(client, emu):
    info = emulator_module.lookup(IP["value"])
    del info["risk"]
    emu.options["responses"] = {IP["value"]: (200, info)}
    assert_partial(observe(client, [IP, DOMAIN]), IP["value"], "unexpected response",
                   "data structure of the Pulsedive API has changed (no 'risk')")
    body = post(client, "/deliberate/observables", [IP, DOMAIN])
    assert "data structure" in error_of(body)["message"]


def test_other_4xx_is_an_unexpected_response(client, emu):
    emu.fail = {IP["value"]: 418}
    assert_partial(observe(client, [IP, DOMAIN]), IP["value"], "unexpected response",
                   "Pulsedive answered HTTP 418")


def test_unreachable_pulsedive(client, relay_env):
    relay_env.setenv("PULSEDIVE_API_URL", "http://127.0.0.1:9/api")
    error = error_of(observe(client, [IP]))
    assert error["code"] == "service unavailable"
    assert "Unable to reach Pulsedive" in error["message"]


def test_invalid_key(client, emu):
    error = error_of(post(client, "/health", None, claims={"key": "wrong"}))
    assert error == {"type": "fatal", "code": "authorization error",
                     "message": "Authorization failed: Pulsedive rejected the API key "
                                "(Invalid API key.)"}
    error = error_of(observe(client, [IP], claims={"key": "wrong"}))
    assert error["code"] == "authorization error"
    assert "wrong" not in json.dumps(error)


# --- health -----------------------------------------------------------------------

def test_health_is_one_authenticated_call(client, emu):
    assert post(client, "/health", None) == {"data": {"status": "ok"}}
    assert emu.calls == 1
    assert emu.requests[0]["args"] == {"iid": ["2"], "key": [KEY["key"]]}


def test_health_reports_pulsedive_failures(client, emu):
    emu.fail = {"2": 503}
    error = error_of(post(client, "/health", None))
    assert error["code"] == "service unavailable"


# --- refer ------------------------------------------------------------------------

def test_refer_needs_no_upstream_call(client, emu):
    body = post(client, "/refer/observables", [IP, HOSTNAME, MISSING])
    assert emu.calls == 0
    assert [ref["id"] for ref in body["data"]] == [
        "ref-pulsedive-search-ip-198.51.100.23",
        "ref-pulsedive-search-hostname-cdn.login-verify.example.net",
        "ref-pulsedive-search-ip-192.0.2.200"]
    assert body["data"][1]["title"] == "Search for this hostname"


def test_refer_detail_link_from_an_iid_learned_in_observe(client, emu):
    url = {"type": "url", "value": DEMO[4]["value"]}
    observe(client, [IP, url, MISSING])
    body = post(client, "/refer/observables", [IP, url, MISSING, DOMAIN])
    refs = {ref["id"]: ref for ref in body["data"]}
    assert refs["ref-pulsedive-detail-ip-198.51.100.23"]["url"] == (
        "https://pulsedive.com/indicator/?iid=91001")
    detail = ("ref-pulsedive-detail-url-"
              "http%3A%2F%2Flogin-verify.example.net%2Fsecure%2Fupdate.php")
    assert refs[detail]["url"].endswith("iid=91005")
    assert "ref-pulsedive-detail-ip-192.0.2.200" not in refs
    assert "ref-pulsedive-detail-domain-login-verify.example.net" not in refs
    # Another credential does not see what this one looked up.
    other = post(client, "/refer/observables", [IP], claims=dict(KEY, tenant="b"))
    assert [ref["id"] for ref in other["data"]] == ["ref-pulsedive-search-ip-198.51.100.23"]


def test_refer_ui_url_setting(client, emu, relay_env):
    relay_env.setenv("PULSEDIVE_UI_URL", "https://pulsedive.example/")
    body = post(client, "/refer/observables", [IP])
    assert body["data"][0]["url"].startswith("https://pulsedive.example/browse/?q=")


# --- respond ----------------------------------------------------------------------

def test_respond_offers_a_scan_per_observable(client, emu):
    body = post(client, "/respond/observables", DEMO)
    assert len(body["data"]) == len(SUPPORTED)
    action = body["data"][0]
    assert action["title"] == "Scan with Pulsedive"
    assert action["id"].startswith("pulsedive-scan-")
    assert action["query-params"] == {"observable_type": DEMO[0]["type"],
                                      "observable_value": DEMO[0]["value"]}
    assert emu.calls == 0


def trigger(client, action_id, obs, claims=KEY):
    body = {"action-id": action_id, "observable_type": obs["type"],
            "observable_value": obs["value"]}
    return post(client, "/respond/trigger", body, claims=claims)


@pytest.mark.parametrize("probe,expected", [(None, "0"), ("1", "1")])
def test_trigger_scan_succeeds(client, emu, relay_env, probe, expected):
    if probe:
        relay_env.setenv("PULSEDIVE_SCAN_PROBE", probe)
    actions = post(client, "/respond/observables", [HOSTNAME])["data"]
    body = trigger(client, actions[0]["id"], HOSTNAME)
    assert body == {"data": {"status": "success"}}
    assert emu.options["scans"] == [{"value": HOSTNAME["value"], "probe": expected,
                                     "key": KEY["key"]}]


def test_trigger_scan_failure_is_reported(client, emu):
    emu.fail = {IP["value"]: 500}
    body = trigger(client, "pulsedive-scan", IP)
    assert body["data"] == {"status": "failure"}
    assert error_of(body)["code"] == "service unavailable"


def test_trigger_scan_answer_without_qid(client, emu):
    emu.options["responses"] = {IP["value"]: (200, {"success": "ok"})}
    body = trigger(client, "pulsedive-scan", IP)
    assert body["data"] == {"status": "failure"}
    assert "no 'qid'" in error_of(body)["message"]


def test_trigger_unknown_action_or_type_fails(client, emu):
    body = trigger(client, "pulsedive-delete", IP)
    assert body["data"] == {"status": "failure"}
    assert "Unknown action 'pulsedive-delete'" in error_of(body)["message"]
    body = trigger(client, "pulsedive-scan", {"type": "md5", "value": "abc"})
    assert body["data"] == {"status": "failure"}
    assert error_of(body)["code"] == "invalid argument"
    assert emu.calls == 0


# --- routing ----------------------------------------------------------------------

def test_relay_provider_serves_pulsedive_unprefixed(client, emu, relay_env):
    relay_env.setenv("RELAY_PROVIDER", "pulsedive")
    body = observe(client, [IP], prefix="")
    assert body["data"]["judgements"]["docs"][0]["source"] == "Pulsedive"
    assert post(client, "/health", None, prefix="") == {"data": {"status": "ok"}}
    refs = post(client, "/refer/observables", [IP], prefix="")["data"]
    assert refs[0]["id"].startswith("ref-pulsedive-")


def test_pulsedive_prefix_on_every_route(client, emu):
    assert post(client, "/deliberate/observables", [IP])["data"]["verdicts"]["count"] == 1
    assert post(client, "/respond/observables", [IP])["data"][0]["title"] == (
        "Scan with Pulsedive")
    version = client.post("/pulsedive/version").get_json()
    assert "version" in version


# --- optional Active DNS links --------------------------------------------------------

def test_active_dns_links_only_when_enabled(client, emu, relay_env):
    data = observe(client, [IP])["data"]
    assert not any("relations" in s for s in data["sightings"]["docs"])
    assert emu.calls == 1
    relay_env.setenv("PULSEDIVE_ACTIVE_DNS", "1")
    emu.reset()
    data = observe(client, [IP])["data"]
    # The info.php answer comes from the cache: only the links call is new.
    assert [r["args"].get("get") for r in emu.requests] == [["links"]]
    relations = [r for s in data["sightings"]["docs"] for r in s.get("relations", [])]
    assert relations == [{"origin": mapping.ORIGIN, "relation": "Resolved_To",
                          "source": DOMAIN, "related": IP}]


def test_failing_active_dns_links_keep_the_lookup(client, emu, relay_env):
    relay_env.setenv("PULSEDIVE_ACTIVE_DNS", "1")
    emu.options["latency"] = {}
    # The links call of the IP fails; its info answer still maps.
    real = emulator_module._LINKS
    try:
        emulator_module._LINKS = {IP["value"]: "not a dict"}
        body = observe(client, [IP])
    finally:
        emulator_module._LINKS = real
    assert "errors" not in body
    assert body["data"]["verdicts"]["count"] == 1
