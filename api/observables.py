"""Reading and checking the request bodies the platform sends."""
import json

from api.errors import InvalidArgumentError

_PREFIX = "Invalid JSON payload received."


def read_body(request, settings):
    """The raw body, refused early when it is over RELAY_MAX_BODY_BYTES."""
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise InvalidArgumentError(
            f"{_PREFIX} The body is larger than the relay's limit of {limit} bytes.")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise InvalidArgumentError(
            f"{_PREFIX} The body is larger than the relay's limit of {limit} bytes.")
    return data


def _load(data):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgumentError(f"{_PREFIX} The body is not valid JSON.") from None
    except RecursionError:  # e.g. 100,000 nested "[": the decoder gives up
        raise InvalidArgumentError(f"{_PREFIX} The body is nested too deeply.") from None


def parse_observables(data, settings):
    """A list of {"type", "value"} dicts from the raw body, or InvalidArgumentError."""
    payload = _load(data)
    if not isinstance(payload, list):
        raise InvalidArgumentError(
            f"{_PREFIX} Expected a list of observables like "
            '[{"type": "ip", "value": "1.1.1.1"}].')
    if len(payload) > settings.max_observables:
        raise InvalidArgumentError(
            f"{_PREFIX} {len(payload)} observables exceed the relay's limit of "
            f"{settings.max_observables} per request.")
    observables = []
    for index, item in enumerate(payload):
        if not isinstance(item, dict):
            raise InvalidArgumentError(
                f"{_PREFIX} Item {index} is not an object with 'type' and 'value'.")
        extra = sorted(set(item) - {"type", "value"})
        if extra:
            raise InvalidArgumentError(
                f"{_PREFIX} Item {index} has unknown field(s): {', '.join(extra)}.")
        for name in ("type", "value"):
            if name not in item:
                raise InvalidArgumentError(
                    f"{_PREFIX} Item {index} is missing '{name}'.")
            if not isinstance(item[name], str):
                raise InvalidArgumentError(
                    f"{_PREFIX} Item {index}: '{name}' must be a string.")
            if item[name] == "":
                raise InvalidArgumentError(
                    f"{_PREFIX} Item {index}: '{name}' may not be blank.")
        _check_length(item["value"], f"Item {index}: 'value'", settings)
        observables.append({"type": item["type"], "value": item["value"]})
    return observables


def select(observables, provider):
    """Supported observables only, exact duplicates merged, order kept."""
    seen = set()
    result = []
    for obs in observables:
        marker = (obs["type"], obs["value"])
        if marker in seen or obs["type"] not in provider.supported_types:
            continue
        seen.add(marker)
        if provider.accepts(obs):
            result.append(obs)
    return result


def _check_length(value, what, settings):
    if len(value) > settings.max_value_length:
        raise InvalidArgumentError(
            f"{_PREFIX} {what} is longer than the relay's limit of "
            f"{settings.max_value_length} characters (RELAY_MAX_VALUE_LENGTH).")


def parse_trigger(data, settings):
    """The respond/trigger body: action-id, observable_type/_value plus extras."""
    payload = _load(data)
    if not isinstance(payload, dict):
        raise InvalidArgumentError(f"{_PREFIX} Expected a JSON object.")
    for name in ("action-id", "observable_type", "observable_value"):
        value = payload.get(name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidArgumentError(
                f"{_PREFIX} '{name}' must be a non-blank string.")
    _check_length(payload["observable_value"], "'observable_value'", settings)
    return payload
