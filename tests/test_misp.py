"""MISP: mapping on real recorded events, and the provider over real HTTP
against the loopback emulator, errors included."""
import json
from datetime import datetime, timezone

import pytest

from api import ctim
from api.providers.misp import client as misp_client
from api.providers.misp import mapping
from tests import ctim_check, samples
from tests.conftest import bearer
from tests.emulators import misp as emulator_data

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
BASE = "https://misp.example.org"


def data(bundle):
    return {"data": bundle.json()}


def sample_events(name):
    loaded = samples.load("misp", name)
    if isinstance(loaded, dict) and "response" in loaded:
        loaded = loaded["response"]
    if isinstance(loaded, dict):
        loaded = [loaded]
    return [item["Event"] for item in loaded]


# --- mapping on the real samples ------------------------------------------------

def test_restsearch_sample_maps_each_matching_event():
    events = sample_events("events_restSearch_2events_pymisp_unwrapped.json")
    value = events[0]["Attribute"][0]["value"]
    observable = {"type": "sha256", "value": value}
    hits = mapping.hits_from_raw(events, value)
    bundle = mapping.observe_bundle(observable, hits, BASE, 100, now=NOW)
    body = data(bundle)
    ctim_check.assert_valid("/observe/observables", body, [observable], 100)
    matching = [e for e in events if e["uuid"] in {h["event"]["uuid"] for h in hits}]
    assert matching, "the sample's first attribute must match its own event"
    judgements = bundle.docs("judgements")
    assert len(judgements) == len(matching) == len(bundle.docs("sightings"))
    indicator = next(i for i in bundle.docs("indicators")
                     if i["external_ids"] == [events[0]["uuid"]])
    assert indicator["title"] == events[0]["info"]
    assert indicator["producer"] == events[0]["Orgc"]["name"]
    event_tags = [t["name"] for t in events[0]["Tag"]]
    assert indicator["tags"][:len(event_tags)] == event_tags
    assert "Banker: Qakbot" in indicator["tags"]  # the galaxy cluster, readable
    assert indicator["tlp"] == "white"  # the event carries tlp:white
    assert indicator["source_uri"] == f"{BASE}/events/view/{events[0]['uuid']}"
    levels = {"1": ctim.MALICIOUS, "2": ctim.SUSPICIOUS, "3": ctim.COMMON, "4": ctim.UNKNOWN}
    assert {j["disposition"] for j in judgements} == \
        {levels[e["threat_level_id"]] for e in matching}
    assert judgements[0]["valid_time"]["end_time"] == ctim.FOREVER  # hashes live long
    (verdict,) = bundle.docs("verdicts")
    assert verdict["judgement_id"] in {j["id"] for j in judgements}
    kinds = sorted(r["relationship_type"] for r in bundle.docs("relationships"))
    assert kinds == ["element-of"] * len(matching) + ["sighting-of"] * len(matching)


def test_real_sighting_records_are_counted():
    (event,) = sample_events("event_view_60_ursnif_sightings.json")
    seen = [a for a in event["Attribute"]
            if any(s["type"] == "0" for s in a.get("Sighting") or ())]
    flagged = [a for a in event["Attribute"]
               if any(s["type"] == "1" for s in a.get("Sighting") or ())]
    observable = {"type": seen[0]["type"], "value": seen[0]["value"]}
    bundle = mapping.observe_bundle(observable, mapping.hits_from_raw([event], seen[0]["value"]),
                                    BASE, 100, now=NOW)
    ctim_check.assert_valid("/observe/observables", data(bundle), [observable])
    (sighting,) = bundle.docs("sightings")
    assert sighting["count"] == sum(1 for s in seen[0]["Sighting"] if s["type"] == "0")
    stamp = ctim.from_timestamp(seen[0]["Sighting"][0]["date_sighting"])
    assert sighting["observed_time"]["start_time"] == stamp
    fp = {"type": flagged[0]["type"], "value": flagged[0]["value"]}
    (fp_sighting,) = mapping.observe_bundle(fp, mapping.hits_from_raw([event], fp["value"]),
                                            BASE, 100, now=NOW).docs("sightings")
    assert "false positive 1 time(s)" in fp_sighting["description"]
    assert fp_sighting["count"] == 1


