"""The verdict: every check with a name, a result and a reason a person can act on.

Fast checks read files and recompute the module MAC in-process; live checks start the
installation's openssl with the launch environment and judge by what it prints, never by its
exit code alone (`openssl list -providers` exits 0 when the FIPS provider failed to load).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterable, List, Mapping, Optional

from . import environ, fipsmodule, fsutil, processenv
from .checks import Check, failed, passed
from .errors import FipsbootError
from .layout import Layout

if TYPE_CHECKING:  # imported where used: the wrapper's warm path starts no process
    from .openssl import OpenSSL

REINSTALL = "run `fipsboot install --profile PROFILE` again"


# --- fast checks: no process ------------------------------------------------------------

def check_files(layout: Layout) -> Check:
    missing = [p for p in (layout.module, layout.openssl, layout.openssl_cnf, layout.fipsmodule_cnf)
               if not layout.host(p).is_file()]
    if missing:
        return failed("files", "missing: " + ", ".join(missing), REINSTALL)
    return passed("files", "module, openssl, openssl.cnf and fipsmodule.cnf exist")


def permission_problems(layout: Layout) -> List[str]:
    paths = []
    for native in (layout.module, layout.openssl, layout.openssl_cnf, layout.fipsmodule_cnf):
        host = layout.host(native)
        paths += [host, host.parent]
    for lib_dir in layout.lib_dirs:  # its libcrypto is the code the server loads
        host = layout.host(lib_dir)
        paths += [host, *sorted(host.glob("lib*.so*"))]
    problems = []
    for p in dict.fromkeys(paths):
        if p.exists():
            why = fsutil.loose_permissions(p)
            if why:
                problems.append(why)
    return problems


def check_permissions(layout: Layout) -> Check:
    from .trust import trust_problems

    problems = list(dict.fromkeys(permission_problems(layout) + trust_problems(layout)))
    if problems:
        return failed("permissions", "; ".join(problems) + ": whoever can write there chooses "
                      "the code and configuration loaded into the server",
                      "chown root and chmod go-w each path named (folders on the way: chmod o-w)")
    return passed("permissions", "no file or folder is writable by group or others or owned "
                  "by another account")


def read_fipsmodule(layout: Layout) -> fipsmodule.FipsModuleCnf:
    return fipsmodule.parse(layout.host(layout.fipsmodule_cnf).read_text(encoding="utf-8"))


def check_fipsmodule_cnf(layout: Layout) -> Check:
    try:
        cnf = read_fipsmodule(layout)
    except (OSError, ValueError) as e:
        return failed("fipsmodule.cnf", f"{layout.fipsmodule_cnf}: {e}", REINSTALL)
    problems = fipsmodule.key_problems(cnf)
    if problems:
        return failed("fipsmodule.cnf", "; ".join(problems), REINSTALL)
    return passed("fipsmodule.cnf", f"[{cnf.section}] has module-mac and valid values",
                  keys=sorted(cnf.values))


def check_module_mac(layout: Layout) -> Check:
    try:
        recorded = read_fipsmodule(layout).module_mac
        actual = fipsmodule.module_mac(layout.host(layout.module), layout.profile.fips_key)
    except (OSError, ValueError) as e:
        return failed("module-mac", str(e), REINSTALL)
    if not recorded or fipsmodule.normalise_mac(recorded) != fipsmodule.normalise_mac(actual):
        return failed("module-mac",
                      f"the module {layout.module} no longer matches the module-mac in "
                      f"{layout.fipsmodule_cnf}: it changed since fipsinstall ran (an upgrade, a "
                      "copy from another host, or corruption), so the provider will refuse to load",
                      REINSTALL, recorded=recorded, actual=actual)
    return passed("module-mac", "the module's HMAC matches fipsmodule.cnf", mac=actual)


ALLOWED_PROVIDERS = ("fips", "base")
# The only shape fipsboot's openssl.cnf may have (names exact: OpenSSL matches module names by
# prefix and drops what precedes a `.` in provider keys, so `prov`, `p.x`, `x.fips` or
# `x.module` would be aliases fipsboot never judged).
DEFAULT_KEYS = ("openssl_conf", "config_diagnostics")
INIT_KEYS = ("providers", "alg_section")
LOADERS = ("module", "identity")  # make OpenSSL load another file (or name) as a provider


def read_openssl_cnf(layout: Layout):
    """openssl.cnf with the one file it may include, this installation's fipsmodule.cnf."""
    from . import cnfreader

    return cnfreader.read(layout.host(layout.openssl_cnf), layout.host, layout.windows,
                          allowed_include=layout.config_path(layout.fipsmodule_cnf))


