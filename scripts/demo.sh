#!/usr/bin/env bash
# The main job: set up, then run the monitor on the bundled call recording (looped, paced in real time)
# with the embedded default model, serving the overlay page and the websocket. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh runtime
exec .venv/bin/monitor --file demo=samos/assets/demo_call_48k.flac --loop \
  --webrtc "${SAMOS_HTTP:-127.0.0.1:8080}" --ws "${SAMOS_WS:-127.0.0.1:8765}" "$@"
