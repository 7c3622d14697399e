"""MISP events → CTIM, as pure functions.

One matching event gives, per observable: a judgement (disposition from
`threat_level_id`), a sighting, the event's indicator (one per event per
response, whatever the number of observables hitting it) and the
relationships sighting →sighting-of→ indicator and judgement →element-of→
indicator. The verdict is the best judgement (CTIM's priority/tie-break).
"""
from api import ctim
from api.bundle import Bundle
from api.errors import UnexpectedResponseError

SOURCE = "MISP"

# threat_level_id → (disposition, severity)
THREAT_LEVELS = {
    "1": (ctim.MALICIOUS, "High"),
    "2": (ctim.SUSPICIOUS, "Medium"),
    "3": (ctim.COMMON, "Low"),
    "4": (ctim.UNKNOWN, "Unknown"),
}
JUDGEMENT_DEFAULTS = {"priority": 85, "confidence": "Medium"}
JUDGEMENT_DAYS = 7
SIGHTING_TYPE = "0"          # MISP sighting types: 0 seen, 1 false positive
FALSE_POSITIVE_TYPE = "1"
# Values compared without case: everything but URLs (paths are case-sensitive).
_CASELESS = frozenset({"ip", "ipv6", "domain", "hostname", "email",
                       "md5", "sha1", "sha256"})


def event_url(base_url, event):
    return f"{base_url}/events/view/{event['uuid']}"


def _norm(observable_type, value):
    value = str(value).strip()
    return value.lower() if observable_type in _CASELESS else value


def _attributes(event):
    """Every attribute of the event, including those inside objects."""
    for attribute in event.get("Attribute") or ():
        yield attribute
    for obj in event.get("Object") or ():
        for attribute in obj.get("Attribute") or ():
            yield attribute


def matching_attributes(event, observable):
    """Attributes whose value (or a part of a composite `a|b`) is the observable's."""
    wanted = _norm(observable["type"], observable["value"])
    found = []
    for attribute in _attributes(event):
        value = attribute.get("value")
        if not isinstance(value, str):
            continue
        parts = [value] + (value.split("|") if "|" in value else [])
        if any(_norm(observable["type"], part) == wanted for part in parts):
            found.append(attribute)
    return found


def _threat(event):
    return THREAT_LEVELS.get(str(event.get("threat_level_id")), THREAT_LEVELS["4"])


def _event_day(event):
    moment = ctim.parse_time(event.get("date")) or ctim.parse_time(event.get("timestamp"))
    return moment


def _tags(event):
    return [str(tag.get("name")) for tag in event.get("Tag") or ()
            if isinstance(tag, dict) and tag.get("name")]


def _check(event):
    if not event.get("uuid"):
        raise UnexpectedResponseError(
            "MISP event without uuid; its data structure changed")


def _timestamp(event):
    value = str(event.get("timestamp") or "")
    return int(value) if value.isdigit() else 0


def rank(events):
    """Events most severe first, then most recently changed."""
    return sorted(events, key=lambda e: (ctim.disposition_rank(_threat(e)[0]),
                                         -_timestamp(e)))


def judgement(observable, event, base_url, now):
    disposition, severity = _threat(event)
    return ctim.judgement(
        observable, disposition, SOURCE, severity=severity,
        valid=ctim.valid_time(observable["type"], now, JUDGEMENT_DAYS),
        source_uri=event_url(base_url, event),
        reason=ctim.clip(f"MISP event {event.get('id', '')}: {event.get('info', '')}", 1024),
        tlp=ctim.tlp_from_tags(_tags(event)),
        **JUDGEMENT_DEFAULTS)


def sighting(observable, event, attributes, base_url, now):
    seen = [s for a in attributes for s in a.get("Sighting") or ()
            if str(s.get("type", SIGHTING_TYPE)) == SIGHTING_TYPE]
    false_positives = sum(1 for a in attributes for s in a.get("Sighting") or ()
                          if str(s.get("type")) == FALSE_POSITIVE_TYPE)
    times = sorted(t for t in (ctim.parse_time(s.get("date_sighting")) for s in seen) if t)
    if times:
        observed = ctim.observed_time(ctim.iso(times[0]), ctim.iso(times[-1]))
    else:
        observed = ctim.observed_time(ctim.iso(_event_day(event) or now))
    first = attributes[0]
    lines = [f"Category: {first.get('category', 'unknown')}, "
             f"type: {first.get('type', 'unknown')}"]
    if first.get("comment"):
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
        title=ctim.clip(f"Seen in MISP event: {event.get('info', '')}", 1024),
        description=ctim.clip("\n\n".join(lines), 5000),
        short_description=ctim.clip(lines[0], 2048),
        source=SOURCE,
        source_uri=event_url(base_url, event),
        internal=False,
        severity=_threat(event)[1],
        tlp=ctim.tlp_from_tags(_tags(event)),
        timestamp=ctim.from_timestamp(_timestamp(event)) if _timestamp(event) else None,
    )


def indicator(event, base_url, now):
    """The event as an indicator; the id depends on the event uuid only."""
    producer = ((event.get("Orgc") or {}).get("name")
                or (event.get("Org") or {}).get("name") or SOURCE)
    start = _event_day(event) or now
    return ctim.entity(
        "indicator", id_seed=f"misp-event:{event['uuid']}",
        title=ctim.clip(event.get("info") or f"MISP event {event.get('id', '')}", 1024),
        short_description=ctim.clip(event.get("info"), 2048),
        producer=ctim.clip(producer, 1024),
        valid_time={"start_time": ctim.iso(start)},
        tags=[ctim.clip(tag, 1024) for tag in _tags(event)],
        tlp=ctim.tlp_from_tags(_tags(event)),
        severity=_threat(event)[1],
        confidence="High",
        source=SOURCE,
        source_uri=event_url(base_url, event),
        external_ids=[event["uuid"]],
        timestamp=ctim.from_timestamp(_timestamp(event)) if _timestamp(event) else None,
    )


def observe_bundle(observable, events, base_url, limit, now=None):
    """CTIM for one observable from the MISP events (already matched or not)."""
    now = now or ctim.utc_now()
    bundle = Bundle()
    judgements = []
    for event in rank(events):
        attributes = matching_attributes(event, observable)
        if not attributes:
            continue
        _check(event)
        if len(judgements) == limit:
            break
        judged = judgement(observable, event, base_url, now)
        seen = sighting(observable, event, attributes, base_url, now)
        found = indicator(event, base_url, now)
        judgements.append(judged)
        bundle.extend([judged, seen, found,
                       ctim.relationship(seen["id"], "sighting-of", found["id"]),
                       ctim.relationship(judged["id"], "element-of", found["id"])])
    verdict = ctim.verdict_for(judgements)
    if verdict:
        bundle.add(verdict)
    return bundle


def deliberate_bundle(observable, events, now=None):
    """Only the verdict, from the most severe matching event."""
    now = now or ctim.utc_now()
    matched = [e for e in events if matching_attributes(e, observable)]
    if not matched:
        return Bundle()
    disposition = min((_threat(e)[0] for e in matched), key=ctim.disposition_rank)
    bundle = Bundle()
    bundle.add(ctim.verdict(observable, disposition,
                            ctim.valid_time(observable["type"], now, JUDGEMENT_DAYS)))
    return bundle
