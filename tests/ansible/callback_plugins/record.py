"""Test-only callback: every task result and the play recap, as JSON in $FIPSBOOT_TEST_RECORD
(ansible-core has no JSON callback of its own; the stdout callback stays the default one, so
the test also sees what an operator sees, --diff included)."""
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: record
type: aggregate
short_description: write task results and stats as JSON for the tests
description: Writes task results and the recap to the file named by FIPSBOOT_TEST_RECORD.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.tasks = []

    def _record(self, result, **extra):
        name = result._task.get_name()
        entry = next((t for t in self.tasks if t["uuid"] == result._task._uuid), None)
        if entry is None:
            entry = {"uuid": result._task._uuid, "task": {"name": name}, "hosts": {}}
            self.tasks.append(entry)
        data = dict(result._result)
        data.update(extra)
        entry["hosts"][result._host.get_name()] = json.loads(json.dumps(data, default=str))

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed)
        out = {"plays": [{"tasks": self.tasks}],
               "stats": {h: stats.summarize(h) for h in hosts}}
        with open(os.environ["FIPSBOOT_TEST_RECORD"], "w") as f:
            json.dump(out, f, indent=1)
