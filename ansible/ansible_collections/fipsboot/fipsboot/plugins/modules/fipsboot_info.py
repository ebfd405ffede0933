#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fipsboot contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: fipsboot_info
short_description: Verify an installation's FIPS mode with fipsboot and report every check
description:
  - Runs the host's own C(fipsboot verify --json) and, where this fipsboot has it, C(fipsboot status --json).
  - Never changes anything and never reports C(changed); runs the same in check mode.
  - A failing verdict is data, not a task failure; test RV(ok) (for example with C(ansible.builtin.assert)).
version_added: "1.0.0"
author:
  - fipsboot contributors (@fipsboot)
options:
  fast:
    description: Only the checks that start no process (C(verify --fast)).
    type: bool
    default: false
  strict:
    description: Warnings fail the verdict too (C(verify --strict)).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: Runs where fipsboot runs.
extends_documentation_fragment:
  - fipsboot.fipsboot.fipsboot
'''

EXAMPLES = r'''
- name: Is the server in FIPS mode?
  fipsboot.fipsboot.fipsboot_info:
    profile: /etc/fipsboot/ors.toml
  register: fips_info

- name: Stop here unless it is
  ansible.builtin.assert:
    that: [fips_info.ok, fips_info.mode == 'fips']
    fail_msg: "{{ fips_info.failed_checks }}"
'''

RETURN = r'''
ok:
  description: The verdict of C(fipsboot verify) (exit 0).
  returned: when verify ran
  type: bool
mode:
  description: The installation's mode as verify saw it (fips or non-fips).
  returned: when verify ran
  type: str
checks:
  description: Every check with its name, result, reason, fix and details, as C(fipsboot verify --json) gives them.
  returned: when verify ran
  type: list
  elements: dict
failed_checks:
  description: "C(name: reason) of each failing check."
  returned: when verify ran
  type: list
  elements: str
status:
  description: What C(fipsboot status --json) reports (mode, processes, checks), or null where this fipsboot has no status command.
  returned: always
  type: dict
rc:
  description: The exit code of C(fipsboot verify).
  returned: always
  type: int
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fipsboot.fipsboot.plugins.module_utils.fipsboot_cli import (
    argument_spec,
    find_executable,
    run_json,
)


def has_status(module, executable):
    rc, dummy, dummy2 = module.run_command([executable, 'status', '--help'])
    return rc == 0


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            fast=dict(type='bool', default=False),
            strict=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    executable = find_executable(module)
    argv = [executable, 'verify', '--profile', module.params['profile'], '--json']
    if module.params['fast']:
        argv.append('--fast')
    if module.params['strict']:
        argv.append('--strict')
    rc, data, out, err = run_json(module, argv)
    if data is None or 'checks' not in data:
        error = (data or {}).get('error') or (err or out).strip()
        module.fail_json(msg='fipsboot verify could not judge: %s' % error, fix=(data or {}).get('fix'),
                         rc=rc, changed=False, stdout=out, stderr=err)
    checks = data.get('checks') or []
    result = dict(
        changed=False,
        rc=rc,
        ok=bool(data.get('ok')) and rc == 0,
        mode=data.get('mode'),
        checks=checks,
        failed_checks=['%s: %s' % (c.get('name'), c.get('reason')) for c in checks if not c.get('ok')
                       and (c.get('severity') != 'warning' or module.params['strict'])],
        warnings_found=['%s: %s' % (c.get('name'), c.get('reason')) for c in checks
                        if not c.get('ok') and c.get('severity') == 'warning'],
        status=None,
    )
    if has_status(module, executable):
        src, status, sout, serr = run_json(module, [executable, 'status', '--profile', module.params['profile'],
                                                    '--json'])
        result['status'] = status if status is not None else {'error': (serr or sout).strip(), 'exit_code': src}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
