"""Known-good and known-bad strategies: every check must pass the first and flag the second.

They live here, not in strategies/, because they are instruments of the tests,
not candidates for the report.
"""
