"""MISP events → CTIM, as pure functions.

Three steps, each testable on real samples:
1. `parse_events`: MISP's JSON, shape-checked, into plain dicts holding only
   what the relay reads (a malformed event is skipped and reported, never
   the others);
2. `index_events` / `hits_for`: the events indexed once by attribute value
   (each part of a composite `a|b` too), so that finding the events of one
   observable costs a dictionary lookup whatever the number of events;
3. `observe_bundle` / `deliberate_bundle`: per observable, the evidence
   (attributes passing the filters of a `Policy`) judged per event by the
   first rule that applies — tags, false-positive sighting, warninglists,
   decay, threat level — and the verdict that follows the same order.

Per matching event: a judgement (unless its creator org is not trusted), a
sighting, the event's indicator (one per event per response) and the
relationships sighting →sighting-of→ indicator, judgement →element-of→
indicator.
"""
import math
from collections import namedtuple
from dataclasses import dataclass
from typing import Optional

from api import ctim
from api.bundle import Bundle

SOURCE = "MISP"

# threat_level_id → (disposition, severity, name)
THREAT_LEVELS = {
    "1": (ctim.MALICIOUS, "High", "High"),
    "2": (ctim.SUSPICIOUS, "Medium", "Medium"),
    "3": (ctim.COMMON, "Low", "Low"),
    "4": (ctim.UNKNOWN, "Unknown", "Undefined"),
}
SEVERITIES = {ctim.MALICIOUS: "High", ctim.SUSPICIOUS: "Medium", ctim.COMMON: "Low",
              ctim.CLEAN: "None", ctim.UNKNOWN: "Unknown"}
# Most severe first: the order within one rule.
_SEVERITY_ORDER = {ctim.MALICIOUS: 0, ctim.SUSPICIOUS: 1, ctim.COMMON: 2, ctim.CLEAN: 3,
                   ctim.UNKNOWN: 4}
# Judgement priority per deciding rule: CTIM picks the verdict by priority, so
# the verdict follows the rule order (tags > false positive > warninglist >
# decay > threat level); within the tag rule Malicious > Suspicious > Clean.
PRIORITY_TAG = {ctim.MALICIOUS: 92, ctim.SUSPICIOUS: 91, ctim.CLEAN: 90}
PRIORITY_FALSE_POSITIVE = 89
PRIORITY_WARNINGLIST = 88
PRIORITY_DECAYED = 87
PRIORITY_THREAT_LEVEL = 85
# MISP decay score (0-100) → judgement confidence: the lower bound of each band.
DECAY_BANDS = ((80.0, "High"), (50.0, "Medium"), (0.0, "Low"))
JUDGEMENT_DAYS = 7
SIGHTING_TYPE = "0"          # MISP sighting types: 0 seen, 1 false positive, 2 expiration
FALSE_POSITIVE_TYPE = "1"
EXPIRATION_TYPE = "2"
WARNINGLIST_MODES = ("mark", "drop", "off")
# Values compared without case: everything but URLs (paths are case-sensitive).
_CASE_SENSITIVE = frozenset({"url"})
_MAX_TIMESTAMP = 253402300799        # 9999-12-31: larger "timestamps" are garbage
_DAY = 86400

Decision = namedtuple("Decision", "priority disposition severity confidence reason")


class Malformed(ValueError):
    """One MISP record does not have the shape MISP documents."""


@dataclass(frozen=True)
class Policy:
    """What counts as evidence and how it is judged (MISP_* settings)."""

    ids_only: bool = False
    published_only: bool = False
    lookback_days: Optional[int] = None
    excluded_orgs: frozenset = frozenset()     # creator org names/uuids, lower case
    trusted_orgs: frozenset = frozenset()      # empty: every org is trusted
    malicious_tags: frozenset = frozenset()
    suspicious_tags: frozenset = frozenset()
    benign_tags: frozenset = frozenset()
    warninglists: str = "mark"
    decaying_model: Optional[int] = None


# --- 1. parsing, shape checked ------------------------------------------------------

