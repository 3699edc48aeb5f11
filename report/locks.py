"""The lock files under locks/: which pins hold for a Python, and whether this environment matches its lock.

The nox sessions install from a lock (pip requirements with exact pins and
hashes, compiled `--universal`, so some pins carry markers) and name it in
SESSIONBENCH_LOCK; a run records the file, its hash and every installed version
that differs from it.
"""

from __future__ import annotations

import hashlib
import os
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK_VARIABLE = "SESSIONBENCH_LOCK"  # set by the nox sessions: the lock file they installed from


def installed(name: str) -> str | None:
    """The version of `name` installed here; None when it is not."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def python_markers(python: str) -> dict[str, str]:
    """The PEP 508 marker values that depend on the interpreter, for Python `X.Y`."""
    return {"python_version": python, "python_full_version": f"{python}.0"}


def pins(text: str, python: str | None = None) -> dict[str, str]:
    """{package: version} of a pip requirements file's `name==version` lines whose markers hold for this
    interpreter, or for Python `X.Y` (a lock compiled with --universal carries such markers)."""
    environment = None if python is None else python_markers(python)
    found = {}
    for line in text.splitlines():
        requirement, _, marker = line.rstrip(" \\").partition(";")
        name, sep, version = requirement.strip().partition("==")
        if sep and not line.startswith((" ", "#")) and (not marker.strip() or Marker(marker).evaluate(environment)):
            found[canonicalize_name(name)] = version.strip()
    return found


def lock_state() -> dict | None:
    """The lock file this environment was installed from, its hash, and any pin the installed versions miss.

    None outside the nox sessions (no SESSIONBENCH_LOCK): versions are then recorded, but nothing pinned them.
    """
    name = os.environ.get(LOCK_VARIABLE)
    if not name:
        return None
    content = (ROOT / name).read_bytes()
    pinned = pins(content.decode())
    found = {pkg: installed(pkg) for pkg in pinned}
    return {
        "file": name,
        "sha256": hashlib.sha256(content).hexdigest(),
        "pins": len(pinned),
        "differ": {
            pkg: {"locked": version, "installed": found[pkg]}
            for pkg, version in pinned.items()
            if found[pkg] is None or Version(found[pkg]) != Version(version)
        },
    }
