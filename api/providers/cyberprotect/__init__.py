"""Threatscore | Cyberprotect: one scored verdict per observable, as CTIM."""
from api.providers.cyberprotect.provider import CyberprotectProvider

PROVIDER = CyberprotectProvider()
