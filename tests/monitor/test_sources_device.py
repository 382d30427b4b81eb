"""Sound-card capture through the real PortAudio/ALSA stack, with ALSA's ``file`` plugin as the card.

PortAudio reads ALSA's configuration when it initialises (on ``import sounddevice``), so the capture
runs in a subprocess whose HOME holds the test .asoundrc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from samos.monitor.source import SourceError
from samos.monitor.sources.device import resolve_device

DEVICES = [
    {"index": 0, "name": "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "max_input_channels": 2},
    {"index": 1, "name": "USB Audio: Headset (hw:1,0)", "max_input_channels": 1},
    {"index": 4, "name": "Loopback: PCM (hw:10,0)", "max_input_channels": 2},
    {"index": 5, "name": "Loopback: PCM (hw:10,1)", "max_input_channels": 2},
    {"index": 7, "name": "pulse", "max_input_channels": 32},
]
for d in DEVICES:
    d.update(default_samplerate=48_000.0, hostapi_name="ALSA")


@pytest.mark.parametrize(
    ("spec", "index"),
    [("hw:1", 1), ("hw:0,0", 0), ("4", 4), (7, 7), ("pulse", 7), ("headset", 1), ("hw:10,1", 5)],
)
def test_resolve(spec: str | int, index: int) -> None:
    assert resolve_device(spec, DEVICES)["index"] == index


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hw:10", "matches 2"),
        ("hw:2", "no capture device matches"),
        ("3", "no capture device with index 3"),
        ("Loopback", "matches 2"),
    ],
)
def test_resolve_errors(spec: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        resolve_device(spec, DEVICES)


CAPTURE = """
import asyncio, json, numpy as np
from samos.monitor.sources.device import DeviceSource, input_devices
from samos.monitor.source import SourceError
async def main():
    out = {"devices": [d["name"] for d in input_devices()]}
    try:
        DeviceSource.open("samos")
    except SourceError as e:
        out["ambiguous"] = str(e)
    src = DeviceSource.open("samos_test", queue_seconds=0.2)
    await asyncio.sleep(1.0)  # let the unclocked file device overrun the 0.2 s queue before reading
    chunks = [await src.recv() for _ in range(200)]
    await src.close()
    x = np.concatenate([c.samples[:, 0] for c in chunks[:5]])
    out.update(name=src.name, rate=src.rate, shape=list(chunks[0].samples.shape), peak=float(np.abs(x).max()),
               dropped=sum(c.dropped for c in chunks), evicted=src.dropped_blocks,
               head=(x[:200] * 32768).round().astype(int).tolist())
    print(json.dumps(out))
asyncio.run(main())
"""


def test_capture_through_alsa_file_plugin(alsa_home: tuple[Path, np.ndarray]) -> None:
    home, samples = alsa_home
    env = {**os.environ, "HOME": str(home)}
    r = subprocess.run([sys.executable, "-c", CAPTURE], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "samos_test" in out["devices"] and "matches 2" in out["ambiguous"]
    assert out["name"] == "samos_test" and out["rate"] == 48_000 and out["shape"] == [960, 1]
    assert 0.2 < out["peak"] < 0.26  # the 8000/32768 tone
    # the ALSA file device is not clocked: during the 1 s pause it overruns the 0.2 s queue, so blocks
    # are evicted and counted
    assert out["evicted"] > 0 and out["dropped"] > 0
    head = np.array(out["head"])
    candidates = np.nonzero(samples[: len(samples) - 200] == head[0])[0]
    assert any(np.array_equal(samples[i : i + 200], head) for i in candidates), "not a slice of the raw file"
