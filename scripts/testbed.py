#!/usr/bin/env python3
"""Build the FIPS-capable OpenSSL test bed: Linux 3.0 + 3.5, Windows 3.0 (mingw, run under Wine).

Every build lands in a folder of the cache keyed by the tarball's SHA-256, so a second
run reuses it and only checks markers. The result is described in `<cache>/testbed.json`,
which the test fixtures read.

Standard library only: this runs before anything else is installed.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

# Versions fetched when no tarball folder is given; the folder's own versions win.
PINNED = {"3.0": "3.0.22", "3.5": "3.5.7"}
# Where each line lives in Debian's archive: (suite, security suite). The mirrors are the
# machine's own (read from its apt configuration, never changed), so a local mirror is used.
DEBIAN_SUITES = {"3.0": ("bookworm", "bookworm-security"), "3.5": ("trixie", "trixie-security")}
UPSTREAM = "https://github.com/openssl/openssl/releases/download/openssl-{v}/openssl-{v}.tar.gz"
LINUX_TOOLS = {"gcc": "gcc", "make": "make", "perl": "perl"}
WINDOWS_TOOLS = {"x86_64-w64-mingw32-gcc": "gcc-mingw-w64-x86-64", "wine64": "wine64"}


def log(msg: str) -> None:
    print(f"testbed: {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    if os.environ.get("FIPSBOOT_TESTBED_DIR"):
        return Path(os.environ["FIPSBOOT_TESTBED_DIR"]).resolve()
    try:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("fipsboot"))
    except ImportError:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fipsboot"
    return base / "testbed"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_tools(tools: dict[str, str]) -> None:
    # wine64 on Debian installs /usr/lib/wine/wine64; /usr/bin/wine comes with the `wine` package.
    missing = sorted({pkg for exe, pkg in tools.items() if not find_exe(exe)})
    if not missing:
        return
    log(f"installing build tools: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def find_exe(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in (f"/usr/lib/wine/{name}", f"/usr/lib/x86_64-linux-gnu/wine/{name}"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


# --- tarballs ----------------------------------------------------------------------------

TARBALL_RE = re.compile(r"openssl[_-](3\.\d+\.\d+)(?:\.orig)?\.tar\.gz$")


def tarball_from_dir(folder: Path, line: str) -> Path | None:
    candidates = []
    for p in folder.iterdir():
        m = TARBALL_RE.search(p.name)
        if m and m.group(1).startswith(line + "."):
            candidates.append((tuple(int(x) for x in m.group(1).split(".")), p))
    if not candidates:
        return None
    tarball = max(candidates)[1]
    sums = folder / "SHA256SUMS"
    if sums.exists():
        expected = {}
        for row in sums.read_text().splitlines():
            parts = row.split()
            if len(parts) == 2:
                expected[parts[1].lstrip("*")] = parts[0].lower()
        if tarball.name not in expected:
            raise SystemExit(f"testbed: {tarball.name} is not listed in {sums}")
        if sha256_of(tarball) != expected[tarball.name]:
            raise SystemExit(f"testbed: {tarball} does not match its SHA256SUMS entry")
    return tarball


def machine_mirrors() -> tuple:
    """The Debian archive and security mirror URIs this machine's apt uses (read only)."""
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.suffix in (".list", ".sources") or path.name == "sources.list":
            try:
                texts.append(path.read_text())
            except OSError:
                pass
    uris = re.findall(r"^URIs:\s*(\S+)", "\n".join(texts), re.M)
    uris += re.findall(r"^deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(\S+)", "\n".join(texts), re.M)
    debian = [u.rstrip("/") for u in uris if "debian" in u]
    security = next((u for u in debian if u.endswith("-security")), None)
    archive = next((u for u in debian if not u.endswith("-security")), None)
    return archive, security


