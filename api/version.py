"""The relay's name and version: the one place they are written."""

NAME = "tr-intel-relay"

VERSION = "1.0.0"
