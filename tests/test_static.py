"""collectstatic gives hashed names, and the page's modules import each other's hashed names."""

import re

from django.core.management import call_command


def test_collected_modules_import_hashed_modules(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "chat.storage.StaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)
    [app] = (tmp_path / "chat" / "js").glob("app.*.js")
    imports = re.findall(r"""from\s+["'](\.[^"']+)["']""", app.read_text())
    assert imports
    assert all(re.fullmatch(r"\./\w+\.[0-9a-f]{12}\.js", name) for name in imports), imports
    assert list((tmp_path / "chat" / "css").glob("site.*.css.gz")), "compressed copies"
