#!/usr/bin/env bash
# Installs what the test and benchmark suites need on a fresh Debian machine.
# Idempotent: does nothing when everything is present.
set -euo pipefail

need=()
command -v gcc >/dev/null || need+=(gcc)
command -v nm >/dev/null || need+=(binutils)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v pkg-config >/dev/null || need+=(pkg-config)
# The real-fault tests mount a small ext4 image on a loop device.
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v losetup >/dev/null || need+=(mount)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need[*]} and not root; install them first" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