def _exact_keys(where: str, section, allowed) -> List[str]:
    extra, missing = [k for k in section if k not in allowed], [k for k in allowed
                                                                 if k not in section]
    problems = []
    if extra:
        problems.append(f"{where} has {', '.join(f'`{k}`' for k in extra)}: only "
                        f"{' and '.join(allowed)} may be there (any other key is a module, "
                        "provider or setting fipsboot did not write)")
    if missing:
        problems.append(f"{where} lacks {', '.join(missing)}")
    return problems


def check_openssl_cnf(layout: Layout) -> Check:
    """Judge the configuration OpenSSL really applies, by OpenSSL's own reading rules: it may
    include nothing but this installation's fipsmodule.cnf; [default] holds only openssl_conf
    and config_diagnostics = 1; the section openssl_conf names holds exactly `providers` and
    `alg_section`; the providers section exactly fips and base; fips's section is
    fipsmodule.cnf's [fips_sect], every key of it from that file; base's section only
    `activate = 1`; the algorithm section only `default_properties = fips=yes`; and no
    `module`/`identity` key in any spelling anywhere (OpenSSL then loads fips.so from
    OPENSSL_MODULES, the installation's fips folder, and module-mac ties that file to
    fipsmodule.cnf)."""
    from .cnfreader import skip_dot

    try:
        cnf = read_openssl_cnf(layout)
    except (OSError, FipsbootError) as e:
        return failed("openssl.cnf", str(e), REINSTALL)
    files = [[p, d] for p, d in cnf.files]
    problems = list(cnf.problems)
    if cnf.get("default", "config_diagnostics") != "1":
        problems.append("config_diagnostics = 1 is missing: a broken config would silently fall "
                        "back to the non-FIPS default provider")
    want = layout.config_path(layout.fipsmodule_cnf)
    if want not in cnf.includes and not any("backslash" in p for p in problems):
        problems.append(f".include of {want} not found (found: {cnf.includes or 'none'})")
    problems += _exact_keys("[default] (keys before the first section)",
                            cnf.section("default"), DEFAULT_KEYS)
    for name, section in cnf.sections.items():
        for key, value in section.items():
            if skip_dot(key) in LOADERS or key.rsplit(".", 1)[-1] in LOADERS:
                problems.append(f"[{name}] has `{key} = {value.text}` ({value.source}): "
                                "it could load another file as a provider; only the "
                                "installation's own fips module may be loaded")
    init_name = cnf.get("default", "openssl_conf")
    init = cnf.section(init_name)
    if not init:
        problems.append(f"openssl_conf names no section with settings (openssl_conf = "
                        f"{init_name!r}): OpenSSL would load no provider configuration")
    else:
        problems += _exact_keys(f"[{init_name}]", init, INIT_KEYS)
    providers_name = init["providers"].text if "providers" in init else None
    providers = cnf.section(providers_name)
    extra = [p for p in providers if p not in ALLOWED_PROVIDERS]
    if extra:
        problems.append(f"providers other than fips and base are configured ({', '.join(extra)}): "
                        "their algorithms are not FIPS-approved")
    for name in ALLOWED_PROVIDERS:
        if name not in providers:
            problems.append(f"the {name} provider is not listed in the providers section")
    own_section = "fips_sect"  # the section fipsinstall writes and fipsmodule.cnf is read for
    if "fips" in providers and providers["fips"].text != own_section:
        problems.append(f"the fips provider's section is [{providers['fips'].text}], not "
                        f"fipsmodule.cnf's [{own_section}]")
    fips_sect = cnf.sections.get(own_section, {})
    own = str(layout.host(layout.fipsmodule_cnf))
    foreign = sorted({v.source for v in fips_sect.values() if v.source != own})
    if foreign:
        problems.append(f"the fips provider's section [{own_section}] gets keys from "
                        f"{', '.join(foreign)}, not only from fipsmodule.cnf")
    base = cnf.section(providers["base"].text) if "base" in providers else {}
    if "base" in providers and (base.get("activate") is None or base["activate"].text != "1"):
        problems.append("the base provider is not activated (activate = 1): without it PEM "
                        "keys and certificates can't be decoded")
    elif "base" in providers:
        problems += _exact_keys(f"[{providers['base'].text}] (the base provider's section)",
                                base, ("activate",))
    algs_name = init["alg_section"].text if "alg_section" in init else None
    algs = cnf.section(algs_name)
    props = algs["default_properties"].text if "default_properties" in algs else ""
    if props.replace(" ", "") != "fips=yes":
        problems.append("default_properties = fips=yes is missing")
    elif algs_name:
        problems += _exact_keys(f"[{algs_name}]", algs, ("default_properties",))
    if problems:
        return failed("openssl.cnf", "; ".join(dict.fromkeys(problems)), REINSTALL, files=files)
    return passed("openssl.cnf", "diagnostics on, only fipsmodule.cnf included, fips and base "
                  "activated, fips=yes by default, no other provider, module or setting",
                  files=files)