def test_object_attributes_match_and_long_events_stay_valid():
    (event,) = sample_events("event_view_objects_galaxies_pubg.json")
    value = event["Object"][0]["Attribute"][0]["value"]
    observable = {"type": "sha1", "value": value.upper()}  # hashes match without case
    bundle = mapping.observe_bundle(observable, mapping.hits_from_raw([event], value.upper()),
                                    BASE, 100, now=NOW)
    ctim_check.assert_valid("/observe/observables", data(bundle), [observable])
    (indicator,) = bundle.docs("indicators")
    assert len(indicator["tags"]) >= len(event["Tag"])
    assert all(len(tag) <= 1024 for tag in indicator["tags"])


def test_no_hit_sample_gives_nothing():
    events = sample_events("events_restSearch_nohit_from_source.json")
    assert events == []
    assert not mapping.observe_bundle({"type": "ip", "value": "1.1.1.1"},
                                      mapping.hits_from_raw(events, "1.1.1.1"), BASE, 100)


def test_composite_values_match_either_part():
    event = {"uuid": "u-1", "threat_level_id": "2", "date": "2026-01-02",
             "Attribute": [{"value": "invoice.doc|d41d8cd98f00b204e9800998ecf8427e",
                            "category": "Payload delivery", "type": "filename|md5"}]}
    md5 = {"type": "md5", "value": "D41D8CD98F00B204E9800998ECF8427E"}
    assert mapping.hits_from_raw([event], md5["value"])
    assert not mapping.hits_from_raw([event], "d41d8cd9")
    url_event = {"uuid": "u-2", "Attribute": [{"value": "http://a.example/Path"}]}
    url = {"type": "url", "value": "http://a.example/path"}
    hits = mapping.hits_from_raw([url_event], url["value"])
    assert not mapping.observe_bundle(url, hits, BASE, 10, now=NOW)  # paths keep their case
    assert mapping.observe_bundle(md5, mapping.hits_from_raw([event], md5["value"]), BASE, 10,
                                  now=NOW).docs("verdicts")


def _hits(observable, events=None):
    return mapping.hits_from_raw(events or emulator_data.EVENTS[:4], observable["value"])


def test_one_indicator_per_event_across_observables():
    domain = {"type": "domain", "value": "login-verify.example.net"}
    ip = {"type": "ip", "value": "198.51.100.23"}
    a = mapping.observe_bundle(domain, _hits(domain), BASE, 100, now=NOW)
    b = mapping.observe_bundle(ip, _hits(ip), BASE, 100, now=NOW)
    shared = {i["id"] for i in a.docs("indicators")} & {i["id"] for i in b.docs("indicators")}
    assert shared, "event 1201 holds both values: same indicator id"
    a.merge(b)
    ids = [i["id"] for i in a.docs("indicators")]
    assert len(ids) == len(set(ids))


def test_verdict_follows_the_most_severe_event_and_limit_applies():
    observable = {"type": "ip", "value": "198.51.100.23"}
    bundle = mapping.observe_bundle(observable, _hits(observable), BASE, 100, now=NOW)
    assert bundle.docs("verdicts")[0]["disposition_name"] == "Malicious"
    assert len(bundle.docs("judgements")) == 3
    limited = mapping.observe_bundle(observable, _hits(observable), BASE, 1, now=NOW)
    assert len(limited.docs("judgements")) == 1
    assert limited.docs("judgements")[0]["disposition_name"] == "Malicious"
    deliberate = mapping.deliberate_bundle(observable, _hits(observable), now=NOW)
    assert deliberate.json().keys() == {"verdicts"}
    assert deliberate.docs("verdicts")[0]["disposition"] == ctim.MALICIOUS


def test_event_without_uuid_is_left_out_not_the_others():
    good = {"uuid": "u-9", "threat_level_id": "1", "Attribute": [{"value": "1.2.3.4"}]}
    events, problems = mapping.parse_events(
        [{"Event": {"threat_level_id": "1", "Attribute": [{"value": "1.2.3.4"}]}},
         {"Event": good}])
    assert [e["uuid"] for e in events] == ["u-9"]
    assert problems == ["an event has no uuid"]


