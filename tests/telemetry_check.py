"""Reading what the relay writes: JSON log lines and CloudWatch Embedded
Metric Format (EMF) documents, checked against the EMF specification
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
CloudWatch_Embedded_Metric_Format_Specification.html)."""
import json

from jsonschema import Draft7Validator

UNITS = ["Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
         "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
         "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
         "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
         "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"]

# The EMF specification's structure, as a JSON Schema.
EMF_SCHEMA = {
    "type": "object",
    "required": ["_aws"],
    "properties": {"_aws": {
        "type": "object",
        "required": ["Timestamp", "CloudWatchMetrics"],
        "properties": {
            "Timestamp": {"type": "integer", "minimum": 0},
            "CloudWatchMetrics": {"type": "array", "items": {
                "type": "object",
                "required": ["Namespace", "Dimensions", "Metrics"],
                "properties": {
                    "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024,
                                  "pattern": r"^[^:].*$"},
                    "Dimensions": {"type": "array", "items": {
                        "type": "array", "maxItems": 30,
                        "items": {"type": "string", "minLength": 1, "maxLength": 250}}},
                    "Metrics": {"type": "array", "maxItems": 100, "items": {
                        "type": "object", "required": ["Name"],
                        "properties": {
                            "Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                            "Unit": {"enum": UNITS},
                            "StorageResolution": {"enum": [1, 60]}}}}}}}}}},
}
_validator = Draft7Validator(EMF_SCHEMA)


def emf_problems(doc):
    """Schema errors plus the rules the schema cannot say: every dimension
    names a root string member, every metric a number or <= 100 numbers."""
    problems = [e.message for e in _validator.iter_errors(doc)]
    if problems:
        return problems
    for directive in doc["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for name in dimension_set:
                if not isinstance(doc.get(name), str) or not doc[name]:
                    problems.append(f"dimension {name} is not a root string member")
        for metric in directive["Metrics"]:
            value = doc.get(metric["Name"])
            values = value if isinstance(value, list) else [value]
            if not values or len(values) > 100 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                problems.append(f"metric {metric['Name']} has no numeric value: {value!r}")
    return problems


def split_output(text, only_json=True):
    """(request log lines, upstream failure lines, EMF docs) of captured stdout;
    every non-blank line must be JSON unless `only_json` is false (Zappa's
    handler prints a plain "Instancing.." of its own)."""
    requests, failures, metrics = [], [], []
    for line in text.splitlines():
        if not line.strip() or not (only_json or line.startswith("{")):
            continue
        doc = json.loads(line)
        if "_aws" in doc:
            assert not emf_problems(doc), (emf_problems(doc), doc)
            metrics.append(doc)
        elif doc.get("message") == "request":
            requests.append(doc)
        elif doc.get("message") == "upstream failure":
            failures.append(doc)
    return requests, failures, metrics
