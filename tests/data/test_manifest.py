"""Manifest readers and up-front validation, on small generated files with each quirk."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samos.data.manifest import (
    Item,
    ManifestError,
    audiomos_condition,
    read_manifest,
    read_manifests,
    sniff_format,
    validate,
    write_manifest,
)

RATES = (8000, 11025, 16000, 22050, 24000, 44100, 48000)
P835 = Path("/work/shared/data/p835")


def tone(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.stack([x, 0.5 * x], axis=1) if channels == 2 else x


@pytest.fixture()
def quirky(tmp_path: Path) -> Path:
    """A generic manifest: every rate, stereo, 0.2 s and 40 s clips, NaN label, missing and corrupt files."""
    rows = ["path,mos,std,condition"]
    for sr in RATES:
        sf.write(tmp_path / f"r{sr}.wav", tone(0.5, sr), sr)
        rows.append(f"r{sr}.wav,{1 + sr / 12000:.3f},0.5,rate{sr}")
    sf.write(tmp_path / "stereo.wav", tone(0.5, 16000, channels=2), 16000)
    rows.append("stereo.wav,3.0,,stereo")
    sf.write(tmp_path / "short.wav", tone(0.2, 16000), 16000)
    rows.append("short.wav,2.5,,short")
    sf.write(tmp_path / "long.wav", tone(40.0, 8000), 8000, subtype="PCM_16")
    rows.append("long.wav,4.0,,long")
    sf.write(tmp_path / "nan.wav", tone(0.5, 16000), 16000)
    rows.append("nan.wav,nan,,bad")
    rows.append("gone.wav,3.0,,bad")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(200))
    rows.append("corrupt.wav,3.0,,bad")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "m.csv"


def test_generic_reader_skips_bad_rows_and_validate_reports_files(quirky: Path) -> None:
    m = read_manifest(quirky)
    assert sniff_format(quirky) == "generic"
    assert len(m) == len(RATES) + 3 + 2  # NaN label dropped at read time, missing/corrupt still listed
    assert m.skipped.counts == {"bad_label": 1}

    v = validate(m)
    assert len(v) == len(RATES) + 3
    assert v.skipped.counts == {"bad_label": 1, "missing_file": 1, "unreadable": 1}
    summary = v.skipped.summary(of=len(v) + v.skipped.total)
    assert "missing_file: 1" in summary and "gone.wav" in summary
    assert "unreadable: 1" in summary and "corrupt.wav" in summary
    assert "nan.wav" in summary
    by_name = {it.path.name: it for it in v}
    for sr in RATES:
        assert by_name[f"r{sr}.wav"].sr == sr
        assert by_name[f"r{sr}.wav"].condition == f"rate{sr}"
    assert by_name["long.wav"].seconds == pytest.approx(40.0)
    assert by_name["short.wav"].seconds == pytest.approx(0.2)
    assert by_name["stereo.wav"].std is None and by_name["r8000.wav"].std == 0.5


def test_validate_without_probe_only_checks_existence(quirky: Path) -> None:
    v = validate(read_manifest(quirky), probe=False)
    assert v.skipped.counts == {"bad_label": 1, "missing_file": 1}
    assert any(it.path.name == "corrupt.wav" for it in v)


def test_root_overrides_csv_folder(quirky: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "lists"
    elsewhere.mkdir()
    moved = elsewhere / "m.csv"
    moved.write_text(quirky.read_text())
    assert validate(read_manifest(moved)).skipped.counts["missing_file"] == len(RATES) + 5
    assert len(validate(read_manifest(moved, root=tmp_path))) == len(RATES) + 3


def test_nisqa_corpus_csv(tmp_path: Path) -> None:
    corpus = tmp_path / "NISQA_Corpus"
    split = corpus / "NISQA_TRAIN_SIM"
    (split / "deg").mkdir(parents=True)
    for name in ("c00001_a.wav", "c00002_b.wav"):
        sf.write(split / "deg" / name, tone(0.5, 48000), 48000)
    (split / "NISQA_TRAIN_SIM_file.csv").write_text(
        "db,con,file,filename_deg,filename_ref,mos,mos_std,votes,filepath_deg,filepath_ref\n"
        "NISQA_TRAIN_SIM,1,1,c00001_a.wav,r.wav,3.2,0.9,5,NISQA_TRAIN_SIM/deg/c00001_a.wav,NISQA_TRAIN_SIM/ref/r.wav\n"
        "NISQA_TRAIN_SIM,2,2,c00002_b.wav,r.wav,1.8,1.1,5,NISQA_TRAIN_SIM/deg/c00002_b.wav,NISQA_TRAIN_SIM/ref/r.wav\n"
    )
    csv_path = split / "NISQA_TRAIN_SIM_file.csv"
    assert sniff_format(csv_path) == "nisqa"
    m = validate(read_manifest(csv_path))  # root: the corpus folder, found from the CSV's place
    assert [it.mos for it in m] == [3.2, 1.8]
    assert m[0].std == 0.9 and m[0].db == "NISQA_TRAIN_SIM" and m[0].condition == "NISQA_TRAIN_SIM/1"
    assert not m.skipped
    m2 = validate(read_manifest(csv_path, root=corpus, format="nisqa"))
    assert len(m2) == 2


def test_nisqa_without_filepath_column_uses_db_and_filename(tmp_path: Path) -> None:
    (tmp_path / "NISQA_VAL_LIVE" / "deg").mkdir(parents=True)
    sf.write(tmp_path / "NISQA_VAL_LIVE" / "deg" / "x.wav", tone(0.5, 48000), 48000)
    (tmp_path / "val.csv").write_text("db,filename_deg,mos\nNISQA_VAL_LIVE,x.wav,2.7\n")
    m = validate(read_manifest(tmp_path / "val.csv"))
    assert len(m) == 1 and m[0].mos == 2.7


def _audiomos_tree(tmp_path: Path) -> Path:
    data = tmp_path / "track3_obf" / "DATA"
    (data / "wav").mkdir(parents=True)
    for utt, sr in (
        ("audiomos-track3-16k_sys1_utt01", 16000),
        ("audiomos-track3-24k_sys2_utt01", 24000),
        ("audiomos-track3-48k_sys3_utt02", 48000),
    ):
        sf.write(data / "wav" / f"{utt}.wav", tone(0.5, sr), sr)
    return data


def test_audiomos_per_listener_ratings_are_averaged(tmp_path: Path) -> None:
    data = _audiomos_tree(tmp_path)
    (data / "utt_16k.csv").write_text(
        "uttID,lisID,rating\n"
        "audiomos-track3-16k_sys1_utt01.wav,L01,4\n"
        "audiomos-track3-16k_sys1_utt01.wav,L02,2\n"
        "audiomos-track3-16k_sys1_utt01.wav,L03,3\n"
        "audiomos-track3-24k_sys2_utt01,L01,5\n"
    )
    assert sniff_format(data / "utt_16k.csv") == "audiomos"
    m = validate(read_manifest(data / "utt_16k.csv"))
    assert len(m) == 2 and not m.skipped
    first = m[0]
    assert first.mos == pytest.approx(3.0) and first.std == pytest.approx(1.0)
    assert first.fields["n_votes"] == "3"
    assert first.condition == "audiomos-track3-16k_sys1"
    assert m[1].path.name == "audiomos-track3-24k_sys2_utt01.wav" and m[1].sr == 24000


def test_audiomos_headerless_list_and_sys_table(tmp_path: Path) -> None:
    data = _audiomos_tree(tmp_path)
    (data / "train_mos_list.txt").write_text(
        "audiomos-track3-48k_sys3_utt02.wav,3.75\naudiomos-track3-16k_sys1_utt01.wav,nan\n"
    )
    m = validate(read_manifest(data / "train_mos_list.txt"))
    assert [it.mos for it in m] == [3.75]
    assert m.skipped.counts == {"bad_label": 1}
    (data / "train.csv").write_text("sysID,uttID,rating\nsysA,audiomos-track3-16k_sys1_utt01.wav,2.5\n")
    m2 = validate(read_manifest(data / "train.csv", format="audiomos"))
    assert len(m2) == 1 and m2[0].condition == "sysA"


def test_audiomos_condition_parsing() -> None:
    assert audiomos_condition("audiomos-track3-16k_sys1_utt31") == "audiomos-track3-16k_sys1"
    assert audiomos_condition("sys64e2f-utt491a78a.wav") == "sys64e2f"


def test_tencent_csv_finds_audio_next_to_it(tmp_path: Path) -> None:
    folder = tmp_path / "withReverberationTrainDev"
    folder.mkdir()
    sf.write(folder / "a.wav", tone(0.5, 16000), 16000)
    sf.write(folder / "b.wav", tone(0.5, 16000), 16000)
    csv_path = tmp_path / "withReverberationTrainDevMOS.csv"
    csv_path.write_text("deg_wav,mos\n/somewhere/else/a.wav,3.1\nb.wav,2.2\nc.wav,4.0\n")
    assert sniff_format(csv_path) == "tencent"
    m = validate(read_manifest(csv_path))
    assert [it.mos for it in m] == [3.1, 2.2]
    assert m.skipped.counts == {"missing_file": 1}


def test_errors_are_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "none.csv")
    (tmp_path / "odd.csv").write_text("a,b,c\n1,x,y\n")
    with pytest.raises(ManifestError, match="cannot tell"):
        read_manifest(tmp_path / "odd.csv")
    with pytest.raises(ManifestError, match="unknown manifest format"):
        read_manifest(tmp_path / "odd.csv", format="nope")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ManifestError, match="empty"):
        read_manifest(tmp_path / "empty.csv")


def test_concat_and_write_roundtrip(quirky: Path, tmp_path: Path) -> None:
    m = read_manifests([quirky, quirky])
    assert len(m) == 2 * (len(RATES) + 5) and m.skipped.counts["bad_label"] == 2
    out = write_manifest(tmp_path / "out" / "w.csv", validate(m).items)
    again = read_manifest(out)
    assert len(again) == 2 * (len(RATES) + 3)
    assert all(math.isfinite(it.mos) for it in again)


def test_write_keeps_paths_outside_the_csv_folder_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # items read relative to the working directory, written to a CSV in another folder
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", np.zeros(1600, np.float32), 16000)
    monkeypatch.chdir(tmp_path)
    out = write_manifest(tmp_path / "runs" / "m.csv", [Item(Path("audio/a.wav"), 3.0)])
    again = validate(read_manifest(out))
    assert len(again) == 1 and again[0].path.samefile(tmp_path / "audio" / "a.wav")


@pytest.mark.skipif(not P835.is_dir(), reason="the shared P.835 folder is not on this machine")
def test_real_p835_manifests() -> None:
    fb = validate(read_manifest(P835 / "fb48k.csv"))
    assert len(fb) == 78 and not fb.skipped and all(it.sr == 48000 for it in fb)
    wb = validate(read_manifest(P835 / "wb16k.csv"))
    assert len(wb) == 78 and {it.sr for it in wb} == {16000, 48000}
    with pytest.raises(ManifestError):  # condition-level only: no per-file label column
        read_manifest(P835 / "nb8k_condition_level.csv")


def test_pyav_fallback_probes_formats_soundfile_cannot_read(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    path = tmp_path / "clip.m4a"
    x = tone(2.0, 24000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=24000)
        stream.layout = "mono"
        for i in range(0, len(x), 1024):
            frame = av.AudioFrame.from_ndarray(x[None, i : i + 1024], format="flt", layout="mono")
            frame.sample_rate = 24000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    (tmp_path / "m.csv").write_text("path,mos\nclip.m4a,3.3\n")
    (item,) = validate(read_manifest(tmp_path / "m.csv")).items
    assert item.sr == 24000 and item.seconds == pytest.approx(2.0, abs=0.1)
