"""The server's entry point (chatsite/asgi.py), imported as daphne imports it."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import environment_without_settings

REPO = Path(__file__).resolve().parent.parent


def test_start_up_freezes_what_it_loaded_and_collects_young_objects_every_10000():
    code = (
        "import gc, chatsite.asgi as a; "
        "print(gc.get_threshold() == a.GC_THRESHOLDS == (10000, 20, 20), gc.get_freeze_count() > 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**environment_without_settings(), "DJANGO_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]
