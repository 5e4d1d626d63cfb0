"""Mechanisms that exist only for the tests (a third party's plug-in, as it would ship)."""
