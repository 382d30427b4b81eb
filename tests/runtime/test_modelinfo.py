"""Model metadata: build -> parse round trip and clear errors for incompatible files."""

from __future__ import annotations

import pytest

from samos.runtime.modelinfo import (
    FORMAT_VERSION,
    KEY_CALIBRATION,
    KEY_CONFIG,
    KEY_FORMAT,
    KEY_MEMBERS,
    KEY_PRECISION,
    KEY_WINDOW_SECONDS,
    Calibration,
    ModelFileError,
    build_metadata,
    file_sha256,
    parse_metadata,
)


def _meta(**kw: object) -> dict[str, str]:
    args: dict[str, object] = dict(
        version="0.1.0",
        config={"ssl": {"layer": 8}},
        ssl_rate=16_000,
        spec_rate=48_000,
        n_fft=320,
        hop=160,
        weights_sha256="ab" * 32,
        calibration=Calibration(1.05, -0.1),
        min_seconds=0.5,
        window_seconds=8.0,
        precision="fp16",
        extra={"samos.name": "demo"},
    )
    args.update(kw)
    return build_metadata(**args)  # type: ignore[arg-type]


def test_round_trip() -> None:
    meta = _meta()
    assert all(isinstance(v, str) for v in meta.values())
    info = parse_metadata(meta, inputs=("wave16", "wave48"))
    assert info.format == FORMAT_VERSION
    assert info.config == {"ssl": {"layer": 8}}
    assert info.calibration == Calibration(1.05, -0.1)
    assert (info.min_seconds, info.window_seconds, info.precision) == (0.5, 8.0, "fp16")
    assert (info.min_samples16, info.window_samples16, info.rate_ratio) == (8000, 128_000, 3)
    assert info.extra == {"samos.name": "demo"}
    assert info.inputs == ("wave16", "wave48")
    assert info.members == 1  # no samos.members: one model
    assert parse_metadata(_meta(extra={KEY_MEMBERS: "2"})).members == 2


def test_not_a_samos_model() -> None:
    meta = _meta()
    del meta[KEY_FORMAT]
    with pytest.raises(ModelFileError, match="not a samos model"):
        parse_metadata(meta)


def test_wrong_format_version() -> None:
    with pytest.raises(ModelFileError, match="format '99' is not supported"):
        parse_metadata({**_meta(), KEY_FORMAT: "99"})


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        (KEY_CONFIG, "{not json", "bad JSON"),
        (KEY_CALIBRATION, '{"scale": 1}', "bad JSON"),
        (KEY_WINDOW_SECONDS, "ten", "not a valid float"),
        (KEY_WINDOW_SECONDS, "0.1", "window_seconds 0.1 < min_seconds"),
        (KEY_PRECISION, "int4", "precision"),
        (KEY_MEMBERS, "0", "samos.members='0' must be a positive integer"),
        (KEY_MEMBERS, "two", "must be a positive integer"),
    ],
)
def test_bad_values(key: str, value: str, match: str) -> None:
    with pytest.raises(ModelFileError, match=match):
        parse_metadata({**_meta(), key: value})


def test_missing_key_is_named() -> None:
    meta = _meta()
    del meta[KEY_CALIBRATION]
    with pytest.raises(ModelFileError, match="samos.calibration"):
        parse_metadata(meta)


def test_build_rejects_unknown_precision() -> None:
    with pytest.raises(ValueError, match="precision"):
        _meta(precision="bf16")


def test_file_sha256(tmp_path) -> None:  # noqa: ANN001
    p = tmp_path / "x.bin"
    p.write_bytes(b"abc")
    assert file_sha256(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
