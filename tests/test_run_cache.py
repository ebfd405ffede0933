"""`fipsboot run`'s verdict cache: the warm path starts no openssl, and everything the verdict
depends on (openssl, config bytes, libcrypto, OpenSSL variables) keys the cache; a damaged
cache is a miss, and a service account that can't write the state folder still runs.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from runhelpers import (
    TIMEOUT,
    account_switch,
    cache_file,
    caller_env,
    fips_loads,
    installed,
    installed_where_others_can_read,
    marker_server,
    run_wrapped,
    wrapper_argv,
)

from fipsboot.errors import EXIT_REFUSED

# --- cold and warm ----------------------------------------------------------------------

IN_ACCESS, IN_OPEN = 0x1, 0x20


class FileWatch:
    """inotify on one file: every open or read of it, exec included, is an event; a stat
    (what a cache hit does to the openssl binary) is not."""

    def __init__(self, path: Path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            pytest.skip(f"inotify is not available: errno {ctypes.get_errno()}")
        if self.libc.inotify_add_watch(self.fd, os.fsencode(path), IN_ACCESS | IN_OPEN) < 0:
            os.close(self.fd)
            pytest.skip(f"inotify_add_watch failed: errno {ctypes.get_errno()}")

    def events(self) -> List[int]:
        masks, data = [], b""
        while True:
            try:
                data += os.read(self.fd, 65536)
            except BlockingIOError:
                break
        i = 0
        while i < len(data):
            _, mask, _, length = struct.unpack_from("iIII", data, i)
            masks.append(mask)
            i += 16 + length
        return masks

    def close(self) -> None:
        os.close(self.fd)


def test_warm_run_starts_no_openssl(installation):
    inst = installation
    profile = installed(inst)
    watch = FileWatch(inst.openssl)
    try:
        assert not cache_file(inst).exists()
        watch.events()  # drop anything before
        assert run_wrapped(profile, "true").returncode == 0  # cold: the probes run openssl
        assert any(m & IN_OPEN for m in watch.events()), "the cold run did not start openssl"
        assert cache_file(inst).exists()
        for _ in range(2):
            r = run_wrapped(profile, "sh", "-c", "exit 5")
            assert r.returncode == 5, r.stderr
            assert watch.events() == [], "a warm run opened the openssl binary"
        cache_file(inst).unlink()  # and cold again once the verdict is gone
        assert run_wrapped(profile, "true").returncode == 0
        assert any(m & IN_OPEN for m in watch.events())
    finally:
        watch.close()


def strace_execs(trace: Path) -> List[str]:
    return re.findall(r'execve\("((?:[^"\\]|\\.)*)"', trace.read_text())


def test_warm_run_execs_only_the_server_per_strace(installation30, tmp_path):
    """Second witness, process-level: every execve of the whole tree is traced."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    probe = subprocess.run([strace, "-f", "-qq", "-e", "trace=execve", "-o", os.devnull, "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"strace can't trace here: {probe.stderr.decode(errors='replace')[:200]}")
    inst = installation30
    profile = installed(inst)
    marker = tmp_path / "started"

    def traced(name: str) -> List[str]:
        trace = tmp_path / name
        p = subprocess.run([strace, "-f", "-qq", "-s", "4096", "-e", "trace=execve", "-o",
                            str(trace), *wrapper_argv(profile, *marker_server(marker))],
                           capture_output=True, text=True, timeout=TIMEOUT)
        assert p.returncode == 0, p.stderr
        assert marker.exists()
        marker.unlink()
        return strace_execs(trace)

    cold = traced("cold")
    assert cold.count(str(inst.openssl)) >= 2  # list -providers and the digest probes
    warm = traced("warm")
    assert str(inst.openssl) not in warm
    assert not [p for p in warm if os.path.basename(p) == "openssl"]
    # The wrapper itself, then the server (sh, found on PATH), then what sh runs: nothing else.
    assert warm[0] == sys.executable
    assert {os.path.basename(p) for p in warm[1:]} <= {"sh", "touch"}


def test_changed_openssl_invalidates_the_cache_and_a_broken_one_is_refused(installation30,
                                                                           tmp_path):
    inst = installation30
    profile = installed(inst)
    marker = tmp_path / "started"
    assert run_wrapped(profile, "true").returncode == 0
    assert cache_file(inst).exists()

    original = tmp_path / "openssl.orig"
    shutil.copy2(inst.openssl, original)
    broken = inst.openssl.with_name(".openssl.new")
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    os.replace(broken, inst.openssl)  # another file: another identity

    r = run_wrapped(profile, *marker_server(marker))
    assert r.returncode == EXIT_REFUSED, r.stderr
    assert not marker.exists()
    assert "FIPS check 'providers' failed" in r.stderr and "fipsboot install" in r.stderr
    assert not cache_file(inst).exists()  # a failed verdict is not kept

    restored = inst.openssl.with_name(".openssl.new")
    shutil.copy2(original, restored)
    os.replace(restored, inst.openssl)
    r = run_wrapped(profile, *marker_server(marker))
    assert r.returncode == 0, r.stderr
    assert marker.exists() and cache_file(inst).exists()


