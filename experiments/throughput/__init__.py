"""The cost side of the comparison: throughput and latency against two baselines (`sweep`), the load it drives
(`traffic`), and the per-request session cost (`session_cost`).
"""
