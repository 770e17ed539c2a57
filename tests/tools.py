"""External programs the deploy tests run for real (Debian's prometheus package).

`make test` installs them first (scripts/install-prometheus.sh). Run outside it, a
missing tool skips the tests that need it, naming the script; under CI (CI set) it
fails them instead, so a CI run can never pass without having run them.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require(program: str) -> str:
    path = shutil.which(program)
    if path is not None:
        return path
    message = f"{program} is not installed: run scripts/install-prometheus.sh (make test does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
