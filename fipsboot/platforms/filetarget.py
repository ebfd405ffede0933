"""A Linux target that is (part of) one file: read it, compute the change that makes it hold new
values while keeping every byte that is not fipsboot's."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

from .. import fsutil
from .base import Change, EnvTarget, Values, file_change, values_digest


class FileTarget(EnvTarget):
    """A target that is (part of) one file."""

    path: Path

    def current(self) -> Optional[bytes]:
        return fsutil.read(self.path)

    def read(self) -> Values:
        data = self.current()
        return self.parse(data.decode("utf-8", "surrogateescape")) if data is not None else {}

    def parse(self, text: str) -> Values:
        raise NotImplementedError

    def render(self, text: str, desired: Values) -> Optional[str]:
        raise NotImplementedError

    def managed_digest(self, data: Optional[bytes]) -> str:
        return values_digest(self.parse(data.decode("utf-8", "replace")) if data else {})

    owner: Optional[Tuple[int, int]] = None  # who a new file belongs to (a user's profile)

    def change(self, desired: Values) -> Change:
        old = self.current()
        # surrogateescape: bytes that are not UTF-8 come back exactly as they were.
        new_text = self.render(old.decode("utf-8", "surrogateescape") if old is not None
                               else "", desired)
        new = None if new_text is None else new_text.encode("utf-8", "surrogateescape")
        if old is None and new is not None and not new_text.strip():
            new = None  # nothing to say and nothing there: don't create an empty file
        before = self.read()
        variables = {k: [before.get(k), desired.get(k)] for k in desired}
        return file_change(self.path, self.spec, old, new, self.managed_digest(old),
                           self.managed_digest(new), variables, self.notes(), self.owner)
