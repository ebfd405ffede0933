#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fipsboot contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: fipsboot
short_description: Put a server's own OpenSSL 3 FIPS provider into FIPS mode, take it out, roll back
description:
  - Runs the host's own C(fipsboot) (C(install), C(reset) or C(rollback)) with C(--json) and
    reports what it did.
  - C(changed) is taken from fipsboot's answer, never guessed. In check mode the command runs with
    C(--dry-run) and C(changed) says whether it would change anything, a change of mode included.
  - With C(--diff), each file fipsboot would change is shown as a unified diff.
version_added: "1.0.0"
author:
  - fipsboot contributors (@fipsboot)
options:
  state:
    description:
      - C(fips) runs C(fipsboot install), C(non_fips) runs C(fipsboot reset),
        C(rolled_back) runs C(fipsboot rollback).
    type: str
    choices: [fips, non_fips, rolled_back]
    default: fips
  checkpoint:
    description:
      - With O(state=rolled_back), undo down to and including this checkpoint (C(--to)).
      - Give the checkpoint a task of this module returned, so that only that run's change is undone.
      - Without it, the newest checkpoint is undone.
    type: int
  force:
    description:
      - Overwrite files or values edited by hand since fipsboot wrote them (C(--force)); the edited
        copy is kept in fipsboot's journal.
      - Without it such an edit fails the task (fipsboot's exit 3); the module never forces on its own.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Runs fipsboot with C(--dry-run); nothing is changed.
  diff_mode:
    support: full
    description: Each file's change as a unified diff; the mode before and after.
  platform:
    support: full
    platforms: posix
    description: Runs where fipsboot runs (Linux; Windows through fipsboot's own support is not covered by this module).
notes:
  - Exit codes of fipsboot are returned as RV(rc). C(3) (a hand edit) fails and says to set O(force=true).
    C(4) (another fipsboot holds the lock) fails with RV(locked=true) so a task can retry with C(until).
    C(5) (the change is made but what must follow it failed) fails with C(changed=true) and the
    RV(checkpoint) it created.
extends_documentation_fragment:
  - fipsboot.fipsboot.fipsboot
'''

EXAMPLES = r'''
- name: FIPS mode for the ORS installation
  fipsboot.fipsboot.fipsboot:
    profile: /etc/fipsboot/ors.toml
    state: fips
  register: fips
  until: fips is not failed or not (fips.locked | default(false))
  retries: 5
  delay: 3

- name: Undo exactly what the task above did
  fipsboot.fipsboot.fipsboot:
    profile: /etc/fipsboot/ors.toml
    state: rolled_back
    checkpoint: "{{ fips.checkpoint }}"
  when: fips.checkpoint is not none

- name: Non-FIPS mode
  fipsboot.fipsboot.fipsboot:
    profile: /etc/fipsboot/ors.toml
    state: non_fips
'''

RETURN = r'''
checkpoint:
  description: The journal checkpoint this run created (null when nothing changed, in check mode and for a rollback).
  returned: always
  type: int
  sample: 3
plan:
  description: Each file, target and value fipsboot considered, with its action, variables (old, new) and unified diff.
  returned: for fips and non_fips
  type: list
  elements: dict
  sample:
    - target: openssl.cnf
      path: /opt/ors/openssl.cnf
      action: create
      variables: {}
      notes: []
      diff: "--- /dev/null\n+++ /opt/ors/openssl.cnf\n..."
notes:
  description: fipsboot's notes (daemon-reload run or skipped, reminders).
  returned: always
  type: list
  elements: str
restart_required:
  description: The server's service must be restarted to pick the change up (in check mode, would have to be).
  returned: always
  type: bool
status:
  description: fipsboot's status word (installed, unchanged, reset, rolled-back, dry-run).
  returned: success
  type: str
  sample: installed
mode:
  description: The installation's mode after the run (fips, non-fips or null when fipsboot never changed it).
  returned: for rolled_back
  type: str
undone:
  description: The checkpoints a rollback undid (or, in check mode, would undo).
  returned: for rolled_back
  type: list
  elements: dict
rc:
  description: fipsboot's exit code.
  returned: always
  type: int
fix:
  description: fipsboot's advice when it failed.
  returned: failure
  type: str
locked:
  description: Another fipsboot held the installation's lock (exit 4); retrying later can succeed.
  returned: always
  type: bool
cmd:
  description: The command line that ran.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fipsboot.fipsboot.plugins.module_utils.fipsboot_cli import (
    argument_spec,
    find_executable,
    run_json,
)

COMMANDS = {'fips': 'install', 'non_fips': 'reset', 'rolled_back': 'rollback'}
EXIT_CONFLICT = 3  # a hand edit
EXIT_BUSY = 4  # another fipsboot holds the lock
EXIT_FOLLOW_UP = 5  # changed, but what must follow failed


def build_argv(module, executable):
    p = module.params
    argv = [executable, COMMANDS[p['state']], '--profile', p['profile'], '--json']
    if p['state'] == 'rolled_back' and p['checkpoint'] is not None:
        argv += ['--to', str(p['checkpoint'])]
    if p['force']:
        argv.append('--force')
    if module.check_mode:
        argv.append('--dry-run')
    return argv


def current_mode(module, executable):
    """The mode before the run (for the diff); None when unknown."""
    rc, data, dummy, dummy2 = run_json(module, [executable, 'rollback', '--profile', module.params['profile'],
                                                '--list', '--json'])
    return data.get('mode') if rc == 0 and data else None


def diff_of(data, mode_before, state):
    diffs = []
    if state != 'rolled_back':
        after = 'fips' if state == 'fips' else 'non-fips'
        if mode_before != after:
            diffs.append({'before_header': 'mode', 'after_header': 'mode',
                          'before': 'mode: %s\n' % (mode_before or 'as before fipsboot'),
                          'after': 'mode: %s\n' % after})
        for change in data.get('plan') or []:
            if change.get('diff'):
                diffs.append({'prepared': change['diff']})
    else:
        for cp in data.get('would_undo') or data.get('undone') or []:
            files = cp.get('restores') or cp.get('restored') or []
            diffs.append({'prepared': 'undo checkpoint %s (%s): restores %s\n'
                          % (cp.get('id'), cp.get('command'), ', '.join(files) or '-')})
    return diffs


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            state=dict(type='str', default='fips', choices=list(COMMANDS)),
            checkpoint=dict(type='int'),
            force=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    if module.params['checkpoint'] is not None and module.params['state'] != 'rolled_back':
        module.fail_json(msg='checkpoint is only used with state: rolled_back', rc=None, changed=False)
    executable = find_executable(module)
    argv = build_argv(module, executable)
    mode_before = current_mode(module, executable) if module._diff else None
    rc, data, out, err = run_json(module, argv)
    result = {'cmd': argv, 'rc': rc, 'locked': rc == EXIT_BUSY, 'checkpoint': None, 'notes': [],
              'restart_required': False}

    if data is None:
        module.fail_json(msg='fipsboot gave no JSON answer (exit %s): %s' % (rc, (err or out).strip()),
                         stdout=out, stderr=err, changed=False, **result)
    if rc != 0:
        msg = data.get('error') or 'fipsboot failed (exit %s)' % rc
        fix = data.get('fix')
        changed = False
        if rc == EXIT_CONFLICT:
            msg += ' To overwrite the hand edit, set force: true (the edited copy is kept in the journal).'
            fix = fix or 'look at the edited file, then set force: true'
        elif rc == EXIT_FOLLOW_UP:
            changed = True  # the change is made; only what must follow it failed
            result['checkpoint'] = data.get('checkpoint')
            result['restart_required'] = True
        elif rc == EXIT_BUSY:
            msg += ' (another fipsboot holds the lock: retry the task)'
        module.fail_json(msg=msg, fix=fix, changed=changed, stdout=out, stderr=err, **result)

    if 'changed' not in data:
        module.fail_json(msg='this fipsboot does not report "changed" in its JSON; upgrade fipsboot on the host',
                         changed=False, stdout=out, **result)
    if module.check_mode and data.get('edited_since') and not module.params['force']:
        # The real run would stop on these (fipsboot's exit 3): check mode says so, not "changed".
        failure = dict(result)
        failure['rc'] = EXIT_CONFLICT
        module.fail_json(msg='edited by hand since fipsboot wrote them: %s. To overwrite the hand '
                             'edit, set force: true (the edited copy is kept in the journal).'
                             % '; '.join(data['edited_since']),
                         fix='look at the edited file, then set force: true', changed=False,
                         stdout=out, stderr=err, **failure)
    changed = bool(data['changed'])
    result.update(
        changed=changed,
        checkpoint=data.get('checkpoint'),
        notes=data.get('notes') or [],
        status=data.get('status'),
        restart_required=changed,
    )
    if 'plan' in data:
        result['plan'] = data['plan']
    if module.params['state'] == 'rolled_back':
        result['undone'] = data.get('would_undo') if module.check_mode else data.get('undone')
        result['mode'] = data.get('mode')
    if module._diff:
        result['diff'] = diff_of(data, mode_before, module.params['state'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
