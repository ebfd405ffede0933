"""`fipsboot status` on a Windows server under Wine: the test bed's openssl.exe s_server,
launched through `fipsboot run` with the Windows backend, is a Linux process whose maps show
fips.dll's host path. Kept short: the Wine prefix is shared."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest
from helpers import WINE_PROFILE, fipsboot
from loopback import free_port
from runhelpers import caller_env, serving, wrapper_argv
from statushelpers import status

pytestmark = pytest.mark.wine


def test_windows_s_server_through_run_has_fips_dll_mapped(wine_install, tmp_path, state_dir):
    w = wine_install
    profile = tmp_path / "windows.toml"
    profile.write_text(WINE_PROFILE)
    fipsboot("install", "--profile", str(profile), check=0)
    # Key and certificate where openssl.exe finds them: C:\GCTI.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSSL")}
    subprocess.run([shutil.which("openssl") or "openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", os.path.join(w["gcti"], "key.pem"),
                    "-out", os.path.join(w["gcti"], "cert.pem")],
                   check=True, capture_output=True, env=env, timeout=60)
    port = free_port()
    server = [w["wine"], w["openssl"], "s_server", "-accept", f"127.0.0.1:{port}",
              "-cert", r"C:\GCTI\cert.pem", "-key", r"C:\GCTI\key.pem", "-www"]
    with serving(wrapper_argv(profile, *server), caller_env(), tmp_path / "logs") as wrapper:
        code, out = status(profile)
        assert code == 0, out
        assert len(out["processes"]) == 1, out["processes"]
        proc = out["processes"][0]
        assert proc["pid"] != wrapper.pid  # the wrapper waits; the server is its child
        assert proc["found_by"] == ["run-record"] and proc["ok"]
        assert proc["fips_module"]["state"] == "installation"
        assert [os.path.basename(p).lower() for p in proc["fips_module"]["paths"]] == ["fips.dll"]
        assert any(os.path.basename(p).lower().startswith("libcrypto") for p in proc["libraries"])
        wrapper.send_signal(signal.SIGTERM)
        wrapper.wait(60)
