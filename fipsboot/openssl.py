"""The only place that runs the installation's openssl: fipsinstall, list -providers, probes.

Every openssl runs with LANG=C and LC_ALL=C (set here, the one place), so its output parses the
same on every host; the exit code of `openssl list` proves nothing (it is 0 when
the FIPS provider silently failed to load), so callers judge by what is parsed.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from . import processes, providers
from .environ import with_values
from .errors import OpenSSLError
from .layout import Layout
from .processenv import OPENSSL_VARS
from .processes import Result

TIMEOUT = 120  # fipsinstall's self-tests take well under a second; Wine's first start does not
SELF_TEST_RE = re.compile(r"^\s*(?P<name>.+?)\s*:\s*\((?P<type>[^)]*)\)\s*:\s*(?P<result>.+?)\s*$")


@dataclass
class FipsinstallReport:
    passed: bool
    self_tests: List[Dict[str, str]] = field(default_factory=list)
    raw: str = ""

    @property
    def failed_tests(self) -> List[str]:
        # Lines of nested self-tests can interleave ("RSA : (KAT_Signature) : RNG : (...) :
        # Pass"): only a result that says it failed names a failed test.
        return [f"{t['name']} ({t['type']}): {t['result']}" for t in self.self_tests
                if "fail" in t["result"].lower()]


class OpenSSL:
    """The installation's openssl binary, run through the profile's launcher (e.g. wine)."""

    def __init__(self, layout: Layout, base_env: Optional[Mapping[str, str]] = None):
        self.layout = layout
        self.base_env = dict(os.environ if base_env is None else base_env)

    def env(self, extra: Mapping[str, Optional[str]]) -> Dict[str, str]:
        names = OPENSSL_VARS
        if self.layout.windows:  # names ignore case there: `Openssl_Conf` is OPENSSL_CONF
            names = {k for k in self.base_env if k.upper() in OPENSSL_VARS}
        env = {k: v for k, v in self.base_env.items() if k not in names}
        if self.layout.profile.launcher:
            env.setdefault("WINEDEBUG", "-all")
        return with_values(env, extra)

    def run(self, args: Sequence[str], env: Mapping[str, str], stdin: bytes = b"") -> Result:
        return self.run_together([(args, stdin)], env)[0]

    def refusal(self, env: Mapping[str, str]) -> Optional[str]:
        """Why root must not start this openssl with `env`, or None. Every command that starts
        it (install, verify, run, reset, report, tls-check, status) comes through here: no
        process starts when another account could replace the code it runs (the installation's
        files, or any path the environment names), or when the environment points at the
        installation's openssl.cnf and that file fails its check."""
        from .trust import env_problems, trust_problems

        problems = trust_problems(self.layout)
        if not self.layout.windows:
            problems += env_problems(env)
        if problems:
            return "; ".join(dict.fromkeys(problems))
        conf = env.get("OPENSSL_CONF")
        if conf is not None and conf == self.layout.openssl_cnf:
            from .configchecks import check_openssl_cnf

            check = check_openssl_cnf(self.layout)
            if check.fails():
                return f"{self.layout.openssl_cnf} fails its check: {check.reason}"
        return None

    def _refuse(self, env: Mapping[str, str]) -> None:
        why = self.refusal(env)
        if why:
            raise OpenSSLError(f"not started: root runs no openssl while {why}",
                               "chown root and chmod go-w each path named (folders on the way: "
                               "chmod go-w), fix openssl.cnf with `fipsboot install --profile "
                               "PROFILE`, then run the command again")

    def run_together(self, jobs: Sequence[Tuple[Sequence[str], bytes]],
                     env: Mapping[str, str]) -> List[Result]:
        """Run several openssl commands at once (in the start-up path they overlap)."""
        self._refuse(env)
        program = [*self.layout.profile.launcher, str(self.layout.host(self.layout.openssl))]
        results = processes.run_together([([*program, *args], stdin) for args, stdin in jobs],
                                          parsable(env), TIMEOUT, OpenSSLError)
        if self.layout.windows:  # a missing DLL: say so, not "failed (53)"
            from .platforms.winstart import check_started

            check_started(self.layout, results)
        return results

    def run_bounded(self, args: Sequence[str], env: Mapping[str, str], timeout: float) -> Result:
        """One command with its own time limit (a TLS handshake with a peer that never answers)."""
        self._refuse(env)
        program = [*self.layout.profile.launcher, str(self.layout.host(self.layout.openssl))]
        return processes.run_together([([*program, *args], b"")], parsable(env), timeout,
                                      OpenSSLError)[0]

    # --- the questions fipsboot asks openssl ---------------------------------------------

    def version(self, env: Mapping[str, str]) -> str:
        r = self.run(["version"], env)
        m = re.search(r"OpenSSL (\d+\.\d+\.\d+\S*)", r.stdout)
        if r.returncode or not m:
            raise OpenSSLError(f"`openssl version` failed ({r.returncode}):\n{r.output}")
        return m.group(1)

    def fipsinstall(self, module: str, out: str, options: Sequence[str],
                    env: Mapping[str, str]) -> FipsinstallReport:
        r = self.run(["fipsinstall", "-module", module, "-out", out, *options], env)
        tests = []
        for line in r.stderr.splitlines():
            m = SELF_TEST_RE.match(line)
            if m:
                tests.append(m.groupdict())
        passed = r.returncode == 0 and "INSTALL PASSED" in r.stderr
        return FipsinstallReport(passed=passed, self_tests=tests, raw=r.output)

    def probe(self, env: Mapping[str, str], sha256: bool = True) -> List[Optional[Result]]:
        """`list -providers`, `dgst -md5` and (unless told not to) `dgst -sha256`, together."""
        data = b"fipsboot probe\n"
        jobs = [(["list", "-providers"], b""), (["dgst", "-md5"], data)]
        if sha256:
            jobs.append((["dgst", "-sha256"], data))
        results: List[Optional[Result]] = list(self.run_together(jobs, env))
        return results + [None] * (3 - len(results))

    def list_providers(self, env: Mapping[str, str]) -> Dict[str, providers.Provider]:
        return parse_listing(self.run(["list", "-providers"], env))


def parsable(env: Mapping[str, str]) -> Dict[str, str]:
    """`env` with the C locale: the lines fipsboot parses are OpenSSL's untranslated ones."""
    return {**env, "LANG": "C", "LC_ALL": "C"}


def parse_listing(r: Result) -> Dict[str, providers.Provider]:
    if r.returncode:
        raise OpenSSLError(f"`openssl list -providers` failed ({r.returncode}):\n{r.output}")
    return providers.parse(r.stdout)
