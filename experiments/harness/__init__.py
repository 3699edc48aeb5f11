"""The machinery that runs the checks: discovery of strategies, one process per strategy × check, serving an app
in-process or under a real server, throwaway PostgreSQL, counting what SQLAlchemy does, and authoring helpers.

Nothing here judges a strategy; the checks (`experiments/test_*.py`) do.
"""
