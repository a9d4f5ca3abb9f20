"""Configuration: every setting declared once (``settings``) and the ``app.conf`` mapping."""

from celeriac.config.conf import NotInEffectWarning, Settings, UnknownSettingWarning
from celeriac.config.settings import SETTINGS, Setting

__all__ = ["SETTINGS", "NotInEffectWarning", "Setting", "Settings", "UnknownSettingWarning"]
