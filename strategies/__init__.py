"""One module per session-management strategy; this directory is the registry.

Each module exposes a FastAPI `app` written the way users of that pattern write
it, reads `DATABASE_URL` (sync driver) or `ASYNC_DATABASE_URL` (async driver)
from the environment, and wires the probe routes of `experiments/probes.py`.
Its docstring's first line is its label in the report.
"""