def test_unknown_threat_level_and_missing_dates_fall_back():
    event = {"uuid": "u-3", "threat_level_id": "9", "info": "",
             "Attribute": [{"value": "1.2.3.4"}]}
    observable = {"type": "ip", "value": "1.2.3.4"}
    bundle = mapping.observe_bundle(observable, _hits(observable, [event]), BASE, 10, now=NOW)
    ctim_check.assert_valid("/observe/observables", data(bundle), [observable])
    assert bundle.docs("verdicts")[0]["disposition_name"] == "Unknown"
    assert bundle.docs("sightings")[0]["observed_time"]["start_time"] == ctim.iso(NOW)


# --- over HTTP against the emulator -----------------------------------------------

@pytest.fixture
def misp(use_emulator):
    return use_emulator("misp")


def auth():
    return bearer(emulator_data.CLAIMS)


def searches(misp):
    return [r for r in misp.requests if r["path"] == "/events/restSearch"]


def observables():
    return json.loads((ctim_check.ROOT / "observables.json").read_text())


def test_observe_all_types_in_one_call(client, misp):
    requested = observables()
    body = client.post("/observe/observables", json=requested, headers=auth()).get_json()
    assert "errors" not in body
    verdicts = {(v["observable"]["type"], v["observable"]["value"]): v["disposition_name"]
                for v in body["data"]["verdicts"]["docs"]}
    assert verdicts[("ip", "198.51.100.23")] == "Malicious"
    assert verdicts[("md5", "8b83fc5d3a6a80281269f9e337fe3fff")] == "Suspicious"
    assert verdicts[("ipv6", "2001:db8:bad::23")] == "Common"
    assert ("ip", "192.0.2.200") not in verdicts
    indicator_ids = [i["id"] for i in body["data"]["indicators"]["docs"]]
    assert len(indicator_ids) == len(set(indicator_ids)) == 4
    assert misp.calls == 2  # one restSearch + one warninglists/checkValue
    (search,) = searches(misp)
    assert search["path"] == "/events/restSearch"
    assert search["headers"]["Authorization"] == emulator_data.KEY
    assert search["json"]["value"] == [o["value"] for o in requested]


def test_calls_do_not_grow_with_observables(client, misp):
    for n in (1, 50, 150):
        misp.reset()
        body = client.post("/observe/observables", json=emulator_data.observables(n),
                           headers=auth()).get_json()
        assert body["data"]["verdicts"]["count"] == n
        assert misp.calls == 2
        assert len(searches(misp)) == 1


def test_paging_honours_the_entities_limit(client, misp):
    requested = [{"type": "ip", "value": "198.51.100.23"}]
    body = client.post("/observe/observables", json=requested,
                       headers=bearer(dict(emulator_data.CLAIMS, CTR_ENTITIES_LIMIT=1))).get_json()
    assert body["data"]["judgements"]["count"] == 1
    (search,) = searches(misp)
    # page 1 was full and one event is all we may show: no second page
    assert search["json"]["limit"] == 1


def test_second_page_is_fetched_when_the_first_is_full(client, misp, relay_env):
    # page size = limit x values = 2: page 1 holds two events of the IP only
    relay_env.setenv("CTR_ENTITIES_LIMIT", "1")
    relay_env.setenv("MISP_WARNINGLISTS", "off")  # both calls go to restSearch
    requested = [{"type": "ip", "value": "198.51.100.23"},
                 {"type": "ipv6", "value": "2001:db8:bad::23"}]
    body = client.post("/observe/observables", json=requested, headers=auth()).get_json()
    assert [r["json"]["page"] for r in misp.requests] == [1, 2]
    counts = {}
    for judgement in body["data"]["judgements"]["docs"]:
        key = judgement["observable"]["value"]
        counts[key] = counts.get(key, 0) + 1
    assert counts == {"198.51.100.23": 1, "2001:db8:bad::23": 1}


def test_failed_second_page_keeps_the_first(client, misp, relay_env):
    relay_env.setenv("CTR_ENTITIES_LIMIT", "1")
    relay_env.setenv("MISP_MAX_PAGES", "3")  # two restSearch pages + checkValue
    requested = [{"type": "ip", "value": "198.51.100.23"},
                 {"type": "ipv6", "value": "2001:db8:bad::23"}]
    real_search = misp_client.search_events

    def flaky(ctx, filters, values, limit, page):
        if page == 2:
            misp.fail["*"] = 500
        return real_search(ctx, filters, values, limit, page)

    relay_env.setattr(misp_client, "search_events", flaky)
    body = client.post("/observe/observables", json=requested, headers=auth()).get_json()
    assert body["data"]["verdicts"]["count"] >= 1
    assert body["errors"][0]["code"] == "service unavailable"


