"""A get/set store for unit tests that need no OpenSSL and no files of a server (the journal
adapts it as it does the registry stores: fipsboot/stores.py `ValueStore`): keyed JSON-able
values, held in a JSON file so that a second process (the one a test killed, then
the one that recovers) sees the same values.

`refuse=(key, value)` makes setting that key to that value raise OSError, as a store that
can't be written would.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

KIND = "fake"


class FakeStore:
    def __init__(self, path: Path, refuse: Optional[Tuple[str, Any]] = None):
        self.path = Path(path)
        self.refuse = refuse
        self.sets = 0  # how many times anything was written (to prove nothing was)

    def values(self) -> Dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def get(self, key: str) -> Any:
        return self.values().get(key)

    def set(self, key: str, value: Any) -> None:
        if (key, value) == self.refuse:
            raise OSError(f"{key}: the store refused the write")
        values = self.values()
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(values, sort_keys=True))
        os.replace(tmp, self.path)  # atomic: a kill leaves the old or the new values
        self.sets += 1
