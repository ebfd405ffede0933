"""Load and validate the TOML profile that describes one server installation.

Every error names the file and the key, and nothing is touched before the profile is valid.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Optional, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - RHEL 9's Python
    import tomli as tomllib

from .errors import ProfileError

# OpenSSL's build-time default FIPS key (providers/fips/... `--fips-key`).
DEFAULT_FIPS_KEY = "f4556650ac31d35461610bac4ed81b1a181b2d8a43ea2854cbae22ca74560813"

PLATFORM_DEFAULTS = {
    "linux": {"fips-module": "fips/fips.so", "openssl": "tools/openssl", "lib-dirs": ["lib64"]},
    "windows": {"fips-module": "fips/fips.dll", "openssl": "tools/openssl.exe", "lib-dirs": []},
}
TARGET_KINDS = {
    "linux": ("systemd", "envfile", "profile", "profile-file"),
    "windows": ("service", "user", "machine"),
}


@dataclass(frozen=True)
class FipsSwitch:
    """The server's own FIPS switch in a local options file (ORS: [scxml] fips-enabled)."""

    file: str
    section: str
    key: str


@dataclass(frozen=True)
class Target:
    kind: str
    arg: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


@dataclass(frozen=True)
class TlsSettings:
    """[tls]: the server's TLS client material and peers, with the vendor's option names."""

    cert: Optional[str] = None
    key: Optional[str] = None
    cacert: Optional[str] = None
    cacertdir: Optional[str] = None
    sni: Optional[str] = None
    peers: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    source: Path
    platform: str
    install_dir: str
    fips_module: str
    openssl: str
    lib_dirs: Tuple[str, ...]
    config_dir: str
    security_pack_dir: Optional[str]
    fipsinstall_options: Tuple[str, ...]
    launcher: Tuple[str, ...]
    fips_key: str
    fips_switch: Optional[FipsSwitch]
    targets: Tuple[Target, ...]
    systemd_dir: str
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    process_names: Tuple[str, ...] = ()  # `status`: servers started without the wrapper
    process_users: Tuple[str, ...] = ()  # `status`: only these accounts' processes can match
    tls: Optional[TlsSettings] = None
    cmvp_certificate: Optional[str] = None  # the vendor's own CMVP certificate: the operator's word

    @property
    def pure_path(self):
        return PureWindowsPath if self.platform == "windows" else PurePosixPath


SERVER_KEYS = {"install-dir", "fips-module", "openssl", "lib-dirs", "config-dir",
               "security-pack-dir", "fipsinstall-options", "launcher", "platform",
               "fips-key", "fips-switch", "process-names", "cmvp-certificate",
               "process-users"}
ACCOUNT_KEYS = {"targets", "systemd-dir"}
TLS_KEYS = {"cert", "key", "cacert", "cacertdir", "sni", "peers"}
# Paths that end up in LD_LIBRARY_PATH, where ':' separates entries (Linux).
SEARCH_PATH_KEYS = ("install-dir", "fips-module", "lib-dirs", "security-pack-dir")
# fipsinstall options fipsboot passes on: switches that only set indicator/self-test flags
# written into fipsmodule.cnf. Anything else (-out, -module, -section_name, -macopt, a value
# after '=') changes where fipsinstall writes or what fipsboot reads back, and is refused.
FIPSINSTALL_SWITCHES = {"pedantic", "self_test_onload", "self_test_oninstall", "quiet",
                        "no_conditional_errors", "no_security_checks", "ems_check",
                        "no_drbg_truncated_digest", "no_short_mac"}
FIPSINSTALL_SWITCH_RE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*_(check|disabled)$")
UNIT_RE = re.compile(r"^[A-Za-z0-9:_.@\\-]+$")


# OpenSSL's own options to make a self-test fail (to see that failures are caught): they take
# the test's description and type as the next value.
FIPSINSTALL_WITH_VALUE = {"corrupt_desc", "corrupt_type"}


