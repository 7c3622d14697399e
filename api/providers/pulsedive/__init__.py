"""Pulsedive (https://pulsedive.com): risk-scored IPs, domains and URLs."""
from api.providers.pulsedive.provider import PulsediveProvider

PROVIDER = PulsediveProvider()
