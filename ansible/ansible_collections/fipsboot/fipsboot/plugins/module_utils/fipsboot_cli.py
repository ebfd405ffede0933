# -*- coding: utf-8 -*-
# Copyright: fipsboot contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What both modules share: their common options (documented in doc_fragments/fipsboot.py), and
running the host's own fipsboot with --json and reading its answer."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os


def argument_spec(**more):
    """The module's argument spec: the options every module has (profile, executable), and its own."""
    spec = dict(
        profile=dict(type='path', required=True),
        executable=dict(type='str', default='fipsboot'),
    )
    spec.update(more)
    return spec


def find_executable(module):
    """The fipsboot to run: an absolute path as given, else looked up on the host's PATH."""
    executable = module.params['executable']
    if os.path.isabs(executable):
        if not os.access(executable, os.X_OK):
            module.fail_json(msg='fipsboot executable %s is missing or not executable' % executable,
                             fix='install fipsboot on the host or set executable: to its path',
                             rc=None, changed=False)
        return executable
    found = module.get_bin_path(executable)
    if not found:
        module.fail_json(msg='fipsboot executable %r not found on the host' % executable,
                         fix='install fipsboot on the host (role fipsboot.fipsboot.fips) '
                             'or set executable: to its path', rc=None, changed=False)
    return found


def run_json(module, argv):
    """(rc, parsed JSON or None, stdout, stderr)."""
    rc, out, err = module.run_command(argv, environ_update={'LANG': 'C.UTF-8'})
    try:
        data = json.loads(out)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = None
    return rc, data, out, err
