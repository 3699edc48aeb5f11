"""The template's session per request plus 5 ms of blocking work per request

An instrument of tests/test_throughput.py: the measurement must rank it slowest
by a clear margin. Try it with
`nox -s bench -- --strategies-dir tests/bench_strategies`.
"""

import importlib.util
import time

from experiments.harness.discovery import ROOT

# A fresh copy of the template each time this module is loaded, so that the middleware is added to a new app only.
_spec = importlib.util.spec_from_file_location("_slowed_template", ROOT / "strategies" / "_template.py")
_template = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_template)

app = _template.app
UNSUPPORTED = _template.UNSUPPORTED


@app.middleware("http")
async def five_ms_of_work(request, call_next):
    time.sleep(0.005)  # blocks the event loop, like CPU work would
    return await call_next(request)
