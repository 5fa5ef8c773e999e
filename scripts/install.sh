#!/usr/bin/env bash
# Installs everything rdscard, its demo and its tests need on Debian 12, as root:
# the Debian packages of the real peers (xfreerdp, Xvfb, pcscd + vpcd, OpenSC,
# MIT Kerberos with PKINIT) and a project virtual environment in .venv with the
# pinned Python packages. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
    freerdp2-x11 xvfb xdotool x11-utils
    xauth x11-xkb-utils xterm openbox dbus libfreerdp2-2 libpam-modules
    pcscd libpcsclite-dev vsmartcard-vpcd pcsc-tools
    opensc yubico-piv-tool python3-pyscard
    krb5-kdc krb5-admin-server krb5-pkinit krb5-user libkrb5-dev
    systemd swig gcc python3-dev
    e2fsprogs mount openssl age
    rdesktop freerdp3-x11
    samba ldb-tools
)

# FreeRDP 3 (xfreerdp3, the client that sends smart card credentials under NLA) is in
# bookworm-backports: a sources entry for that suite with the same archive and keyring as
# the machine's Debian entry. Packages from it are installed only when named (freerdp3-x11
# installs beside freerdp2 and upgrades nothing).
BACKPORTS=/etc/apt/sources.list.d/debian-backports.sources
if [ ! -f "$BACKPORTS" ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uris=$(awk '/^URIs:/ && /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    keyring=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    if [ -z "$uris" ]; then  # a one-line style sources.list
        uris=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    fi
    if [ -z "$uris" ]; then
        echo "rdscard: no Debian bookworm archive found in the apt sources to add bookworm-backports from;" >&2
        echo "rdscard: add a bookworm-backports entry for your archive, then run this again" >&2
        exit 1
    fi
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
        "$uris" "${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}" > "$BACKPORTS"
    echo "rdscard: added the bookworm-backports suite ($BACKPORTS)"
    FORCE_APT_UPDATE=1
fi

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})) || [ -n "${FORCE_APT_UPDATE:-}" ]; then
    echo "rdscard: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if ((${#missing[@]})); then apt-get install -y -qq "${missing[@]}" >/dev/null; fi
fi

# pcscd must not be started by the system for us: the tests and the demo run
# their own isolated daemons. Nothing here enables the system service.

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "rdscard: creating the virtual environment .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.rdscard-requirements
if [ ! -f "$stamp" ] || ! cmp -s requirements-dev.txt "$stamp" || [ pyproject.toml -nt "$stamp" ]; then
    echo "rdscard: installing Python packages (pinned in requirements-dev.txt)"
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -r requirements-dev.txt
    .venv/bin/pip install -q --no-deps -e .
    cp requirements-dev.txt "$stamp"
fi

# The redirection hot path compiled with mypyc, in place (extension modules beside their
# sources; rebuilt only when one of them changed). RDSCARD_PURE_PYTHON=1 runs without them.
.venv/bin/python scripts/build_compiled.py --if-stale

# The unprivileged account of the network process (privilege separation).
if ! getent passwd rdscard >/dev/null; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rdscard
fi

# The PAM service desktop sessions are opened with (an edited one is kept).
.venv/bin/rdscard session install-pam >/dev/null
