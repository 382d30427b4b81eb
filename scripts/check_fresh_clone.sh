#!/usr/bin/env bash
# The README's two commands from nothing: clone HEAD into a temporary folder (no .venv, no pip cache),
# run ./scripts/demo.sh until a websocket client receives numeric MOS scores, stop it, then run
# ./scripts/test.sh. Prints the time of each (set-up included) and the runtime/dev profiles' sizes.
#   scripts/check_fresh_clone.sh [TEST_ARGS...]     e.g. -q, or tests/test_setup.py for a quick look
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill $demo_pid 2>/dev/null || true; rm -rf "$work"' EXIT
demo_pid=
git clone -q "$src" "$work/samos"
cd "$work/samos"
export PIP_NO_CACHE_DIR=1
http=127.0.0.1:18080 ws=127.0.0.1:18765
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.0f}')"; }

t0=$(now)
SAMOS_HTTP=$http SAMOS_WS=$ws ./scripts/demo.sh >"$work/demo.log" 2>&1 &
demo_pid=$!
until grep -q "setup: ready" "$work/demo.log"; do
  kill -0 $demo_pid 2>/dev/null || { cat "$work/demo.log"; echo "check: the demo died during set-up" >&2; exit 1; }
  sleep 1
done
t_ready=$(now)
runtime_size=$(du -sh .venv | cut -f1)
# A websocket client that must receive three numeric `mos` scores within 60 s of the end of set-up.
.venv/bin/python - "$ws" <<'PY'
import asyncio, json, math, sys, time
from websockets.asyncio.client import connect

async def main(addr: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            ws = await connect(f"ws://{addr}")
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"check: no websocket at {addr} within 60 s")
            await asyncio.sleep(0.5)
    scores = []
    async with ws:
        while len(scores) < 3:
            msg = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            if isinstance(msg.get("mos"), (int, float)) and math.isfinite(msg["mos"]):
                scores.append(round(msg["mos"], 2))
    print(f"check: websocket client received MOS {scores}")

asyncio.run(main(sys.argv[1]))
PY
t_scores=$(now)
kill $demo_pid; wait $demo_pid 2>/dev/null || true; demo_pid=

t1=$(now)
./scripts/test.sh "$@"
t2=$(now)
echo "check: demo set-up (runtime profile, .venv $runtime_size) $(secs "$t0" "$t_ready") s;" \
  "first scores $(secs "$t_ready" "$t_scores") s after set-up"
echo "check: test command (dev profile on top, .venv $(du -sh .venv | cut -f1)) $(secs "$t1" "$t2") s"