def fipsinstall_options_problem(options) -> Optional[str]:
    """Why fipsboot won't pass `options` to fipsinstall, or None."""
    i = 0
    while i < len(options):
        opt = options[i]
        name = opt.lstrip("-").split("=", 1)[0]
        if opt.startswith("-") and name in FIPSINSTALL_WITH_VALUE and "=" not in opt:
            if i + 1 >= len(options) or options[i + 1].startswith("-"):
                return f"{opt} needs a value after it"
            i += 2
            continue
        problem = fipsinstall_option_problem(opt)
        if problem:
            return problem
        i += 1
    return None


def fipsinstall_option_problem(opt: str) -> Optional[str]:
    """Why fipsboot won't pass `opt` to fipsinstall, in any spelling OpenSSL accepts
    (`-x`, `--x`, `-x=value`), or None."""
    name = opt[2:] if opt.startswith("--") else opt[1:] if opt.startswith("-") else None
    if name is not None and name.split("=", 1)[0] in FIPSINSTALL_WITH_VALUE and "=" in name:
        return None
    if name is None or "=" in name or not name:
        return f"{opt!r} is not a switch fipsboot passes on (only -NAME, no value)"
    if name in ("module", "out", "in", "verify", "config", "provider_name", "section_name",
                "mac_name", "macopt"):
        return f"{opt} is set by fipsboot itself (fips-key for the MAC key)"
    if name not in FIPSINSTALL_SWITCHES and not FIPSINSTALL_SWITCH_RE.match(name):
        return (f"{opt} is not a fipsinstall switch fipsboot knows (known: "
                f"{', '.join(sorted(FIPSINSTALL_SWITCHES))}, and -..._check / -..._disabled)")
    return None


class _Reader:
    def __init__(self, source: Path, table: dict, section: str, allowed: set):
        self.source, self.table, self.section = source, table, section
        unknown = sorted(set(table) - allowed)
        if unknown:
            self.fail(unknown[0], f"unknown key (known: {', '.join(sorted(allowed))})")

    def fail(self, key: str, why: str):
        raise ProfileError(f"{self.source}: [{self.section}] {key}: {why}")

    def get(self, key: str, kind: type, default: Any = None) -> Any:
        if key not in self.table:
            return default
        value = self.table[key]
        if kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                self.fail(key, f"must be a list of strings, got {value!r}")
        elif not isinstance(value, kind):
            self.fail(key, f"must be a {kind.__name__}, got {value!r}")
        return value


def _is_absolute(platform: str, path: str) -> bool:
    if platform == "windows":
        p = PureWindowsPath(path)
        return bool(p.drive) and bool(p.root)
    return PurePosixPath(path).is_absolute()


def _windows_path(server: _Reader, key: str, value: str, base: Optional[str]) -> str:
    """A Windows path under Windows' rules (`platforms/winpaths.py`), relative ones under
    `base`; a path Windows or openssl.exe would read as another file is refused, rule named."""
    from .platforms.winpaths import path_problem

    pure = PureWindowsPath(value)
    if not pure.drive and not pure.root and base is not None:
        value = str(PureWindowsPath(base) / value)
    problem = path_problem(value, ascii_only=key != "fips-switch.file")  # openssl never opens it
    if problem:
        server.fail(key, f"{value!r} is refused: {problem}")
    return str(PureWindowsPath(value))


def host_platform() -> str:
    return "windows" if sys.platform == "win32" else "linux"


def load(path: str | Path) -> Profile:
    source = Path(path)
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{source}: profile not found",
                           "check the --profile path (the installation's TOML profile)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError(f"{source}: cannot read profile: {e}",
                           "make the profile a readable UTF-8 file") from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{source}: not valid TOML: {e}",
                           "correct the TOML syntax at the line and column named") from None
    return parse(raw, source.resolve())


