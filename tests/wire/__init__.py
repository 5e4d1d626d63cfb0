"""Harnesses for the coordinator's wire that only tests use: the fuzzer (``fuzz``)."""
