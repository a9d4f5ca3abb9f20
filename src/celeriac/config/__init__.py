"""Configuration: every setting declared once (``settings``), the ``app.conf`` mapping
(``conf``), and one answer for a name nobody reads: the closest known one (``hints``)."""

from celeriac.config.conf import NotInEffectWarning, Settings
from celeriac.config.hints import UnknownSettingWarning
from celeriac.config.settings import SETTINGS, Setting

__all__ = ["SETTINGS", "NotInEffectWarning", "Setting", "Settings", "UnknownSettingWarning"]
