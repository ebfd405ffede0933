"""Not a test module: the names tests/test_status.py imports from `test_run`, which was split
into test_run_*.py with its helpers in runhelpers.py. test_status.py is being changed on
another branch; once it imports from runhelpers, delete this file (conftest's collect_ignore
keeps pytest from collecting it meanwhile)."""
from runhelpers import (  # noqa: F401
    account_switch,
    caller_env,
    free_port,
    installed,
    journal_folder,
    run_wrapped,
    s_server,
    serving,
    wrapper_argv,
)