@pytest.mark.parametrize("name", ["openssl.cnf", "fipsmodule.cnf"])
def test_changed_config_bytes_are_a_cache_miss(installation30, name):
    """Any change to either config's bytes (here a harmless comment) means the probes run
    again; then the new verdict is cached."""
    inst = installation30
    profile = installed(inst)
    assert run_wrapped(profile, "true").returncode == 0
    watch = FileWatch(inst.openssl)
    try:
        assert run_wrapped(profile, "true").returncode == 0
        assert watch.events() == []  # warm
        with open(inst.config_dir / name, "a") as f:
            f.write("# touched\n")
        assert run_wrapped(profile, "true").returncode == 0
        assert any(m & IN_OPEN for m in watch.events()), "a changed config was a cache hit"
        assert run_wrapped(profile, "true").returncode == 0
        assert watch.events() == []
    finally:
        watch.close()


def test_config_broken_after_a_cached_verdict_is_refused(installation30, tmp_path):
    """A 3.0 provider checks install-mac against install-status: a wrong one fails its load.
    The cached verdict was for the old bytes, so the launch is refused."""
    inst = installation30
    profile = installed(inst)
    assert run_wrapped(profile, "true").returncode == 0
    cnf = inst.config_dir / "fipsmodule.cnf"
    text = cnf.read_text()
    if "install-mac" not in text:
        pytest.skip("this fipsmodule.cnf has no install-mac")
    cnf.write_text(re.sub(r"(install-mac\s*=\s*)([0-9A-Fa-f]{2})",
                          lambda m: m.group(1) + ("00" if m.group(2) != "00" else "11"), text))
    assert not fips_loads(inst)
    marker = tmp_path / "started"
    r = run_wrapped(profile, *marker_server(marker))
    assert r.returncode == EXIT_REFUSED, r.stderr
    assert not marker.exists()
    assert "FIPS check '" in r.stderr and "fipsboot install" in r.stderr
    cnf.write_text(text)
    assert run_wrapped(profile, "true").returncode == 0


def test_changed_libcrypto_invalidates_the_cache(installation30, tmp_path):
    inst = installation30
    profile = installed(inst)
    assert run_wrapped(profile, "true").returncode == 0
    assert cache_file(inst).exists()
    lib = inst.lib64 / "libcrypto.so.3"
    broken = lib.with_name(".libcrypto.new")
    broken.write_bytes(b"not a library\n" * 64)
    os.replace(broken, lib)
    marker = tmp_path / "started"
    r = run_wrapped(profile, *marker_server(marker))
    assert r.returncode == EXIT_REFUSED, r.stderr
    assert "FIPS check 'providers' failed" in r.stderr
    assert not marker.exists() and not cache_file(inst).exists()


def test_a_changed_openssl_variable_is_a_cache_miss(installation30):
    """The verdict holds for one environment: another value of a variable that OpenSSL or the
    loader reads means the probes run again; the same value again is a hit."""
    inst = installation30
    profile = installed(inst)
    assert run_wrapped(profile, "true").returncode == 0
    watch = FileWatch(inst.openssl)
    try:
        watch.events()
        env = caller_env(SSL_CERT_DIR=str(inst.root / "no certs"))
        assert run_wrapped(profile, "true", env=env).returncode == 0
        assert any(m & IN_OPEN for m in watch.events())
        assert run_wrapped(profile, "true", env=env).returncode == 0
        assert watch.events() == []
    finally:
        watch.close()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to start the wrapper as another account")
def test_service_account_that_cannot_write_the_state_folder(testbed):
    """The server's own account runs the wrapper; root ran `fipsboot install`. A verdict that
    can't be cached is no reason to refuse a verified server, and an unreadable journal is
    an error message, not a traceback."""
    with installed_where_others_can_read(testbed, "fipsboot-run-") as (work, _, profile, env):
        journal = next((work / "state").glob("*/journal.json"))
        journal.chmod(0o644)  # the account may read the mode, not write the folder
        as_nobody = account_switch(65534, 65534)

        def run_as_nobody():
            return subprocess.run(as_nobody(wrapper_argv(profile, "sh", "-c", "exit 7")),
                                  env=env, capture_output=True, text=True, timeout=TIMEOUT)

        r = run_as_nobody()
        assert (r.returncode, r.stderr) == (7, ""), r.stderr
        journal.chmod(0o600)
        r = run_as_nobody()
        assert r.returncode not in (0, 7)
        assert "Traceback" not in r.stderr and "journal" in r.stderr, r.stderr


@pytest.mark.parametrize("content", ["garbage", "", "{}", '{"key": 5}', "[]", "null", '"x"'])
def test_damaged_cache_is_a_miss(installation30, tmp_path, content):
    """Whatever the cache file holds, it is never a reason to fail: a miss, then rewritten."""
    inst = installation30
    profile = installed(inst)
    assert run_wrapped(profile, "true").returncode == 0
    good = cache_file(inst).read_text()
    cache_file(inst).write_text(content)
    marker = tmp_path / "started"
    r = run_wrapped(profile, *marker_server(marker))
    assert r.returncode == 0, r.stderr
    assert marker.exists()
    assert cache_file(inst).read_text() == good