def tarball_from_apt(line: str, work: Path) -> Path | None:
    """`apt-get source --download-only` with private lists: the machine's apt config is untouched."""
    if not shutil.which("apt-get"):
        return None
    root = work / f"apt-{line}"
    for sub in ("lists/partial", "cache/archives/partial", "src"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    archive, security = machine_mirrors()
    if not archive:
        log("no Debian mirror in this machine's apt configuration: skipping apt-get source")
        return None
    suite, security_suite = DEBIAN_SUITES[line]
    lines = [f"deb-src {archive} {suite} main"]
    if security:
        lines.append(f"deb-src {security} {security_suite} main")
    (root / "sources.list").write_text("\n".join(lines) + "\n")
    opts = [
        f"-oDir::Etc::SourceList={root / 'sources.list'}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={root / 'lists'}",
        f"-oDir::Cache={root / 'cache'}",
        "-oAPT::Sandbox::User=root",
    ]
    try:
        subprocess.run(["apt-get", *opts, "update", "-qq"], check=True, timeout=300)
        shown = subprocess.run(["apt-cache", *opts, "showsrc", "openssl"], check=True,
                               capture_output=True, text=True, timeout=120).stdout
    except (subprocess.SubprocessError, OSError) as e:
        log(f"apt-get update for {line} failed: {e}")
        return None
    # Newest first; a mirror's index can name a version its pool no longer (or not yet) has.
    versions = sorted(set(re.findall(r"^Version: (\S+)", shown, re.M)), reverse=True,
                      key=lambda v: [int(x) if x.isdigit() else 0 for x in re.split(r"\D+", v)])
    for version in versions:
        if not version.startswith(line + "."):
            continue
        r = subprocess.run(["apt-get", *opts, "source", "--download-only", f"openssl={version}"],
                           cwd=root / "src", capture_output=True, text=True, timeout=600)
        # The orig tarball is all the build needs (apt checked it against the signed .dsc);
        # a missing .debian.tar or .asc on the mirror does not matter.
        found = tarball_from_dir(root / "src", line)
        if found:
            return found
        log(f"apt-get source openssl={version} failed: {r.stderr.strip().splitlines()[-1:]}")
    return None


def tarball_from_upstream(line: str, work: Path) -> Path | None:
    version = PINNED[line]
    dest = work / f"openssl-{version}.tar.gz"
    try:
        urllib.request.urlretrieve(UPSTREAM.format(v=version), dest)
    except OSError as e:
        log(f"download of {version} failed: {e}")
        return None
    return dest


def find_tarball(line: str) -> Path:
    folder = os.environ.get("OPENSSL_TARBALL_DIR")
    if folder:
        found = tarball_from_dir(Path(folder), line)
        if found:
            return found
        log(f"no OpenSSL {line}.x tarball in {folder}")
    downloads = cache_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    found = tarball_from_apt(line, downloads) or tarball_from_upstream(line, downloads)
    if not found:
        raise SystemExit(f"testbed: no OpenSSL {line}.x source: set OPENSSL_TARBALL_DIR "
                         "to a folder holding openssl_<version>.orig.tar.gz")
    return found


# --- builds ------------------------------------------------------------------------------

def run(cmd: list[str], cwd: Path, logfile: Path, env: dict | None = None) -> None:
    with open(logfile, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        rc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    if rc:
        tail = logfile.read_text(errors="replace").splitlines()[-30:]
        raise SystemExit(f"testbed: {' '.join(cmd)} failed ({rc}); last lines of {logfile}:\n"
                         + "\n".join(tail))


def unpack(tarball: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(tarball) as tf:
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tf.extractall(dest, **kwargs)
    (src,) = [p for p in dest.iterdir() if p.is_dir()]
    return src


def build(tarball: Path, target: str, out: Path) -> dict:
    """Configure + `make build_sw` (one top-level target: several race), then copy the pieces."""
    cache = cache_dir()
    logfile = cache / f"{out.name}.log"
    logfile.write_text("")
    src = unpack(tarball, cache / "build" / out.name)
    jobs = str(os.cpu_count() or 2)
    configure = ["./Configure", "enable-fips", "shared", "no-tests"]
    if target == "mingw":
        configure = ["./Configure", "mingw64", "enable-fips", "shared", "no-tests",
                     "--cross-compile-prefix=x86_64-w64-mingw32-"]
    started = time.monotonic()
    log(f"building {out.name} (log: {logfile})")
    run(configure, src, logfile)
    run(["make", f"-j{jobs}", "build_sw"], src, logfile)
    staging = out.with_name(out.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    if target == "mingw":
        files = {"bin": ["apps/openssl.exe", "libcrypto-3-x64.dll", "libssl-3-x64.dll"],
                 "fips": ["providers/fips.dll"]}
    else:
        files = {"bin": ["apps/openssl"], "lib64": ["libcrypto.so.3", "libssl.so.3"],
                 "fips": ["providers/fips.so"]}
    for sub, names in files.items():
        (staging / sub).mkdir(parents=True)
        for name in names:
            shutil.copy2(src / name, staging / sub / Path(name).name)
    info = {"version": read_version(src), "target": target, "tarball": tarball.name,
            "build_seconds": round(time.monotonic() - started)}
    (staging / "build.json").write_text(json.dumps(info, indent=1))
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    shutil.rmtree(src.parent, ignore_errors=True)
    log(f"built {out.name} in {info['build_seconds']} s")
    return info


def read_version(src: Path) -> str:
    fields = dict(re.findall(r"^(MAJOR|MINOR|PATCH)=(\d+)", (src / "VERSION.dat").read_text(), re.M))
    return f"{fields['MAJOR']}.{fields['MINOR']}.{fields['PATCH']}"


def ensure_build(line: str, target: str) -> dict:
    tarball = find_tarball(line)
    key = sha256_of(tarball)[:16]
    out = cache_dir() / f"{target}-{line}-{key}"
    if not (out / "build.json").exists():
        build(tarball, target, out)
    info = json.loads((out / "build.json").read_text())
    info["dir"] = str(out)
    return info


def ensure_wineprefix() -> dict:
    prefix = cache_dir() / "wineprefix"
    wine = find_exe("wine") or find_exe("wine64")
    marker = prefix / ".fipsboot-initialised"
    if not marker.exists():
        log(f"initialising Wine prefix {prefix}")
        prefix.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, WINEPREFIX=str(prefix), WINEDEBUG="-all", WINEDLLOVERRIDES="mscoree,mshtml=")
        subprocess.run([wine, "wineboot", "--init"], env=env, check=True, timeout=600,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = find_exe("wineserver") or find_exe("wineserver64")
        if server:
            subprocess.run([server, "-w"], env=env, timeout=300)
        marker.write_text("ok\n")
    return {"prefix": str(prefix), "wine": wine}


@contextlib.contextmanager
def locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def write_manifest(path: Path, data: dict) -> None:
    """Replace a JSON manifest in one step: a reader never sees half of it (testhosts.py too)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["linux", "windows"], help="build one platform only")
    parser.add_argument("--print-dir", action="store_true", help="print the cache folder and exit")
    args = parser.parse_args()
    cache = cache_dir()
    if args.print_dir:
        print(cache)
        return 0
    started = time.monotonic()
    with locked(cache / ".lock"):
        manifest_path = cache / "testbed.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        if args.only in (None, "linux"):
            ensure_tools(LINUX_TOOLS)
            for line in ("3.0", "3.5"):
                manifest[f"linux-{line}"] = ensure_build(line, "linux")
        if args.only in (None, "windows"):
            ensure_tools({**LINUX_TOOLS, **WINDOWS_TOOLS})
            manifest["windows-3.0"] = ensure_build("3.0", "mingw")
            manifest["wine"] = ensure_wineprefix()
        write_manifest(manifest_path, manifest)
    log(f"ready in {time.monotonic() - started:.1f} s: {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
