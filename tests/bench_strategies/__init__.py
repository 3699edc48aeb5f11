"""Strategies that exist to test the throughput machinery, not to be compared.

Apart from tests/fixture_strategies/, which the correctness checks' fixture run
puts through every check.
"""
