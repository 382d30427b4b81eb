#!/usr/bin/env bash
# Set up samos in .venv/ at the repository root, system packages included, from the committed lock.
#   scripts/setup.sh runtime   the monitor and `samos score` only (no torch): what the demo needs
#   scripts/setup.sh gpu       the same with onnxruntime-gpu (CUDA) instead of onnxruntime (CPU)
#   scripts/setup.sh dev       everything: training, export, benchmarks, tests (torch 2.11, ~4.6 GB)
# Python packages come only from requirements/<profile>.txt: exact versions with hashes, exported from
# uv.lock (scripts/lock.sh re-locks after a change to pyproject.toml). Idempotent: a second run with
# the same lock installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"

apt_packages=(libportaudio2 libsndfile1)
case "$profile" in
  runtime|gpu) ;;
  dev)
    # chromium: browser end-to-end tests; alsa-utils: the fake ALSA capture device in tests;
    # espeak-ng, sox, klettres-data, fillets-ng-data(-cs), tuxpaint-stamps-default: clean speech for
    # `samos data simulate`; libopus0: its Opus calls with the decoder's packet-loss concealment.
    apt_packages+=(chromium alsa-utils espeak-ng sox klettres-data fillets-ng-data fillets-ng-data-cs
      tuxpaint-stamps-default libopus0) ;;
  *) echo "usage: scripts/setup.sh [runtime|gpu|dev]" >&2; exit 2 ;;
esac
if [ "$profile" = dev ]; then
  # ffmpeg, gstreamer1.0-*: the real RTP senders of the ingest tests (docs/INGEST.md).
  apt_packages+=(ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good)
fi
lock="requirements/$profile.txt"

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
pip=(.venv/bin/python -m pip install -q --require-hashes --no-deps)
stamp=".venv/.samos-$profile-$(cat requirements/bootstrap.txt "$lock" pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($py --version)"
    "$py" -m venv .venv
  fi
  # onnxruntime and onnxruntime-gpu share one import: switching profiles must not leave both.
  other=$([ "$profile" = gpu ] && echo onnxruntime || echo onnxruntime-gpu)
  .venv/bin/python -m pip uninstall -q -y "$other" 2>/dev/null || true
  echo "setup: installing the $profile profile from $lock (first time: a few minutes)"
  "${pip[@]}" -r requirements/bootstrap.txt
  "${pip[@]}" -r "$lock"
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  rm -f .venv/.samos-"$profile"-*
  touch "$stamp"
fi
echo "setup: ready ($profile): .venv/bin/samos, .venv/bin/monitor"
