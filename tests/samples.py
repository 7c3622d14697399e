"""Real provider responses recorded by other projects, read in place from
../shared/provider-samples (never copied into this repository)."""
import json
import os
import pathlib

SAMPLES = pathlib.Path(os.environ.get(
    "PROVIDER_SAMPLES_DIR",
    pathlib.Path(__file__).resolve().parents[2] / "shared" / "provider-samples"))


def path(provider, name):
    return SAMPLES / provider / name


def load(provider, name):
    """The decoded JSON of sample `name` of `provider`."""
    return json.loads(path(provider, name).read_text())
