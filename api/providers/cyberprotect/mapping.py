"""Threatscore score documents → CTIM, as pure functions.

A score document (`GET /api/score/<value>`) holds `scores[]`, a history of
computed scores, each with per-engine `details[]`. Per observable the relay
emits:
- ONE verdict, from the newest entry (by `date`) that has a numeric score;
- one "overall" judgement for that same score, which the verdict names in
  `judgement_id` (so the verdict always agrees with a judgement);
- one judgement per engine detail with a numeric score, newest entries first,
  `reason` "Engine: <engineId>", valid 7 days from the detail's date.
Judgements are capped at the entities limit, the overall one first.
"""
import math

from api import ctim
from api.errors import UnexpectedResponseError

SOURCE = "Threatscore Cyberprotect"

# Score bands, continuous: (-inf, 0.25] Clean, (0.25, 0.5] Suspicious,
# (0.5, +inf) Malicious. Scores are documented as 0..1; a negative score is
# Clean (as Cisco's relay decided) and one above 1 is Malicious (clamped).
CLEAN_MAX = 0.25
SUSPICIOUS_MAX = 0.5

VALID_DAYS = 7
JUDGEMENT_DEFAULTS = {"confidence": "Medium", "severity": "Medium"}
ENGINE_PRIORITY = 85
# Above the engines, so CTIM's own rule (highest priority wins) picks the
# overall judgement and agrees with the verdict the relay sends.
OVERALL_PRIORITY = 90
REASON_MAX = 1024    # CTIM ShortString


def usable_score(value):
    """`value` if it is a finite number (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return None
    return value


def disposition(score):
    """The CTIM disposition of a Threatscore score; None for a missing score.

    Bands have no gaps: score <= 0.25 Clean (negative scores included),
    0.25 < score <= 0.5 Suspicious, score > 0.5 Malicious (above 1 included).
    A null, non-numeric or non-finite score has no disposition.
    """
    score = usable_score(score)
    if score is None:
        return None
    if score <= CLEAN_MAX:
        return ctim.CLEAN
    if score <= SUSPICIOUS_MAX:
        return ctim.SUSPICIOUS
    return ctim.MALICIOUS


def _malformed(what):
    return UnexpectedResponseError(
        f"Threatscore's answer {what}; its data structure changed")


def score_entries(observable, document):
    """The dict entries of `scores[]` with their parsed dates, newest first.

    Non-dict entries (the `"scores": [[]]` form of an unknown observable) are
    skipped. A missing `scores` list, or an entry without a readable `date`,
    raises UnexpectedResponseError.
    """
    if not isinstance(document, dict):
        raise _malformed("is not a JSON object")
    scores = document.get("scores")
    if not isinstance(scores, list):
        raise _malformed("has no 'scores' list")
    entries = []
    for index, entry in enumerate(scores):
        if not isinstance(entry, dict):
            continue
        moment = ctim.parse_time(entry.get("date"))
        if moment is None:
            raise _malformed("has a score without a readable 'date'")
        entries.append((moment, index, entry))
    # Newest first; equal dates keep the provider's order.
    entries.sort(key=lambda item: (item[0], -item[1]), reverse=True)
    return [(moment, entry) for moment, _, entry in entries]


def _valid(observable, moment):
    return ctim.valid_time(observable["type"], moment, VALID_DAYS)


def overall_judgement(observable, moment, entry, source_uri):
    """The judgement of a whole score entry (the verdict's judgement)."""
    score = entry["score"]
    level = entry.get("level")
    reason = f"Threatscore score {score:.4g}"
    if isinstance(level, str) and level.strip():
        reason += f" ({level.strip()})"
    return ctim.judgement(
        observable, disposition(score), SOURCE, priority=OVERALL_PRIORITY,
        valid=_valid(observable, moment), source_uri=source_uri,
        reason=ctim.clip(reason, REASON_MAX), **JUDGEMENT_DEFAULTS)


def engine_judgements(observable, entries, source_uri):
    """One judgement per engine detail with a numeric score, newest entries first."""
    for entry_moment, entry in entries:
        details = entry.get("details") or []
        if not isinstance(details, list):
            raise _malformed("has a 'details' field that is not a list")
        for detail in details:
            if not isinstance(detail, dict):
                continue
            result = disposition(detail.get("score"))
            if result is None:
                continue
            engine = detail.get("engineId")
            if not isinstance(engine, (str, int)) or not str(engine).strip():
                raise _malformed("has an engine detail without 'engineId'")
            moment = entry_moment
            if detail.get("date") is not None:
                moment = ctim.parse_time(detail["date"])
                if moment is None:
                    raise _malformed("has an engine detail with an unreadable date")
            yield ctim.judgement(
                observable, result, SOURCE, priority=ENGINE_PRIORITY,
                valid=_valid(observable, moment), source_uri=source_uri,
                reason=ctim.clip(f"Engine: {str(engine).strip()}", REASON_MAX),
                **JUDGEMENT_DEFAULTS)


def verdict(observable, moment, entry, judgement_id=None):
    """The verdict of a score entry that has a numeric score."""
    return ctim.verdict(observable, disposition(entry["score"]), _valid(observable, moment),
                        judgement_id)


def map_score(observable, document, source_uri, limit, judgements=True):
    """CTIM docs for one observable: [verdict, judgements...], or [] without data.

    `limit` caps the judgements; with `judgements=False` (deliberate) only the
    verdict is returned, without a `judgement_id`.
    """
    entries = score_entries(observable, document)
    newest = next(((moment, entry) for moment, entry in entries
                   if disposition(entry.get("score")) is not None), None)
    if not judgements:
        return [] if newest is None else [verdict(observable, *newest)]
    docs = []
    if newest is not None:
        docs.append(overall_judgement(observable, *newest, source_uri))
    for doc in engine_judgements(observable, entries, source_uri):
        if len(docs) >= limit:
            break
        docs.append(doc)
    if newest is None:
        return docs
    return [verdict(observable, *newest, judgement_id=docs[0]["id"])] + docs
