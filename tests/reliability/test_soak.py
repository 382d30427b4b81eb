"""Load and soak on loopback through `samos bench soak`: a real ``monitor`` process, real aiortc
publishers (pre-encoded Opus) in their own processes, real websocket subscribers.

CI runs the short version (4 publishers x 20 subscribers x 20 s) with the tiny model of the suite,
so that what is measured is the pipeline, not inference. The full one (32 x 200 x 600 s):
``pytest -m slow tests/reliability/test_soak.py -s`` (sizes from SAMOS_SOAK_PUBLISHERS,
SAMOS_SOAK_SUBSCRIBERS, SAMOS_SOAK_SECONDS) or ``samos bench soak`` (see docs/RELIABILITY.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from samos.bench import procstat, rtp_load, soak, telephony_load, webrtc_load
from samos.monitor import osthread

WINDOW, HOP = 1.0, 0.5


def check(report: dict[str, Any]) -> None:
    print("\nsoak:", json.dumps(report))
    assert report["streams_cut_short"] == {}, report["end_reasons"]
    assert report["lost_messages"] == 0 and report["reported_dropped"] == 0
    assert report["all_ended"]
    assert report["delivered_min"] >= 0.95
    assert report["delivered_max"] <= 1.0  # no stream came out longer than its audio
    assert report["rss_growth"] < 0.10
    assert report["passed"]


async def _soak(
    model: Path,
    tmp: Path,
    publishers: int,
    subscribers: int,
    seconds: float,
    window: float = WINDOW,
    hop: float = HOP,
) -> dict[str, Any]:
    return await soak.run_soak(
        publishers=publishers,
        subscribers=subscribers,
        seconds=seconds,
        window=window,
        hop=hop,
        monitor_args=["--model", str(model), "--providers", "cpu", "--threads", "1"],
        log=tmp / "monitor.log",
        publisher_procs=max(1, publishers // 16),
    )


@pytest.mark.timeout(240)
async def test_soak_short(model_path: Path, tmp_path: Path) -> None:
    report = await _soak(model_path, tmp_path, 4, 20, 20.0)
    check(report)
    assert report["publishers"] == 4 and report["scores_received"] >= 20 * 4 * 30
    # end to end (publisher's send -> subscriber) includes the window's batching and the kernel's
    # queues: positive, and far below the seconds a backlog would show
    assert 0 < report["e2e_p50_ms"] <= report["e2e_p95_ms"] < 3000
    assert 0 < report["cpu_s_per_stream_s"] < 1.0
    lag = report["event_loop_lag"]
    assert lag is not None and lag["ticks"] > 40  # 20 s of 250 ms ticks
    # per thread: the event loop and the WebRTC decoding thread, named for the OS, did the work
    threads = report["cpu_by_thread"]
    assert threads["main"] > 0 and threads["samos-decoder"] > 0 and threads["samos-inference"] > 0, threads
    assert sum(threads.values()) == pytest.approx(report["cpu_s_per_stream_s"], abs=0.002)


@pytest.mark.timeout(120)
async def test_soak_rtp_short(model_path: Path, tmp_path: Path) -> None:
    """The same soak with plain RTP publishers (Opus over UDP to one ``--rtp`` port each), in 2 processes."""
    t0 = time.monotonic()
    report = await soak.run_soak(
        publishers=4,
        subscribers=20,
        seconds=20.0,
        window=WINDOW,
        hop=HOP,
        monitor_args=["--model", str(model_path), "--providers", "cpu", "--threads", "1"],
        log=tmp_path / "monitor.log",
        publisher_procs=2,
        ingest="rtp",
    )
    check(report)
    assert report["ingest"] == "rtp/opus"
    assert sorted(report["end_reasons"]) == ["pub-0", "pub-1", "pub-2", "pub-3"]
    expected = soak.expected_windows(20.0, WINDOW, HOP)
    assert report["scores_received"] >= 20 * 4 * expected * 0.95
    assert 0 < report["e2e_p50_ms"] <= report["e2e_p95_ms"] < 3000
    assert 0 < report["cpu_s_per_stream_s"] < 1.0
    assert time.monotonic() - t0 < 45  # 20 s of audio, the 2 s idle end, start and teardown


def test_rtp_load_packets_and_pacing() -> None:
    import socket
    import struct

    audio = (0.2 * np.sin(2 * np.pi * 300 * np.arange(48_000) / 48_000)).astype(np.float32)
    mulaw = rtp_load.payloads("pcmu", audio)
    assert len(mulaw) == 50 and {len(p) for p in mulaw} == {160}
    header = struct.pack("!BBHII", 0x80, 0, 1, 5, 7)  # sequence and timestamp wrap
    assert rtp_load.rtp_packet(0, 65537, 2**32 + 5, 7, b"xy") == header + b"xy"
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    try:
        t0 = time.monotonic()
        sent = rtp_load.send_streams([rx.getsockname()[1]], 0.1, "pcmu", audio, first=3)
        assert time.monotonic() - t0 >= 0.075  # 5 packets, 20 ms apart
        got = [rx.recv(2048) for _ in range(5)]
    finally:
        rx.close()
    assert sent["sent_seconds"] == {"pub-3": pytest.approx(0.1)} and sent["started"]["pub-3"] >= t0
    heads = [struct.unpack("!BBHII", g[:12]) for g in got]
    assert [h[2] for h in heads] == [0, 1, 2, 3, 4] and [h[3] for h in heads] == [0, 160, 320, 480, 640]
    assert len({h[4] for h in heads}) == 1 and got[1][12:] == mulaw[1]


def test_rtp_specs_name_every_publisher_on_its_own_port() -> None:
    ports = soak.free_udp_ports(3)
    assert len(set(ports)) == 3
    assert soak.rtp_specs(ports[:2], "pcmu") == [
        "--rtp",
        f"pub-0=127.0.0.1:{ports[0]},codec=pcmu,idle=2",
        "--rtp",
        f"pub-1=127.0.0.1:{ports[1]},codec=pcmu,idle=2",
    ]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("ingest", ["twilio", "pcm"])
async def test_soak_telephony_short(ingest: str, model_path: Path, tmp_path: Path) -> None:
    """Telephony websocket publishers (Twilio Media Streams JSON, or L16 frames) through the same soak."""
    report = await soak.run_soak(
        publishers=3,
        subscribers=10,
        seconds=10.0,
        window=WINDOW,
        hop=HOP,
        monitor_args=["--model", str(model_path), "--providers", "cpu", "--threads", "1"],
        log=tmp_path / "monitor.log",
        publisher_procs=1,
        token="soak-token",
        ingest=ingest,
    )
    check(report)
    assert report["ingest"] == ingest and sorted(report["end_reasons"]) == ["pub-0", "pub-1", "pub-2"]
    assert 0 < report["e2e_p50_ms"] <= report["e2e_p95_ms"] < 3000


def test_telephony_messages_are_what_the_monitor_parses() -> None:
    from samos.monitor.sources.telephony import PcmCall, TwilioCall

    audio = (0.2 * np.sin(2 * np.pi * 300 * np.arange(48_000) / 48_000)).astype(np.float32)
    call = TwilioCall()
    connected, start = telephony_load.twilio_start("MZ1", "pub-7", "tok")
    assert call.on_text(connected) is None and call.on_text(start) == "start"
    assert call.parameters == {"name": "pub-7", "token": "tok"}
    payload = base64.b64encode(rtp_load.payloads("pcmu", audio)[0]).decode()
    got = [call.on_text(telephony_load.twilio_media("MZ1", k + 2, k + 1, payload)) for k in range(3)]
    assert [len(a.samples) for a in got] == [160] * 3 and sum(a.dropped for a in got) == 0
    assert call.stats.out_of_order == 0
    frames = telephony_load.pcm_frames(audio)
    assert len(frames) == 50 and {len(f) for f in frames} == {640}  # 20 ms of 16 kHz 16-bit
    pcm = PcmCall(telephony_load.PCM_RATE)
    assert len(pcm.on_binary(frames[0]).samples) == 320


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_soak_full(tmp_path: Path) -> None:
    from samos.bench.level_model import make_level_model

    env = os.environ.get
    check(
        await _soak(
            make_level_model(tmp_path / "level4.onnx", window_seconds=4.0),
            tmp_path,
            publishers=int(env("SAMOS_SOAK_PUBLISHERS", "32")),
            subscribers=int(env("SAMOS_SOAK_SUBSCRIBERS", "200")),
            seconds=float(env("SAMOS_SOAK_SECONDS", "600")),
            window=4.0,  # the monitor's defaults (configs/monitor.yaml), as `samos bench soak` runs it
            hop=1.0,
        )
    )


async def test_opus_packets_replay_paced_and_end() -> None:
    from aiortc.mediastreams import MediaStreamError

    audio = (0.2 * np.sin(2 * np.pi * 300 * np.arange(48_000) / 48_000)).astype(np.float32)
    packets = webrtc_load.encode_opus(audio)
    assert 50 <= len(packets) <= 52  # 1 s of 20 ms frames, plus the encoder's flush
    assert all(0 < len(p) < 400 for p in packets)
    track = webrtc_load.OpusReplayTrack(packets[:3], seconds=0.1)  # loops over its 3 packets
    t0 = time.monotonic()
    got = [await track.recv() for _ in range(5)]
    assert time.monotonic() - t0 >= 0.075  # the 5th packet is due 80 ms after the first
    assert [p.pts for p in got] == [0, 960, 1920, 2880, 3840]
    assert bytes(got[3]) == packets[0] and track.sent == 5
    with pytest.raises(MediaStreamError):
        await track.recv()


def test_side_by_side_prints_both_runs_and_their_ratios() -> None:
    stock = {
        "delivered_min": 0.5,
        "e2e_p95_ms": 8000.0,
        "rss_growth": -0.01,
        "passed": False,
        "event_loop_lag": {"over_0_1_s": 0.02, "over_0_5_s": 0.0},
    }
    ours = {
        "delivered_min": 1.0,
        "e2e_p95_ms": 500.0,
        "rss_growth": 0.01,
        "passed": True,
        "event_loop_lag": None,
    }
    rows = {line.split()[0]: line.split()[1:] for line in soak.side_by_side(stock, ours).splitlines()[1:]}
    assert rows["delivered_min"] == ["0.5", "1", "2.00"]
    assert rows["e2e_p95_ms"] == ["8000", "500", "0.06"]
    assert rows["rss_growth"][-1] == "-"  # a ratio of two small signed growths means nothing
    assert rows["passed"] == ["False", "True"]


def test_lag_summary_counts_late_ticks_between_snapshots() -> None:
    before = {"0.1": 10.0, "0.5": 10.0, "+Inf": 10.0}
    after = {"0.1": 16.0, "0.5": 18.0, "+Inf": 20.0}  # 10 new ticks: 4 over 0.1 s, 2 of them over 0.5 s
    assert soak.lag_summary(before, after) == {"ticks": 10.0, "over_0_1_s": 0.4, "over_0_5_s": 0.2}
    assert soak.lag_summary(None, after) is None
    assert soak.lag_summary(after, after) is None


def test_expected_windows_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert soak.expected_windows(10.0, 4.0, 1.0) == 7
    assert soak.expected_windows(10.6, 4.0, 1.0) == 8  # 0.6 s after the last window: a final one
    assert soak.expected_windows(2.0, 4.0, 1.0) == 1
    assert soak.expected_windows(0.5, 4.0, 1.0) == 0
    p = argparse.ArgumentParser()
    soak.add_arguments(p)
    assert soak.run(p.parse_args(["--publishers", "0"])) == 2
    assert "need publishers" in capsys.readouterr().err


def test_the_monitor_log_goes_to_the_temp_folder_not_the_working_directory() -> None:
    import tempfile

    p = argparse.ArgumentParser()
    soak.add_arguments(p)
    log = p.parse_args([]).log
    assert log.is_absolute() and log.parent == Path(tempfile.gettempdir()), log


@pytest.mark.timeout(60)
async def test_a_child_that_keeps_printing_is_drained_and_never_blocks() -> None:
    """What stopped the first 32 x 600 s RTP soak: the monitor's stdout was read only up to its
    banner. A real child prints a line, then 4 MB; with ``discard`` reading the rest it exits."""
    import asyncio
    import sys

    code = "import sys; print('banner', flush=True); sys.stdout.write('x' * 4_000_000); sys.stdout.flush()"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    assert await proc.stdout.readline() == b"banner\n"
    drain = asyncio.create_task(soak.discard(proc.stdout))
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    await asyncio.wait_for(drain, 5)


def _burn_named(seconds: float) -> None:
    """Give the calling thread its Python name as its OS name, then spend ``seconds`` of its CPU."""
    osthread.name_current()
    t_end = time.thread_time() + seconds
    while time.thread_time() < t_end:
        pass


def test_thread_cpu_is_read_per_named_thread_and_the_rest_is_other() -> None:
    """``ThreadCpu`` sums /proc's counters by OS thread name (``main`` for the main thread);
    ``by_thread`` turns them into CPU-s per stream-second and puts what no named thread spent under
    ``other``."""
    done = threading.Event()
    tracker = procstat.ThreadCpu(os.getpid())

    def spin() -> None:
        _burn_named(0.3)
        done.wait()

    th = threading.Thread(target=spin, name="samos-spin")
    th.start()
    time.sleep(0.05)
    while th.is_alive() and tracker.by_name().get("samos-spin", 0.0) < 0.25:
        time.sleep(0.05)
    seen = tracker.by_name()
    done.set()
    th.join()
    assert seen["samos-spin"] >= 0.25 and "main" in seen
    assert procstat.by_thread(10.0, {"main": 4.0, "samos-decoder": 2.0, "tiny": 0.0001}, 100.0) == {
        "main": 0.04,
        "samos-decoder": 0.02,
        "other": 0.04,
    }


def test_a_thread_that_ends_before_the_last_reading_keeps_its_name() -> None:
    """``ThreadCpu`` reads while the process runs, so a named thread that ended before the end (the
    monitor's decoding thread stops with the last WebRTC stream) is counted under its name, not as
    ``other``; threads alive at the start count only what they spent since."""
    before = procstat.thread_readings(os.getpid())
    assert os.getpid() in before and before[os.getpid()][0] == "main"
    tracker = procstat.ThreadCpu(os.getpid())
    spun, release = threading.Event(), threading.Event()

    def spin() -> None:
        _burn_named(0.3)
        spun.set()
        release.wait(10)

    th = threading.Thread(target=spin, name="samos-ended")
    th.start()
    assert spun.wait(10)
    tracker.sample()  # read while it runs
    release.set()
    th.join()
    for _ in range(100):  # until the OS has let the thread go too
        if all(name != "samos-ended" for name, _ in procstat.thread_readings(os.getpid()).values()):
            break
        time.sleep(0.02)
    spent = tracker.by_name()
    assert 0.25 <= spent["samos-ended"] < 1.0
    assert 0.0 <= spent["main"] < 5.0  # since the tracker began, not since the process did


def test_thread_cpu_counts_a_reused_thread_id_as_two_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread id that a new thread takes over (its counter falls) keeps the old thread's CPU under
    the old name: from the start for a thread alive then, from 0 for one born later."""
    readings = iter(
        [
            {1: ("main", 1.0), 7: ("samos-decoder", 5.0)},  # at construction
            {1: ("main", 2.0), 7: ("samos-decoder", 6.0), 9: ("late", 0.4)},
            {1: ("main", 3.0), 7: ("new", 0.5), 9: ("later", 0.1)},  # both ids taken by new threads
        ]
    )
    monkeypatch.setattr(procstat, "thread_readings", lambda pid: next(readings))
    tracker = procstat.ThreadCpu(123)
    tracker.sample()
    spent = tracker.by_name()
    assert spent == pytest.approx({"main": 2.0, "samos-decoder": 1.0, "new": 0.5, "late": 0.4, "later": 0.1})
