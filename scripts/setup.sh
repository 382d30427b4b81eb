#!/usr/bin/env bash
# Set up samos in .venv/ at the repository root, system packages included.
#   scripts/setup.sh runtime   the monitor and `samos score` only (no torch): what the demo needs
#   scripts/setup.sh dev       everything: training, export, benchmarks, tests (torch 2.11, ~4.6 GB)
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"

apt_packages=(libportaudio2 libsndfile1)
extras="cpu,monitor,webrtc"
if [ "$profile" = dev ]; then
  # chromium: browser end-to-end tests; alsa-utils: the fake ALSA capture device in tests;
  # espeak-ng, sox, klettres-data, fillets-ng-data(-cs): clean speech for `samos data simulate`.
  apt_packages+=(chromium alsa-utils espeak-ng sox klettres-data fillets-ng-data fillets-ng-data-cs)
  extras="cpu,train,monitor,webrtc,bench,data,dev,serve"
elif [ "$profile" != runtime ]; then
  echo "usage: scripts/setup.sh [runtime|dev]" >&2; exit 2
fi

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($py --version)"
  "$py" -m venv .venv
  .venv/bin/pip install -q --upgrade pip setuptools wheel
fi
stamp=".venv/.samos-$profile-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing samos[$extras] (first time: a few minutes)"
  .venv/bin/pip install -q -e ".[$extras]"
  touch "$stamp"
fi
echo "setup: ready ($profile): .venv/bin/samos, .venv/bin/monitor"