def test_deliberate_returns_verdicts_only(client, misp):
    body = client.post("/deliberate/observables", json=observables(), headers=auth()).get_json()
    assert set(body["data"]) == {"verdicts"}
    assert body["data"]["verdicts"]["count"] == 9
    # sightings decide too (false positive, expiration)
    assert searches(misp)[0]["json"]["includeSightings"] == 1


def test_blank_values_are_not_sent_to_misp(client, misp):
    body = client.post("/observe/observables", json=[{"type": "ip", "value": "   "}],
                       headers=auth()).get_json()
    assert body == {"data": {}}
    assert misp.calls == 0


def test_trailing_slash_in_api_url_is_tolerated(client, misp, relay_env):
    relay_env.setenv("API_URL", misp.url + "/")
    body = client.post("/refer/observables", json=observables()[:1], headers=auth()).get_json()
    assert body["data"][0]["url"] == f"{misp.url}/events/index/searchall:198.51.100.23"
    assert client.post("/health", headers=auth()).get_json() == {"data": {"status": "ok"}}


def test_refer_encodes_values_and_never_calls_misp(client, misp):
    requested = [{"type": "url", "value": "http://a.example/x?q=1 2#f"}]
    (link,) = client.post("/refer/observables", json=requested, headers=auth()).get_json()["data"]
    assert link == {
        "id": "ref-misp-search-url-http%3A%2F%2Fa.example%2Fx%3Fq%3D1%202%23f",
        "title": "Search events with this URL",
        "description": "Lookup events with this URL on MISP",
        "url": f"{misp.url}/events/index/searchall:http%3A%2F%2Fa.example%2Fx%3Fq%3D1%202%23f",
        "categories": ["Search", "MISP"]}
    assert misp.calls == 0


def test_missing_api_url_is_a_clear_error(client, relay_env):
    for route in ("/observe/observables", "/refer/observables", "/health"):
        body = client.post(route, json=observables()[:1], headers=auth()).get_json()
        assert body["errors"][0]["code"] == "configuration error"
        assert "API_URL is not set" in body["errors"][0]["message"]


@pytest.mark.parametrize("route", ["/observe/observables", "/deliberate/observables", "/health"])
def test_wrong_key_is_an_authorization_error_naming_misp(client, misp, route):
    body = client.post(route, json=observables(),
                       headers=bearer({"key": "wrong"})).get_json()
    error = body["errors"][0]
    assert error["code"] == "authorization error"
    assert error["message"].startswith("Authorization failed: MISP rejected the API key (HTTP 403")
    assert "data" not in body


@pytest.mark.parametrize("status,code,fragment", [
    (429, "too many requests", "MISP rate limit exceeded"),
    (500, "service unavailable", "An Internal Error Has Occurred."),
    (503, "service unavailable", "HTTP 503"),
    (404, "not found", "check API_URL"),
    (405, "authorization error", "You do not have permission"),
    (400, "unexpected response", "HTTP 400"),
    ("garbage", "unexpected response", "not JSON"),
])
def test_upstream_errors_become_envelopes(client, misp, status, code, fragment):
    misp.fail["*"] = status
    body = client.post("/observe/observables", json=observables(), headers=auth()).get_json()
    error = body["errors"][0]
    assert (error["code"], error["type"]) == (code, "fatal")
    assert fragment in error["message"]


def test_rate_limit_closes_the_gate_for_that_key(client, misp):
    misp.rate_limit = 0
    first = client.post("/observe/observables", json=observables(), headers=auth()).get_json()
    assert first["errors"][0]["code"] == "too many requests"
    calls = misp.calls
    second = client.post("/deliberate/observables", json=observables(),
                         headers=auth()).get_json()
    assert second["errors"][0]["code"] == "too many requests"
    assert "resets in 30 s" in second["errors"][0]["message"]
    assert len(searches(misp)) == 1
    assert misp.calls == calls  # the second request never reached MISP


