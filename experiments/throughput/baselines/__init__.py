"""The two reference apps every strategy's throughput is divided by, measured in the same run.

Each is a module with an `app` serving the probe paths, like a strategy, so the
throughput machinery loads and serves them the same way; they live here and not
in strategies/ because they are yardsticks, not candidates.
"""

from pathlib import Path

DIR = Path(__file__).resolve().parent
# their ids in the results; "baseline:" cannot clash with a strategy module's name
NO_DB, RAW = "baseline:no_database", "baseline:raw_connection"
