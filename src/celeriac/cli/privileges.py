"""``celeriac worker --uid/--gid/--umask``: switch user and group and set the umask at
start, as Celery's ``platforms.maybe_drop_privileges`` does.

Edge layer (cli), stdlib only. Runs after the app is imported and before logging, the
pid file and the worker start, so those files are created as the new user with the new
umask. A user or group that does not exist, or a switch the process is not allowed to
make, stops the command (exit 64) with what to do.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd

from celeriac.cli.base import CLIError


def parse_uid(value: str | int) -> int:
    """A user id, or a user name looked up in the password database."""
    try:
        return int(value)
    except ValueError:
        try:
            return pwd.getpwnam(str(value)).pw_uid
        except KeyError:
            raise CLIError(f"--uid: user {value!r} does not exist") from None


def parse_gid(value: str | int) -> int:
    """A group id, or a group name looked up in the group database."""
    try:
        return int(value)
    except ValueError:
        try:
            return grp.getgrnam(str(value)).gr_gid
        except KeyError:
            raise CLIError(f"--gid: group {value!r} does not exist") from None


def parse_umask(value: str | int) -> int:
    """Celery's reading: octal with a leading 0 (``0027``), else a decimal number."""
    text = str(value).strip()
    try:
        mask = int(text, 8 if text.startswith("0") else 10)
    except ValueError:
        raise CLIError(f"--umask takes an octal mask such as 0027, not {value!r}") from None
    if not 0 <= mask <= 0o777:
        raise CLIError(f"--umask {value!r} is outside 0 to 0777")
    return mask


def drop_privileges(uid: str | None, gid: str | None) -> None:
    """Become ``uid`` (with its primary group unless ``gid`` is given) and/or ``gid``.

    As Celery: the group first (then the user's supplementary groups), the user last, and
    the switch must be final: a process that could become root again is refused.
    """
    new_uid = parse_uid(uid) if uid else None
    new_gid = parse_gid(gid) if gid else None
    try:
        if new_uid is not None:
            _become_user(new_uid, new_gid)
        elif new_gid is not None:
            os.setgid(new_gid)
    except PermissionError as exc:
        raise CLIError(
            f"--uid/--gid: this process may not switch to uid={uid} gid={gid} ({exc}): start "
            f"the worker as root to drop privileges, or as the user itself without them"
        ) from None
    if new_uid is not None and (os.getuid() == 0 or os.geteuid() == 0):
        raise CLIError("--uid: still root after dropping privileges; refusing to run")
    if new_gid is not None and (os.getgid() == 0 or os.getegid() == 0) and new_gid != 0:
        raise CLIError("--gid: still in the root group after dropping privileges")


def _become_user(uid: int, gid: int | None) -> None:
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        entry = None
    group = gid if gid is not None else (entry.pw_gid if entry is not None else uid)
    os.setgid(group)  # before the user: afterwards the process may no longer change it
    if entry is not None:
        os.initgroups(entry.pw_name, group)
    else:
        os.setgroups([group])
    os.setuid(uid)
    try:
        os.setuid(0)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            raise
        return  # root cannot be regained: the switch is final
    if uid != 0:
        raise CLIError("--uid: the process could become root again after dropping privileges")


def apply_umask(value: str | None) -> None:
    if value is not None:
        os.umask(parse_umask(value))


__all__ = ["apply_umask", "drop_privileges", "parse_gid", "parse_uid", "parse_umask"]
