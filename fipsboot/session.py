"""One installation, opened once: every command runs inside a Session.

A session holds the profile, its resolved layout, the platform backend (picked once) and the
journal with the backend's stores. What a command asks of the installation it asks here: the
mode the journal records, the environment a target or a launch must hold in a mode (one
function, one stale-folder rule), and, for a command that changes something, the lock with
the recovery of whatever a killed command left.

    with Session(profile).changing(dry_run=False) as session:   # lock + recover
        ...
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Mapping, Optional

from . import environ, processenv
from .errors import FipsbootError, UsageError
from .journal import Journal
from .layout import Layout, resolve
from .platforms import backend_for
from .vocabulary import FIPS, Values


class Session:
    def __init__(self, profile, journal=None):
        self.profile = profile
        self.layout: Layout = resolve(profile)
        self.backend = backend_for(profile)
        self.journal = journal or Journal.for_installation(profile.install_dir,
                                                           self.backend.stores())
        self.recovered: Optional[dict] = None  # what `changing` finished of a killed command

    # --- what the journal records ----------------------------------------------------------

    @property
    def mode(self) -> str:
        """The mode the journal records; FIPS for an installation fipsboot never changed (what
        verify and report judge it against)."""
        return self.journal.mode or FIPS

    def require_journal(self) -> str:
        """The recorded mode, for the commands that mean nothing before install or reset."""
        if not self.journal.exists or self.journal.mode is None:
            source = self.profile.source
            raise UsageError(f"no fipsboot journal for {self.profile.install_dir}: run "
                             f"`fipsboot install --profile {source}` (or `reset`) first",
                             f"run `fipsboot install --profile {source}` (or `reset`) first")
        return self.journal.mode

    @property
    def previously_written(self) -> List[str]:
        """Library folders an earlier install put on LD_LIBRARY_PATH (dropped in every mode
        where they do not lead)."""
        return list(self.journal.extra.get("ld_dirs", []))

    # --- the environment of a mode ---------------------------------------------------------

    def targets(self) -> List:
        return self.backend.targets(self.profile)

    def values(self, mode: str, current: Mapping[str, Optional[str]] = {}) -> Values:
        """What a target (or a launch) holding `current` must hold in `mode`."""
        return environ.values(self.layout, mode, current, self.previously_written)

    def launch_environment(self, mode: Optional[str] = None,
                           base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        """The environment a server started in `mode` (default: the recorded one) gets: the
        caller's (or `base`), with exactly the mode's variables."""
        return environ.launch_env(processenv.caller() if base is None else base, self.layout,
                                  mode or self.mode, self.previously_written)

    # --- changing the installation ---------------------------------------------------------

    @contextlib.contextmanager
    def changing(self, dry_run: bool = False) -> Iterator[Session]:
        """The lock (one fipsboot at a time per installation), then whatever a killed command
        left finished first (`recovered`). A dry run takes no lock and changes nothing."""
        if dry_run:
            yield self
            return
        with self.journal.lock():
            self.recovered = self.journal.recover()
            yield self


class UnreadJournal:
    """A journal that could not be read (damaged, or not this account's), for a read-only
    question that can still be answered without it (tls-check's environment): no mode, no
    folders an earlier install wrote. Commands that change or judge the installation never
    use it: they report the damaged journal."""

    exists = False
    mode = None
    managed: Dict[str, str] = {}
    extra: Dict[str, object] = {}
    checkpoints: List[dict] = []
    follow_up: List[List[str]] = []


def readonly_session(profile) -> Session:
    try:
        return Session(profile)
    except FipsbootError:
        return Session(profile, journal=UnreadJournal())
