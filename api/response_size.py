"""Answers that fit Lambda's 6 MB response limit (issue 11 item 9).

A few KB of observables can ask for megabytes of CTIM (59 KB in gave 11.5 MB
out); Lambda refuses a response over 6 MB whole. Over RELAY_MAX_RESPONSE_BYTES
the answer keeps its verdicts and judgements and leaves out relationships,
then sightings, then indicators from the end until it fits, with an error
saying so; if even that is too large, the error alone.
"""
from flask import current_app

# Left out first to last. Relationships go first, so no relationship is ever
# left pointing at a sighting or indicator that was left out.
DROP_ORDER = ("relationships", "sightings", "indicators")
CODE = "response too large"


def lambda_size(text):
    """Bytes of `text` once Lambda escapes it into its JSON proxy response."""
    return len(text) + text.count('"') + text.count("\\")


def _dumps(body):
    return current_app.json.dumps(body)


def _too_large(size, limit, left_out):
    what = (f"{left_out} relationships, sightings and indicators were left out"
            if left_out else "the answer was left out")
    return {"type": "fatal", "code": CODE,
            "message": f"The answer ({size} bytes) is over the relay's limit of {limit} "
                       f"bytes (RELAY_MAX_RESPONSE_BYTES, under Lambda's 6 MB): {what}. "
                       "Ask about fewer observables or lower CTR_ENTITIES_LIMIT."}


def fit(body, limit):
    """The JSON text of `body`, trimmed as the module docstring says."""
    text = _dumps(body)
    size = lambda_size(text)
    if size <= limit:
        return text
    data = body.get("data")
    errors = list(body.get("errors", ()))
    if isinstance(data, dict):
        data = {key: dict(value, docs=list(value["docs"])) if key in DROP_ORDER else value
                for key, value in data.items()}
        excess = size - limit + 1000        # room for the error entry itself
        left_out = 0
        for key in DROP_ORDER:
            docs = data.get(key, {}).get("docs", [])
            while docs and excess > 0:
                excess -= lambda_size(_dumps(docs.pop())) + 1
                left_out += 1
            if key in data:
                data[key]["count"] = len(docs)
                if not docs:
                    del data[key]
        trimmed = {"errors": errors + [_too_large(size, limit, left_out)], "data": data}
        text = _dumps(trimmed)
        if lambda_size(text) <= limit:
            return text
    return _dumps({"errors": errors + [_too_large(size, limit, 0)]})


def response(body, limit):
    """A Flask JSON response of `body` within `limit` (see `fit`)."""
    return current_app.response_class(fit(body, limit) + "\n",
                                      mimetype=current_app.json.mimetype)
