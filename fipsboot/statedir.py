"""Where fipsboot keeps its state: the state folder and one folder in it per installation.

FIPSBOOT_STATE_DIR, else the machine-wide folder (/var/lib/fipsboot), else the user's state
folder (platformdirs). An installation's folder is named by a key derived from its install
dir, the same whatever the spelling of that dir, so one installation has one journal and one
lock. What lies inside that folder is the journal's business (journal.py, backups.py).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import List

from .errors import FipsbootError

SYSTEM_STATE_DIR = Path("/var/lib/fipsboot")


def state_root() -> Path:
    """FIPSBOOT_STATE_DIR; else the machine-wide folder, where an administrator's install
    writes and where the server's own account (running `fipsboot run`) finds it; else, for an
    unprivileged user with no machine-wide state, that user's state folder."""
    if os.environ.get("FIPSBOOT_STATE_DIR"):
        return Path(os.environ["FIPSBOOT_STATE_DIR"])
    import platformdirs

    if os.name != "posix":
        return Path(platformdirs.site_data_dir("fipsboot", appauthor=False))
    if os.geteuid() == 0 or SYSTEM_STATE_DIR.is_dir():
        return SYSTEM_STATE_DIR
    return Path(platformdirs.user_state_dir("fipsboot", appauthor=False))


def installation_folder(install_dir: str) -> Path:
    """The installation's folder in the state folder. A folder under an earlier key (as
    written, before keys were normalised or resolved) is still this installation's while
    there is none under the current key."""
    folder = state_root() / installation_key(install_dir)
    if not os.path.lexists(folder):
        for key in _earlier_keys(install_dir):
            if os.path.lexists(state_root() / key):
                return state_root() / key
    return folder


def current_user() -> str:
    """Who ran the command (the effective account, not what $USER claims)."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        import getpass

        return getpass.getuser()


def installation_key(install_dir: str) -> str:
    """The state folder's name: one per installation whatever the spelling. A Windows install
    dir is keyed on the folder Windows means (case folded, one kind of slash, `..` collapsed,
    short names resolved where possible): `C:\\GCTI\\ORS`, `c:/gcti/x/../ors` are one
    installation, one journal, one lock. A Linux one on its real path (links and `..`
    resolved: `/opt/x/../ors` and a link to /opt/ors are /opt/ors; of a path that does not
    exist, the part that does; a path that can't be resolved is an error)."""
    return _written_key(_canonical(install_dir))


def _canonical(install_dir: str) -> str:
    if install_dir[1:2] == ":":  # a drive path: a Linux install dir starts with /
        import ntpath

        from .platforms.winpaths import normalised

        return normalised(ntpath.normpath(install_dir))
    try:
        return os.path.realpath(install_dir, strict=True)
    except (FileNotFoundError, NotADirectoryError):  # not there (yet): what exists resolved
        return os.path.realpath(install_dir)
    except OSError as e:  # a link loop, a folder this account can't search
        raise FipsbootError(f"install-dir {install_dir} can't be resolved to a real folder "
                            f"({e.strerror})", "create the installation folder (or fix the "
                            "profile's install-dir) and run the command again") from None


def _earlier_keys(install_dir: str) -> List[str]:
    """Keys earlier fipsboot versions gave this installation: as written, and (Windows)
    normalised without collapsing `..`."""
    keys = [_written_key(install_dir)]
    if install_dir[1:2] == ":":
        from .platforms.winpaths import normalised

        keys.insert(0, _written_key(normalised(install_dir)))
    return keys


def _written_key(install_dir: str) -> str:
    tail = "".join(c if c.isalnum() else "-" for c in install_dir)[-40:].strip("-")
    return f"{hashlib.sha256(install_dir.encode()).hexdigest()[:12]}-{tail}"
