"""AlienVault OTX: pulses holding the observables, as CTIM."""
from api.providers.otx.provider import OtxProvider

PROVIDER = OtxProvider()
