from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from samos.config import ConfigError, dump_yaml
from samos.monitor.cli import add_arguments, build_config, split_name
from samos.monitor.config import DEFAULT_CONFIG, MonitorConfig, WindowConfig, load_config, parse_hostport


def test_shipped_yaml_is_the_defaults() -> None:
    assert DEFAULT_CONFIG.is_file()
    assert load_config(DEFAULT_CONFIG) == MonitorConfig()


def test_strict_loading(tmp_path: Path) -> None:
    p = tmp_path / "m.yaml"
    p.write_text("window:\n  window_secs: 3\n")
    with pytest.raises(ConfigError, match="window.window_secs"):
        load_config(p)
    p.write_text("window:\n  hop_seconds: 9\n")
    with pytest.raises(ConfigError, match="hop_seconds"):
        load_config(p)
    p.write_text(dump_yaml(MonitorConfig(window=WindowConfig(window_seconds=2.0, hop_seconds=0.25))))
    assert load_config(p).window.hop_seconds == 0.25


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        (":9000", ("127.0.0.1", 9000)),
        ("8765", ("127.0.0.1", 8765)),
        ("[::1]:81", ("::1", 81)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


@pytest.mark.parametrize("text", ["host:port", "h:70000"])
def test_parse_hostport_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_hostport(text)


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def test_flags_override_the_yaml() -> None:
    cfg = build_config(
        parse(
            "--ws",
            "0.0.0.0:9001",
            "--webrtc",
            ":8443",
            "--window",
            "2",
            "--hop",
            "0.5",
            "--no-realtime",
            "--loop",
            "--token",
            "t",
            "--providers",
            "cpu",
            "--threads",
            "2",
        )
    )
    assert (cfg.ws.host, cfg.ws.port) == ("0.0.0.0", 9001) and cfg.http.enabled and cfg.http.port == 8443
    assert (cfg.window.window_seconds, cfg.window.hop_seconds) == (2.0, 0.5)
    assert not cfg.source.realtime and cfg.source.loop and cfg.auth.token == "t"
    assert cfg.worker.providers == ("cpu",) and cfg.worker.threads == 2
    assert not cfg.exit_when_done  # WebRTC ingest keeps the monitor up
    assert build_config(parse()) == load_config(None)
    with pytest.raises(ConfigError):
        build_config(parse("--window", "1", "--hop", "2"))


def test_split_name() -> None:
    assert split_name("desk=hw:1") == ("desk", "hw:1")
    assert split_name("/tmp/a=b.wav") == (None, "/tmp/a=b.wav")
    assert split_name("http://x/y?a=b") == (None, "http://x/y?a=b")
    assert split_name("radio=http://x/y?a=b") == ("radio", "http://x/y?a=b")


def _cli_config(*argv: str) -> MonitorConfig:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return build_config(p.parse_args(["--file", "x.wav", *argv]))


def test_alert_thresholds_from_the_command_line() -> None:
    default = _cli_config().alerts
    assert default == MonitorConfig().alerts  # flags not given: the config's values
    got = _cli_config("--alert-below", "3.1", "--alert-for", "12", "--no-speech-alert", "8").alerts
    assert (got.threshold, got.min_duration_seconds, got.no_speech_seconds) == (3.1, 12.0, 8.0)
    assert got.hysteresis == default.hysteresis
    assert got.clear_unscored_seconds == default.clear_unscored_seconds


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (("--alert-below", "0.5"), "alerts.threshold must be a MOS in"),
        (("--alert-for", "-1"), "min_duration_seconds must be >= 0"),
        (("--no-speech-alert", "0"), "no_speech_seconds must be > 0"),
    ],
)
def test_bad_alert_flags_are_one_line_errors(argv: tuple[str, ...], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _cli_config(*argv)


def test_alert_yaml_keys(tmp_path: Path) -> None:
    p = tmp_path / "m.yaml"
    p.write_text("alerts:\n  threshold: 3.0\n  clear_unscored_seconds: null\n  no_speech_seconds: null\n")
    a = load_config(p).alerts
    assert (a.threshold, a.clear_unscored_seconds, a.no_speech_seconds) == (3.0, None, None)


def test_config_does_not_import_the_backends() -> None:
    """No import circle: backends.py needs the config; the config parses ``backend`` itself."""
    import subprocess
    import sys

    code = "import sys, samos.monitor.config; sys.exit('samos.monitor.backends' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
    import samos.monitor.backends as backends
    import samos.monitor.config as config

    assert backends.parse_backend is config.parse_backend


def test_webrtc_batch_yaml_key(tmp_path: Path) -> None:
    p = tmp_path / "m.yaml"
    p.write_text("http:\n  webrtc_batch_seconds: 0.05\n")
    assert load_config(p).http.webrtc_batch_seconds == 0.05
    assert MonitorConfig().http.webrtc_batch_seconds == 0.1
    for bad in ("0", "2.0"):
        p.write_text(f"http:\n  webrtc_batch_seconds: {bad}\n")
        with pytest.raises(ConfigError, match=r"http.webrtc_batch_seconds must be in \[0.01, 1\] s"):
            load_config(p)
