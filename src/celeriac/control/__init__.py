"""Remote control and inspect: commands sent to the workers on the broker's channel, and
their replies.

Below the app core (``app.control`` uses the client) and above the seams; never imports
the worker, which implements ``ControlState`` and runs a ``ControlServer``. ``protocol``
is the message format, ``registry`` the commands and their decorators, ``client`` and
``inspect`` the caller's side, ``server`` the worker's mailbox.
"""

# The built-in commands register themselves on import: every user of the package sees them.
from celeriac.control import control_commands, inspect_commands
from celeriac.control.registry import control_command, inspect_command, nok, ok

__all__ = [
    "control_command",
    "control_commands",
    "inspect_command",
    "inspect_commands",
    "nok",
    "ok",
]
