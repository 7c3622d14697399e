"""The relay's version: the one place it is written."""

VERSION = "1.0.0"
