"""How the site configuration reports problems: all of them together, as one ``SiteConfigError``.

The tables themselves are read by ``config_reader.TableReader``; ``Problems`` is its collect-all
policy with the site configuration's wording (``config_reader.SITE_WORDING``).
"""

from __future__ import annotations

from .config_reader import SITE_WORDING, CollectAll, ConfigProblems


class SiteConfigError(ConfigProblems):
    """All problems found in a site configuration; ``problems`` lists them one by one."""

    subject = "the site configuration"


class Problems(CollectAll):
    """Collects the problems of one site configuration file; ``raise_if_any`` raises them together."""

    error_type = SiteConfigError

    def __init__(self, file: str) -> None:
        super().__init__(file, SITE_WORDING)
