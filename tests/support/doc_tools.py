"""The tools other people wrote that check our documents: promtool, the AsyncAPI CLI and
openapi-python-client. Found, or the test stops (:func:`tests.support.tools.missing`)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.support.tools import missing

__all__ = ["asyncapi_cli", "openapi_python_client", "promtool"]

ROOT = Path(__file__).resolve().parents[2]


def promtool() -> str:
    """``promtool`` (Debian's ``prometheus`` package ships it; ``.ci/run`` installs it)."""
    found = shutil.which("promtool")
    if found is None:
        missing("promtool is not installed (apt-get install prometheus)")
    return found


def asyncapi_cli() -> str:
    """The AsyncAPI CLI: ``.ci/node`` (where ``.ci/run`` installs it), else ``PATH``."""
    local = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "asyncapi"
    found = str(local) if local.exists() else shutil.which("asyncapi")
    if found is None:
        missing("the AsyncAPI CLI is not installed (npm install --prefix .ci/node @asyncapi/cli)")
    return found


def openapi_python_client() -> str:
    """The ``openapi-python-client`` command of this environment (a test extra)."""
    beside = Path(sys.executable).with_name("openapi-python-client")
    found = str(beside) if beside.exists() else shutil.which("openapi-python-client")
    if found is None:
        missing("openapi-python-client is not installed (pip install -e '.[test]')")
    return found
