# -*- coding: utf-8 -*-
# Copyright: fipsboot contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The options every module of this collection has: which installation (its profile) and which
fipsboot on the host runs it. Their argument spec is
module_utils.fipsboot_cli.argument_spec()."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  profile:
    description: Path of the installation's fipsboot profile (TOML) on the managed host.
    type: path
    required: true
  executable:
    description: The fipsboot command on the managed host (a name looked up on PATH or an absolute path).
    type: str
    default: fipsboot
'''
