#!/usr/bin/env bash
# `ansible-test sanity` on the Ansible collection, working offline: ansible-test bootstraps pip
# into each venv it makes from a downloaded get-pip script. As the maintainers suggest
# (ansible/ansible#77304) its cache is seeded, here with a stand-in that runs ensurepip and then
# pip itself (so the machine's pip configuration, /etc/pip.conf, still applies to the packages).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
cache=~/.ansible/test/cache
mkdir -p "$cache"
# The pip version ansible-test bootstraps (its own table, read through its code).
versions=$($PY -c "
from ansible_test._internal.python_requirements import get_venv_packages
class Python: version = '%d.%d' % __import__('sys').version_info[:2]
print(get_venv_packages(Python())['pip'])")
for v in $versions; do
  stand_in="$cache/get_pip_${v//./_}.py"
  if [ ! -s "$stand_in" ] || ! grep -q "fipsboot stand-in" "$stand_in"; then
    cat > "$stand_in" <<'PY'
# fipsboot stand-in for get-pip.py (ansible/ansible#77304): no download.
import os
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
env = dict(os.environ)
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], env=env)
# ensurepip runs in its own process: the PIP_CONFIG_FILE=/dev/null it sets there does not
# reach the pip below, which reads the machine's /etc/pip.conf as usual.
subprocess.check_call([sys.executable, "-m", "pip", "install", *args], env=env)
PY
  fi
done
pyver=$($PY -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cd ansible/ansible_collections/fipsboot/fipsboot
exec ../../../../.venv/bin/ansible-test sanity --python "$pyver" --venv --color no "$@"