def _stamp(value):
    """Unix seconds from MISP's digits string (or number); None if absent or absurd."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit() or len(value) > 12:
            return None
        value = int(value)
    if not isinstance(value, int) or not 0 < value <= _MAX_TIMESTAMP:
        return None
    return value


def _text(value):
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def _list(record, key, what):
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{what} `{key}` is a {type(value).__name__}, not a list")
    return value


def _dict(record, key, what):
    value = record.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Malformed(f"{what} `{key}` is a {type(value).__name__}, not an object")
    return value


def _tag_names(record, what):
    return [tag["name"] for tag in _list(record, "Tag", what)
            if isinstance(tag, dict) and isinstance(tag.get("name"), str) and tag["name"]]


def _galaxies(record, what):
    """Galaxy clusters as `<galaxy>: <cluster>` labels (ATT&CK, actors, malware)."""
    labels = []
    for galaxy in _list(record, "Galaxy", what):
        if not isinstance(galaxy, dict):
            continue
        name = _text(galaxy.get("name")) or _text(galaxy.get("type"))
        clusters = galaxy.get("GalaxyCluster")
        for cluster in clusters if isinstance(clusters, list) else ():
            if isinstance(cluster, dict) and _text(cluster.get("value")):
                labels.append(f"{name}: {cluster['value']}" if name else cluster["value"])
    return labels


def _sightings(attribute):
    result = []
    for sighting in _list(attribute, "Sighting", "attribute"):
        if not isinstance(sighting, dict):
            continue                      # e.g. `[null]`: that record only
        org = sighting.get("Organisation")
        org = org.get("name") if isinstance(org, dict) else None
        result.append({"type": _text(sighting.get("type")) or SIGHTING_TYPE,
                       "date": _stamp(sighting.get("date_sighting")),
                       "org": _text(org) or _text(sighting.get("source"))})
    return result


def _decay(attribute):
    result = []
    for entry in _list(attribute, "decay_score", "attribute"):
        if not isinstance(entry, dict):
            continue
        score = entry.get("score")
        if isinstance(score, str):
            try:
                score = float(score)
            except ValueError:
                continue
        if not isinstance(score, (int, float)) or isinstance(score, bool) \
                or not math.isfinite(score):
            continue                      # JSON NaN/Infinity parse in Python: not a score
        model = entry.get("DecayingModel")
        model = model if isinstance(model, dict) else {}
        result.append({"score": float(score), "decayed": entry.get("decayed") is True,
                       "model_id": _text(model.get("id")), "model": _text(model.get("name"))})
    return result


def _attribute(raw):
    if not isinstance(raw, dict) or not isinstance(raw.get("value"), str):
        return None                       # an attribute without a value: that one only
    warnings = [_text(w.get("warninglist_name")) for w in _list(raw, "warnings", "attribute")
                if isinstance(w, dict) and _text(w.get("warninglist_name"))]
    return {
        "value": raw["value"],
        "type": _text(raw.get("type")) or "unknown",
        "category": _text(raw.get("category")) or "unknown",
        "comment": _text(raw.get("comment")),
        "to_ids": raw.get("to_ids") in (True, 1, "1", "true"),
        "timestamp": _stamp(raw.get("timestamp")),
        "tags": _tag_names(raw, "attribute"),
        "galaxies": _galaxies(raw, "attribute"),
        "sightings": _sightings(raw),
        "warnings": warnings,
        "decay": _decay(raw),
    }


def parse_event(raw):
    """One `Event` as a plain dict of what the relay reads; `Malformed` if misshaped."""
    if not isinstance(raw, dict):
        raise Malformed("an event is not an object")
    uuid = raw.get("uuid")
    if not isinstance(uuid, str) or not uuid.strip():
        raise Malformed("an event has no uuid")
    orgc = _dict(raw, "Orgc", "event")
    org = _dict(raw, "Org", "event")
    raw_attributes = list(_list(raw, "Attribute", "event"))
    for obj in _list(raw, "Object", "event"):
        if not isinstance(obj, dict):
            raise Malformed("an event `Object` entry is not an object")
        raw_attributes.extend(_list(obj, "Attribute", "object"))
    attributes = [a for a in map(_attribute, raw_attributes) if a is not None]
    day = ctim.parse_time(raw["date"]) if isinstance(raw.get("date"), str) else None
    return {
        "uuid": uuid.strip(),
        "id": _text(raw.get("id")),
        "info": _text(raw.get("info")),
        "threat": _text(raw.get("threat_level_id")),
        "date": ctim.iso(day) if day else None,
        "timestamp": _stamp(raw.get("timestamp")),
        "published": raw.get("published") in (True, 1, "1", "true"),
        "org": _text(orgc.get("name")) or _text(org.get("name")),
        "org_uuid": _text(orgc.get("uuid")),
        "tags": _tag_names(raw, "event"),
        "galaxies": _galaxies(raw, "event"),
        "attributes": attributes,
    }


def parse_events(items):
    """(events, problems) from restSearch items `{"Event": {...}}` (or bare events)."""
    events, problems = [], []
    for item in items:
        raw = item.get("Event", item) if isinstance(item, dict) else item
        try:
            events.append(parse_event(raw))
        except Malformed as error:
            problems.append(str(error))
    return events, problems


# --- 2. index by value ------------------------------------------------------------

def _parts(value):
    """The value and, for a composite `a|b`, each part; stripped."""
    value = value.strip()
    return [value] + [p.strip() for p in value.split("|")] if "|" in value else [value]


def index_events(events, index=None):
    """{lower-case value part: [(event, attribute)]}, built once per answer."""
    index = {} if index is None else index
    for event in events:
        for attribute in event["attributes"]:
            for key in dict.fromkeys(p.lower() for p in _parts(attribute["value"])):
                index.setdefault(key, []).append((event, attribute))
    return index


def hits_for(index, value):
    """[{"event", "attributes"}] holding `value` (caseless), in answer order."""
    grouped = {}
    for event, attribute in index.get(value.strip().lower(), ()):
        hit = grouped.setdefault(event["uuid"], {"event": event, "attributes": []})
        hit["attributes"].append(attribute)
    return list(grouped.values())


def hits_from_raw(raw_events, value):
    """Convenience for samples: parse, index and look up one value."""
    events, _ = parse_events(raw_events)
    return hits_for(index_events(events), value)


# --- 3. judging ---------------------------------------------------------------------

def event_url(base_url, event):
    return f"{base_url}/events/view/{event['uuid']}"


def _threat(event):
    return THREAT_LEVELS.get(event["threat"], THREAT_LEVELS["4"])


def _newest_sighting(attribute):
    if not attribute["sightings"]:
        return None
    # max() keeps the first of equals; the last one MISP listed is the newest
    return max(reversed(attribute["sightings"]), key=lambda s: s["date"] or 0)


def _org_in(event, orgs):
    return event["org"].lower() in orgs or event["org_uuid"].lower() in orgs


def _is_evidence(attribute, observable, policy, now_ts):
    if observable["type"] in _CASE_SENSITIVE and observable["value"].strip() not in \
            _parts(attribute["value"]):
        return False
    if policy.ids_only and not attribute["to_ids"]:
        return False
    if policy.lookback_days is not None:
        stamp = attribute["timestamp"]
        if stamp is None or stamp < now_ts - policy.lookback_days * _DAY:
            return False
    newest = _newest_sighting(attribute)
    return not (newest and newest["type"] == EXPIRATION_TYPE)


def _event_counts(event, policy):
    if policy.published_only and not event["published"]:
        return False
    return not (policy.excluded_orgs and _org_in(event, policy.excluded_orgs))


def _when(stamp):
    return ctim.from_timestamp(stamp)[:10] if stamp else "an unknown date"


def _decide_by_tags(attribute, event, policy):
    for where, tags in (("attribute", attribute["tags"]), ("event", event["tags"])):
        found = [(disposition, tag) for tag in tags
                 for disposition, wanted in ((ctim.MALICIOUS, policy.malicious_tags),
                                             (ctim.SUSPICIOUS, policy.suspicious_tags),
                                             (ctim.CLEAN, policy.benign_tags))
                 if tag in wanted]
        if found:
            disposition, tag = min(found, key=lambda f: _SEVERITY_ORDER[f[0]])
            return Decision(PRIORITY_TAG[disposition], disposition, SEVERITIES[disposition],
                            "High", f"MISP tag {tag} on the {where}")
    return None


def _decay_score(attribute, policy):
    scores = attribute["decay"]
    wanted = [s for s in scores if s["model_id"] == str(policy.decaying_model)]
    return (wanted or scores or [None])[0]


def _band(score):
    return next((name for low, name in DECAY_BANDS if score >= low), DECAY_BANDS[-1][1])


def decide(attribute, event, lists, policy):
    """The Decision of the first rule that applies to one evidence attribute."""
    tagged = _decide_by_tags(attribute, event, policy)
    if tagged:
        return tagged
    newest = _newest_sighting(attribute)
    if newest and newest["type"] == FALSE_POSITIVE_TYPE:
        who = newest["org"] or "an unnamed organisation"
        return Decision(PRIORITY_FALSE_POSITIVE, ctim.CLEAN, "None", "High",
                        f"Reported as a false positive in MISP by {who} on "
                        f"{_when(newest['date'])}")
    if policy.warninglists == "mark":
        names = list(dict.fromkeys(list(lists) + attribute["warnings"]))
        if names:
            return Decision(PRIORITY_WARNINGLIST, ctim.COMMON, "Low", "High",
                            "On MISP warninglist " + "; ".join(names))
    confidence, suffix = "Medium", ""
    if policy.decaying_model is not None:
        decay = _decay_score(attribute, policy)
        if decay is not None:
            model = f", model {decay['model'] or decay['model_id']}"
            if decay["decayed"]:
                return Decision(PRIORITY_DECAYED, ctim.UNKNOWN, "Unknown", "Low",
                                f"Decayed in MISP: score {decay['score']:.1f}{model}")
            confidence = _band(decay["score"])
            suffix = f"; decay score {decay['score']:.1f}{model}"
    disposition, severity, name = _threat(event)
    return Decision(PRIORITY_THREAT_LEVEL, disposition, severity, confidence,
                    f"MISP event {event['id']} threat level {name}{suffix}: {event['info']}")


def _rank(decision):
    return (-decision.priority, _SEVERITY_ORDER[decision.disposition])


def assess(observable, hits, lists, policy, now):
    """[(event, evidence attributes, Decision or None)], most decisive first.

    Events whose attributes all fail a filter are left out; events of an
    untrusted creator org keep their evidence but get no Decision.
    """
    now_ts = int(now.timestamp())
    rows = []
    for hit in hits:
        event = hit["event"]
        if not _event_counts(event, policy):
            continue
        evidence = [a for a in hit["attributes"]
                    if _is_evidence(a, observable, policy, now_ts)]
        if not evidence:
            continue
        decision = None
        if not policy.trusted_orgs or _org_in(event, policy.trusted_orgs):
            decision = min((decide(a, event, lists, policy) for a in evidence), key=_rank)
        rows.append((event, evidence, decision))
    rows.sort(key=lambda row: ((0, *_rank(row[2])) if row[2] else (1, 0, 0),
                               -(row[0]["timestamp"] or 0)))
    return rows


def _tlp(event):
    return ctim.tlp_from_tags(event["tags"])


def judgement(observable, event, decision, base_url, now):
    return ctim.judgement(
        observable, decision.disposition, SOURCE, priority=decision.priority,
        confidence=decision.confidence, severity=decision.severity,
        valid=ctim.valid_time(observable["type"], now, JUDGEMENT_DAYS),
        source_uri=event_url(base_url, event),
        reason=ctim.clip(decision.reason, 1024),
        tlp=_tlp(event))


def warninglist_judgement(observable, lists, base_url, now):
    """Common: the value is on a MISP warninglist (held by an event or not)."""
    names = list(lists)
    first = lists[names[0]]
    return ctim.judgement(
        observable, ctim.COMMON, SOURCE, priority=PRIORITY_WARNINGLIST, confidence="High",
        severity="Low", valid=ctim.valid_time(observable["type"], now, JUDGEMENT_DAYS),
        source_uri=f"{base_url}/warninglists/view/{first}" if first else None,
        reason=ctim.clip("On MISP warninglist " + "; ".join(names), 1024))


def sighting(observable, event, attributes, base_url, now):
    records = [s for a in attributes for s in a["sightings"]]
    seen = [s for s in records if s["type"] == SIGHTING_TYPE]
    false_positives = sum(1 for s in records if s["type"] == FALSE_POSITIVE_TYPE)
    times = sorted(s["date"] for s in seen if s["date"])
    if times:
        observed = ctim.observed_time(ctim.from_timestamp(times[0]),
                                      ctim.from_timestamp(times[-1]))
    else:
        observed = ctim.observed_time(event["date"] or ctim.iso(now))
    first = attributes[0]
    lines = [f"Category: {first['category']}, type: {first['type']}"]
    if first["comment"]:
        lines.append(f"Comment: {first['comment']}")
    if seen:
        lines.append(f"MISP sightings: {len(seen)}")
    if false_positives:
        lines.append(f"Reported as false positive {false_positives} time(s)")
    return ctim.entity(
        "sighting",
        count=max(len(seen), 1),
        confidence="High",
        observed_time=observed,
        observables=[dict(observable)],
        title=ctim.clip(f"Seen in MISP event: {event['info']}", 1024),
        description=ctim.clip("\n\n".join(lines), 5000),
        short_description=ctim.clip(lines[0], 2048),
        source=SOURCE,
        source_uri=event_url(base_url, event),
        internal=False,
        severity=_threat(event)[1],
        tlp=_tlp(event),
        timestamp=ctim.from_timestamp(event["timestamp"]) if event["timestamp"] else None,
    )


def indicator(event, base_url, now):
    """The event as an indicator; the id depends on the event uuid only."""
    tags = list(dict.fromkeys(event["tags"] + event["galaxies"]))
    return ctim.entity(
        "indicator", id_seed=f"misp-event:{event['uuid']}",
        title=ctim.clip(event["info"] or f"MISP event {event['id']}", 1024),
        short_description=ctim.clip(event["info"], 2048),
        producer=ctim.clip(event["org"] or SOURCE, 1024),
        valid_time={"start_time": event["date"] or ctim.iso(now)},
        tags=[ctim.clip(tag, 1024) for tag in tags],
        tlp=_tlp(event),
        severity=_threat(event)[1],
        confidence="High",
        source=SOURCE,
        source_uri=event_url(base_url, event),
        external_ids=[event["uuid"]],
        timestamp=ctim.from_timestamp(event["timestamp"]) if event["timestamp"] else None,
    )


def _listed(lists, policy):
    return lists if policy.warninglists == "mark" and lists else {}


def observe_bundle(observable, hits, base_url, limit, policy=Policy(), lists=None,
                   now=None):
    """CTIM for one observable from its hits; `lists`: {warninglist name: id}."""
    now = now or ctim.utc_now()
    lists = _listed(lists, policy)
    bundle = Bundle()
    judgements = []
    for event, evidence, decision in assess(observable, hits, lists, policy, now)[:limit]:
        seen = sighting(observable, event, evidence, base_url, now)
        found = indicator(event, base_url, now)
        bundle.extend([seen, found, ctim.relationship(seen["id"], "sighting-of", found["id"])])
        if decision:
            judged = judgement(observable, event, decision, base_url, now)
            judgements.append(judged)
            bundle.extend([judged,
                           ctim.relationship(judged["id"], "element-of", found["id"])])
    if lists and not judgements:
        judgements.append(warninglist_judgement(observable, lists, base_url, now))
        bundle.add(judgements[-1])
    verdict = ctim.verdict_for(judgements)
    if verdict:
        bundle.add(verdict)
    return bundle


def deliberate_bundle(observable, hits, policy=Policy(), lists=None, now=None):
    """Only the verdict, from the most decisive evidence (same order as observe)."""
    now = now or ctim.utc_now()
    lists = _listed(lists, policy)
    decisions = [d for _, _, d in assess(observable, hits, lists, policy, now) if d]
    if lists and not decisions:
        decisions = [Decision(PRIORITY_WARNINGLIST, ctim.COMMON, "Low", "High", "")]
    bundle = Bundle()
    if decisions:
        disposition = min(decisions, key=lambda d: (-d.priority,
                                                    ctim.disposition_rank(d.disposition)))
        bundle.add(ctim.verdict(observable, disposition.disposition,
                                ctim.valid_time(observable["type"], now, JUDGEMENT_DAYS)))
    return bundle