def parse(raw: dict, source: Path) -> Profile:
    unknown = sorted(set(raw) - {"server", "account", "tls"})
    if unknown:
        raise ProfileError(f"{source}: unknown table [{unknown[0]}] "
                           "(known: [server], [account], [tls])")
    if not isinstance(raw.get("server"), dict):
        raise ProfileError(f"{source}: [server] table is required")
    server = _Reader(source, raw["server"], "server", SERVER_KEYS)
    if not isinstance(raw.get("account", {}), dict):
        raise ProfileError(f"{source}: [account] must be a table")
    account = _Reader(source, raw.get("account", {}), "account", ACCOUNT_KEYS)

    platform = server.get("platform", str, host_platform())
    if platform not in PLATFORM_DEFAULTS:
        server.fail("platform", f"must be 'linux' or 'windows', got {platform!r}")
    defaults = PLATFORM_DEFAULTS[platform]
    pure = PureWindowsPath if platform == "windows" else PurePosixPath

    install_dir = server.get("install-dir", str)
    if install_dir is None:
        server.fail("install-dir", "is required")

    def absolute(key: str, value: str, base: Optional[str]) -> str:
        if "\0" in value or "\n" in value or "\r" in value:
            server.fail(key, "contains a control character")
        if platform == "linux" and key in SEARCH_PATH_KEYS and ":" in value:
            server.fail(key, f"contains ':', which splits LD_LIBRARY_PATH (the server would then "
                             f"load another libcrypto): {value!r}")
        if platform == "windows":
            return _windows_path(server, key, value, base)
        if _is_absolute(platform, value):
            return str(pure(value))
        if base is None:
            server.fail(key, f"must be an absolute path, got {value!r}")
        return str(pure(base) / value)

    install_dir = absolute("install-dir", install_dir, None)
    fips_module = absolute("fips-module", server.get("fips-module", str, defaults["fips-module"]),
                           install_dir)
    expected = PurePosixPath(defaults["fips-module"]).name
    name = pure(fips_module).name
    if (name.lower() if platform == "windows" else name) != expected:
        # OpenSSL loads <OPENSSL_MODULES>/fips.so whatever the profile says: a module of
        # another name would be MAC-checked while a different file is loaded.
        server.fail("fips-module", f"must be a file named {expected} (OpenSSL loads the fips "
                                   f"provider by that name), got {fips_module!r}")
    openssl = absolute("openssl", server.get("openssl", str, defaults["openssl"]), install_dir)
    lib_dirs = tuple(absolute("lib-dirs", d, install_dir)
                     for d in server.get("lib-dirs", list, defaults["lib-dirs"]))
    config_dir = absolute("config-dir", server.get("config-dir", str, install_dir), None)
    if platform == "windows":
        from .platforms.winpaths import config_dir_problem

        problem = config_dir_problem(config_dir)
        if problem:
            server.fail("config-dir", f"{config_dir!r}: {problem}")
    spd = server.get("security-pack-dir", str)
    security_pack_dir = absolute("security-pack-dir", spd, None) if spd is not None else None
    options = tuple(server.get("fipsinstall-options", list, []))
    problem = fipsinstall_options_problem(options)
    if problem:
        server.fail("fipsinstall-options", problem)
    launcher = tuple(server.get("launcher", list, []))
    fips_key = server.get("fips-key", str, DEFAULT_FIPS_KEY).lower()
    try:
        if len(bytes.fromhex(fips_key)) < 16:
            raise ValueError
    except ValueError:
        server.fail("fips-key", "must be the FIPS HMAC key in hex (at least 32 digits)")
    switch = server.get("fips-switch", dict)
    fips_switch = None
    if switch is not None:
        sw = _Reader(source, switch, "server.fips-switch", {"file", "section", "key"})
        missing = [k for k in ("file", "section", "key") if not isinstance(switch.get(k), str)]
        if missing:
            sw.fail(missing[0], "is required and must be a string")
        fips_switch = FipsSwitch(absolute("fips-switch.file", switch["file"], None),
                                 switch["section"], switch["key"])

    process_names = tuple(server.get("process-names", list, []))
    for name in process_names:
        if not name or "/" in name or "\\" in name or "\0" in name:
            server.fail("process-names", f"{name!r}: give a process name or an executable's "
                                         "file name, not a path")
    process_users = tuple(server.get("process-users", list, []))
    for user in process_users:
        if not isinstance(user, str) or not user or "\0" in user or ":" in user:
            server.fail("process-users", f"{user!r}: give an account name (the accounts that run "
                                         "the server)")
    cmvp_certificate = server.get("cmvp-certificate", str)
    if cmvp_certificate is not None and not (cmvp_certificate.isascii() and cmvp_certificate.isdigit()
                                             and 0 < len(cmvp_certificate) <= 6):
        server.fail("cmvp-certificate", f"must be a CMVP certificate number such as \"4985\", "
                                        f"got {cmvp_certificate!r}")

    targets = []
    for spec in account.get("targets", list, []):
        kind, _, arg = spec.partition(":")
        if kind not in TARGET_KINDS[platform]:
            account.fail("targets", f"{spec!r}: unknown target kind {kind!r} on {platform} "
                                    f"(known: {', '.join(TARGET_KINDS[platform])})")
        if kind in ("envfile", "profile-file") and not _is_absolute(platform, arg):
            account.fail("targets", f"{spec!r}: needs an absolute path after '{kind}:'")
        if kind == "machine" and arg:
            account.fail("targets", f"{spec!r}: 'machine' takes no argument")
        if kind not in ("machine",) and not arg:
            account.fail("targets", f"{spec!r}: needs a name after '{kind}:'")
        if kind == "systemd" and (not UNIT_RE.match(arg) or arg.startswith(".")):
            account.fail("targets", f"{spec!r}: not a systemd unit name (letters, digits and "
                                    "':_.@\\-' only; no '/')")
        if kind == "profile" and platform == host_platform() == "linux":
            import pwd

            try:
                pwd.getpwnam(arg)
            except KeyError:
                account.fail("targets", f"{spec!r}: no account named {arg!r} on this host")
        targets.append(Target(kind, arg))
    systemd_dir = account.get("systemd-dir", str, "/etc/systemd/system")
    if not PurePosixPath(systemd_dir).is_absolute():
        account.fail("systemd-dir", f"must be an absolute path, got {systemd_dir!r}")

    tls = None
    if "tls" in raw:
        if not isinstance(raw["tls"], dict):
            raise ProfileError(f"{source}: [tls] must be a table")
        tls = _tls_settings(_Reader(source, raw["tls"], "tls", TLS_KEYS), platform)

    return Profile(source=source, platform=platform, install_dir=install_dir,
                   fips_module=fips_module, openssl=openssl, lib_dirs=lib_dirs,
                   config_dir=config_dir, security_pack_dir=security_pack_dir,
                   fipsinstall_options=options, launcher=launcher, fips_key=fips_key,
                   fips_switch=fips_switch, targets=tuple(targets), systemd_dir=systemd_dir,
                   raw=raw, process_names=process_names, process_users=process_users, tls=tls,
                   cmvp_certificate=cmvp_certificate)


def _tls_settings(tls: _Reader, platform: str) -> TlsSettings:
    from .tlspeer import parse_peer, valid_host

    paths = {}
    for key in ("cert", "key", "cacert", "cacertdir"):
        value = tls.get(key, str)
        if value is not None:
            if "\0" in value or "\n" in value or not _is_absolute(platform, value):
                tls.fail(key, f"must be an absolute path, got {value!r}")
            paths[key] = value
    sni = tls.get("sni", str)
    if sni is not None and not valid_host(sni):
        tls.fail("sni", f"must be a host name, got {sni!r}")
    peers = []
    for spec in tls.get("peers", list, []):
        try:
            peers.append(parse_peer(spec).spec)
        except ValueError as e:
            tls.fail("peers", str(e))
    return TlsSettings(sni=sni, peers=tuple(dict.fromkeys(peers)), **paths)
