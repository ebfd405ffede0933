"""The checks that start no process: the installation's files, who may write them, fipsmodule.cnf,
the module's MAC (recomputed in-process) and openssl.cnf as OpenSSL reads it. `run` asks them on
every launch; a failure of files, permissions or openssl.cnf keeps root from starting openssl.
"""
from __future__ import annotations

from typing import List

from . import fipsmodule, fsutil
from .checks import Check, failed, passed
from .errors import FipsbootError
from .layout import Layout

REINSTALL = "run `fipsboot install --profile PROFILE` again"


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


def fast_checks(layout: Layout) -> List[Check]:
    checks = [check_files(layout)]
    if checks[0].ok:
        checks += [check_permissions(layout), check_fipsmodule_cnf(layout),
                   check_module_mac(layout), check_openssl_cnf(layout)]
    return checks
