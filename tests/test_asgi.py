"""The server's entry point (chatsite/asgi.py), imported as daphne imports it."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import environment_without_settings

REPO = Path(__file__).resolve().parent.parent


def printed_after_start_up(code: str) -> list[str]:
    """What `code` prints in a fresh interpreter that has imported the entry point."""
    result = subprocess.run(
        [sys.executable, "-c", f"import chatsite.asgi; {code}"],
        cwd=REPO,
        env={**environment_without_settings(), "DJANGO_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_start_up_freezes_what_it_loaded_and_collects_young_objects_every_10000():
    printed = printed_after_start_up(
        "import gc, chatsite.asgi as a; "
        "print(gc.get_threshold() == a.GC_THRESHOLDS == (10000, 20, 20), gc.get_freeze_count() > 0)"
    )

    assert printed == ["True", "True"]


def test_start_up_has_autobahn_remember_its_debug_names():
    printed = printed_after_start_up(
        "import autobahn.websocket.protocol as p, autobahn.twisted.websocket as t; "
        "print(p.hltype.remembers, t.hltype.remembers)"
    )

    assert printed == ["True", "True"]