def test_timeout_is_an_error_not_a_hang(client, misp, relay_env):
    relay_env.setenv("RELAY_HTTP_TIMEOUT", "0.2")
    misp.latency = 0.6
    body = client.post("/observe/observables", json=observables(), headers=auth()).get_json()
    assert body["errors"][0]["code"] == "request timeout"
    assert "MISP did not answer in time" in body["errors"][0]["message"]


def test_unreachable_misp_is_service_unavailable(client, relay_env):
    relay_env.setenv("API_URL", "http://127.0.0.1:9")
    body = client.post("/health", headers=auth()).get_json()
    assert body["errors"][0]["code"] == "service unavailable"
    assert body["errors"][0]["message"].startswith("Unable to reach MISP")


def test_health_makes_one_authenticated_call(client, misp):
    assert client.post("/misp/health", headers=auth()).get_json() == {"data": {"status": "ok"}}
    assert [r["path"] for r in misp.requests] == ["/servers/getVersion"]


def test_health_reports_misp_failures(client, misp):
    misp.fail["getVersion"] = 500
    error = client.post("/health", headers=auth()).get_json()["errors"][0]
    assert error["code"] == "service unavailable"


def test_respond_offers_both_actions_per_observable(client, misp):
    requested = observables()[:2]
    items = client.post("/respond/observables", json=requested, headers=auth()).get_json()["data"]
    assert [(i["id"], i["query-params"]["observable_value"]) for i in items] == [
        ("misp-add-sighting", "198.51.100.23"),
        ("misp-report-false-positive", "198.51.100.23"),
        ("misp-add-sighting", "2001:db8:bad::23"),
        ("misp-report-false-positive", "2001:db8:bad::23")]
    assert items[0]["title"] == "Add sighting in MISP"
    assert items[1]["title"] == "Report false positive in MISP"
    assert misp.calls == 0


@pytest.mark.parametrize("action,kind", [("misp-add-sighting", "0"),
                                         ("misp-report-false-positive", "1")])
def test_trigger_posts_the_sighting(client, misp, action, kind):
    body = client.post("/respond/trigger", headers=auth(), json={
        "action-id": action, "observable_type": "domain",
        "observable_value": "login-verify.example.net"}).get_json()
    assert body == {"data": {"status": "success"}}
    (call,) = misp.requests
    assert call["path"] == "/sightings/add"
    assert call["json"] == {"value": "login-verify.example.net", "type": kind,
                            "source": "Cisco XDR"}


def test_trigger_failures(client, misp):
    unknown = client.post("/respond/trigger", headers=auth(), json={
        "action-id": "misp-delete-everything", "observable_type": "ip",
        "observable_value": "198.51.100.23"}).get_json()
    assert unknown["data"] == {"status": "failure"}
    assert "Unknown action 'misp-delete-everything' for MISP" in unknown["errors"][0]["message"]
    missing = client.post("/respond/trigger", headers=auth(), json={
        "action-id": "misp-add-sighting", "observable_type": "ip",
        "observable_value": "203.0.113.9"}).get_json()
    assert missing["data"] == {"status": "failure"}
    assert "No valid attributes found" in missing["errors"][0]["message"]
    misp.fail["*"] = 500
    broken = client.post("/respond/trigger", headers=auth(), json={
        "action-id": "misp-add-sighting", "observable_type": "ip",
        "observable_value": "198.51.100.23"}).get_json()
    assert broken["errors"][0]["code"] == "service unavailable"


def test_tls_settings(relay_env):
    from api.context import RequestContext
    from api.settings import Settings

    def verify():
        return misp_client._tls(RequestContext("MISP", Settings.from_env()))

    assert verify() is True
    relay_env.setenv("MISP_VERIFY_TLS", "false")
    assert verify() is False
    relay_env.setenv("MISP_CA_BUNDLE", "/var/task/misp-ca.pem")
    assert verify() == "/var/task/misp-ca.pem"


def test_misp_sessions_are_reused_across_requests(client, misp):
    from api import http

    client.post("/health", headers=auth())
    (first,) = [pool for key, pool in http._pools.items() if key[0] == "misp"]
    client.post("/health", headers=auth())
    assert [pool for key, pool in http._pools.items() if key[0] == "misp"] == [first]