def check_targets(layout: Layout, targets: Iterable, mode: str, managed: Mapping[str, str],
                  previously_written: Iterable[str] = ()) -> Check:
    drift: List[str] = []
    for target in targets:
        # What the service or shell really ends up with: every drop-in, every line.
        current = target.effective()
        drift += target.effective_problems()
        want = environ.values(layout, mode, current, previously_written)
        for key, value in want.items():
            if current.get(key) != value:
                drift.append(f"{target.spec}: {key} is {current.get(key)!r}, expected {value!r}")
        change = target.change(want)
        recorded = managed.get(change.key)
        if recorded is not None and change.managed_now != recorded and not drift:
            drift.append(f"{target.spec}: fipsboot's part was edited by hand since it was written")
    if drift:
        return failed("targets", "; ".join(drift), REINSTALL.replace("install", "install --force")
                      + " to rewrite the targets (the edited copies are kept in the journal)")
    return passed("targets", "every target holds the values fipsboot wrote")


# --- live checks: start the installation's openssl --------------------------------------

def live_checks(openssl: OpenSSL, env: Mapping[str, str], label: str = "",
                sha256: bool = True) -> List[Check]:
    """`providers` and `negative-probe` from openssl runs started together. The wrapper's
    start-up skips the SHA-256 run: the active fips provider it proves ran its own SHA-2
    self-tests, and on 2 cores a third self-testing process is what the start waits on."""
    try:
        listing, md5, sha = openssl.probe(env, sha256)
    except FipsbootError as e:
        return [failed("providers", str(e), e.fix or REINSTALL),
                failed("negative-probe", str(e), e.fix or REINSTALL)]
    return [providers_check(listing, label), negative_probe_check(md5, sha)]


