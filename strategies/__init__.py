"""One module per session-management strategy; this directory is the registry.

Each module is its pattern: a FastAPI `app` written the way users of that
pattern write it, reading `DATABASE_URL` (sync driver) or `ASYNC_DATABASE_URL`
(async driver) from the environment, and where its endpoints get their session
(experiments/harness/mount.py adds the probe routes from that). Its
docstring's first line is its label in the report.
"""
