"""MISP: events matching the observables, as CTIM."""
from api.providers.misp.provider import MispProvider

PROVIDER = MispProvider()
