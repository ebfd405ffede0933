"""fipsboot's variables as Windows names them: which of them mean something there, and the
one spelling for a name that Windows matches without regard to case."""
from __future__ import annotations

from typing import List, Optional

from ..environ import VARIABLES
from .base import Values

# Windows finds DLLs beside the program: LD_LIBRARY_PATH means nothing there.
WINDOWS_VARIABLES = tuple(v for v in VARIABLES if v != "LD_LIBRARY_PATH")


def managed_only(desired: Values) -> Values:
    return {k: v for k, v in desired.items() if k in WINDOWS_VARIABLES}


def canonical_name(name: str) -> Optional[str]:
    """Our variable's spelling for `name`: Windows variable names ignore case."""
    folded = name.casefold()
    return next((v for v in WINDOWS_VARIABLES if v.casefold() == folded), None)


def ambiguous(values: List[str]) -> str:
    """What a variable defined more than once (differently) reads as: matches nothing."""
    return f"<ambiguous: defined {len(values)} times: " + ", ".join(map(repr, values)) + ">"
