"""The authoring template's app with one HTTP middleware added, run before every request.

The bench strategies are built from it so that they differ in that middleware's
body and nothing else: twins whose difference is what a measurement must see.
"""

import importlib.util

from experiments.harness.discovery import ROOT


def template_with(before_request):
    """A fresh copy of the template (the middleware goes on a new app only) with `before_request()` in a middleware:
    its app and its session alias, which the harness mounts the probe routes from."""
    spec = importlib.util.spec_from_file_location("_bench_template", ROOT / "strategies" / "_template.py")
    template = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(template)

    @template.app.middleware("http")
    async def before(request, call_next):
        before_request()
        return await call_next(request)

    return template.app, template.SessionDep
