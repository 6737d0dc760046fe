#!/usr/bin/env bash
# Installs what cmlab needs on a Debian or Ubuntu host, then cmlab itself into .venv.
#   system: mmdebstrap (bootstraps the base image from Debian's packages),
#           nftables, iproute2, util-linux, iputils-arping (faults, injected from the host),
#           Docker Engine (docker.io) when none is installed, python3-venv
#   python: cmlab and its test extra, in ./.venv
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
missing=()
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
# Fault injection from the host: nft, tc/ip, nsenter, arping.
command -v nft >/dev/null || missing+=(nftables)
command -v ip >/dev/null || missing+=(iproute2)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v arping >/dev/null || missing+=(iputils-arping)
command -v docker >/dev/null || missing+=(docker.io)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    echo "ci/setup.sh: installing ${missing[*]}"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    # A host without systemd (a CI container) may need the daemon started by hand.
    $SUDO service docker start >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "ci/setup.sh: the Docker Engine is not running and could not be started" >&2; exit 1; }
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
