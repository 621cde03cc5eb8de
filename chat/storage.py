"""Static files storage: hashed names, compressed, ES module imports rewritten too."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    # The page's modules import each other; the hashed app.js must import hashed modules,
    # or a deploy could mix old and new code from the browser's cache.
    support_js_module_import_aggregation = True