def providers_check(listing, label: str = "") -> Check:
    where = f" (environment of {label})" if label else ""
    from .openssl import parse_listing

    try:
        found = parse_listing(listing)
    except FipsbootError as e:
        return failed("providers", f"{e}{where}", e.fix or REINSTALL)
    details = {name: p.fields for name, p in found.items()}
    fips, base = found.get("fips"), found.get("base")
    version = base.version if base else None
    if "default" in found:
        return failed("providers", f"the non-FIPS default provider is loaded{where}: the FIPS "
                      "configuration was not applied (a missing include with config_diagnostics "
                      "= 0 falls back silently)", REINSTALL, providers=details)
    if fips is None:
        return failed("providers", f"the fips provider is not loaded{where} (it failed its "
                      "integrity check, its module-mac is stale, a fipsmodule.cnf value is bad, "
                      "or OPENSSL_MODULES does not name its folder); `openssl list -provider "
                      "fips -providers` shows the reason", REINSTALL, providers=details)
    if "FIPS" not in fips.fields.get("name", "").upper():
        return failed("providers", f"the provider loaded as fips is {fips.fields.get('name')!r}"
                      f"{where}, not a FIPS provider", REINSTALL, providers=details)
    if not fips.active:
        return failed("providers", f"the fips provider is {fips.fields.get('status')}{where}",
                      REINSTALL, providers=details)
    if base is None or not base.active:
        return failed("providers", f"the base provider is not active{where}: PEM keys "
                      "can't be decoded", REINSTALL, providers=details)
    return passed("providers", f"fips {fips.version} active, base active (libcrypto {version})"
                  + where, fips_version=fips.version, libcrypto_version=version,
                  providers=details)


def negative_probe_check(md5, sha) -> Check:
    if md5.returncode == 0:
        return failed("negative-probe", "MD5 was allowed: the process is not restricted to "
                      "FIPS-approved algorithms", REINSTALL, md5=md5.output)
    if sha is None:
        return passed("negative-probe", "MD5 refused")
    if sha.returncode != 0:
        return failed("negative-probe", "SHA-256 failed: " + sha.output, REINSTALL)
    return passed("negative-probe", "MD5 refused, SHA-256 works")


def check_nonfips_providers(openssl: OpenSSL, env: Mapping[str, str]) -> Check:
    try:
        found = openssl.list_providers(env)
    except FipsbootError as e:
        return failed("providers", str(e), "fipsboot reset --profile PROFILE")
    if "fips" in found:
        return failed("providers", "the fips provider is loaded in non-FIPS mode",
                      "fipsboot reset --profile PROFILE")
    if "default" not in found:
        return failed("providers", "the default provider is not loaded in non-FIPS mode "
                      f"(found: {', '.join(found) or 'none'})", "fipsboot reset --profile PROFILE")
    return passed("providers", "non-FIPS: default provider active, fips not loaded")


def check_nonfips_environment(layout: Layout, targets: Iterable, env: Mapping[str, str]) -> Check:
    problems = []
    ld = (env.get("LD_LIBRARY_PATH") or "").split(":")
    if not layout.windows:
        if layout.security_pack_dir and layout.security_pack_dir not in ld:
            problems.append(f"LD_LIBRARY_PATH lacks the Security Pack folder {layout.security_pack_dir}")
        if layout.module_dir in ld:
            problems.append(f"LD_LIBRARY_PATH still names the fips folder {layout.module_dir}")
    for target in targets:
        current = target.read()
        for key in ("OPENSSL_CONF", "OPENSSL_MODULES"):
            if current.get(key) is not None:
                problems.append(f"{target.spec} defines {key}")
        tld = (current.get("LD_LIBRARY_PATH") or "").split(":")
        if not layout.windows and layout.module_dir in tld:
            problems.append(f"{target.spec}: LD_LIBRARY_PATH names the fips folder")
    if problems:
        return failed("environment", "; ".join(problems), "fipsboot reset --profile PROFILE")
    return passed("environment", "no OPENSSL_CONF/OPENSSL_MODULES; Security Pack on the library path")


# --- the verdict ------------------------------------------------------------------------

def fast_checks(layout: Layout) -> List[Check]:
    checks = [check_files(layout)]
    if checks[0].ok:
        checks += [check_permissions(layout), check_fipsmodule_cnf(layout),
                   check_module_mac(layout), check_openssl_cnf(layout)]
    return checks


def launch_environment(layout: Layout, mode: str, base: Optional[Mapping[str, str]] = None,
                       previously_written: Iterable[str] = ()) -> Dict[str, str]:
    env = environ.launch_env(processenv.caller() if base is None else base, layout, mode,
                             previously_written)
    env.update(LANG="C", LC_ALL="C")
    return env


# A failure of one of these means root would run code (or load a configuration) someone else
# chose: the live checks are then not run at all.
GATING = ("files", "permissions", "openssl.cnf")


def not_run(why: str, label: str = "") -> List[Check]:
    where = f" (environment of {label})" if label else ""
    return [failed(name, f"not run{where}: {why}", REINSTALL)
            for name in ("providers", "negative-probe")]


def target_problems(target, values: Mapping[str, Optional[str]]) -> List[str]:
    """Why the values a target holds must not be handed to a process root starts: the file
    they come from, or a path they name, is one another account can change."""
    from .trust import env_problems, path_problems

    problems = []
    path = getattr(target, "path", None)  # registry targets (Windows) have none
    if path is None:
        problems.append("its values can't be traced to a file only root can change")
    else:
        problems += path_problems([path])
    problems += env_problems({k: v for k, v in values.items() if v is not None})
    return problems


def verify(layout: Layout, targets: List, mode: str, managed: Mapping[str, str],
           previously_written: Iterable[str] = (), live: bool = True) -> List[Check]:
    from .openssl import OpenSSL

    env = launch_environment(layout, mode, None, previously_written)
    openssl = OpenSSL(layout, env)
    if mode == environ.NONFIPS:
        checks = [check_nonfips_environment(layout, targets, env)]
        if live:
            why = openssl.refusal(env)
            checks.append(failed("providers", f"not run: root runs no openssl while {why}",
                                 "chown root and chmod go-w each path named")
                          if why else check_nonfips_providers(openssl, env))
        return checks
    checks = fast_checks(layout)
    checks.append(check_targets(layout, targets, mode, managed, previously_written))
    if not live:
        return checks
    gate = [c for c in checks if c.name in GATING and c.fails()]
    if gate:
        return checks + not_run("root starts no openssl while "
                                + " and ".join(f"'{c.name}'" for c in gate) + " fails")
    checks += live_checks(openssl, env)
    from .cmvp import check_from  # only here: `run`'s start-up never asks about certificates

    checks += [c for c in [check_from(checks, layout.profile)] if c]
    # A target that drifted hands the server another environment: prove what it gives, but
    # only when nobody but root could have chosen those values (a target another account can
    # write is judged statically by `targets`: its values never reach a process root starts).
    for target in targets:
        current = target.effective()
        want = environ.values(layout, mode, current, previously_written)
        if any(current.get(k) != v for k, v in want.items()):
            values = {key: current.get(key) for key in want}
            untrusted = target_problems(target, values)
            if untrusted:
                checks.append(not_run("; ".join(untrusted) + " (the targets check judges "
                                      "its values)", target.spec)[0])
                continue
            target_env = environ.with_values(env, values)
            checks.append(live_checks(openssl, target_env, target.spec)[0])
    return checks


def verify_profile(profile, live: bool = True):
    """Verify an installation in the mode its journal records (FIPS when there is none)."""
    from .journal import Journal
    from .layout import resolve
    from .platforms import backend_for

    layout = resolve(profile)
    backend = backend_for(profile)
    journal = Journal.for_installation(profile.install_dir, backend.stores())
    mode = journal.mode or environ.FIPS
    checks = verify(layout, backend.targets(profile), mode, journal.managed,
                    journal.extra.get("ld_dirs", []), live=live)
    return mode, checks
