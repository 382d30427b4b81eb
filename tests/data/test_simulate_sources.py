"""Indexing the installed speech collections and building utterances."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samos.data.simulate.config import SourcesConfig, UtteranceConfig
from samos.data.simulate.measure import active_level_db
from samos.data.simulate.sources import Catalog, SourceError, dialogue_text, make_utterance, synthesize

KLETTRES = "/usr/share/klettres"
FILLETS = "/usr/share/games/fillets-ng"
needs_klettres = pytest.mark.skipif(not Path(KLETTRES).is_dir(), reason="klettres-data is not installed")
needs_fillets = pytest.mark.skipif(
    not Path(FILLETS, "sound").is_dir(), reason="fillets-ng-data-cs is not installed"
)


def _tiny_collection(tmp_path: Path) -> Path:
    """A klettres-shaped folder: two 'languages' of short tone bursts at 44.1 kHz."""
    rng = np.random.default_rng(0)
    for lang in ("aa", "bb"):
        d = tmp_path / lang / "alpha"
        d.mkdir(parents=True)
        for k in range(3):
            t = np.arange(int(0.4 * 44_100)) / 44_100
            x = 0.3 * np.sin(2 * np.pi * (200 + 100 * k) * t) * np.hanning(
                len(t)
            ) + 0.001 * rng.standard_normal(len(t))
            sf.write(d / f"{k}.ogg", np.pad(x, 4410), 44_100)
    return tmp_path


def test_missing_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="klettres-data"):
        Catalog.build(SourcesConfig(klettres=str(tmp_path / "nope"), fillets=None, espeak=False))
    with pytest.raises(SourceError, match="no .ogg"):
        Catalog.build(SourcesConfig(klettres=str(tmp_path), fillets=None, espeak=False))
    with pytest.raises(SourceError, match="p835"):
        Catalog.build(
            SourcesConfig(klettres=None, fillets=None, espeak=False, p835_clean=str(tmp_path / "x"))
        )
    with pytest.raises(SourceError, match="no speech source"):
        Catalog.build(SourcesConfig(klettres=None, fillets=None, espeak=False, tuxpaint=None))


def test_utterance_is_one_talker_at_the_level_and_length(tmp_path: Path) -> None:
    root = _tiny_collection(tmp_path)
    cat = Catalog.build(
        SourcesConfig(klettres=str(root), fillets=None, espeak=False, tuxpaint=None, weights=(1, 0, 0, 0))
    )
    assert sorted(cat.talkers["klettres"]) == ["klettres-aa", "klettres-bb"]
    cfg = UtteranceConfig(seconds=(2.0, 2.5), pause=(0.1, 0.2), level_db=-26.0)
    u = make_utterance(cat, cfg, np.random.default_rng(1))
    assert 2.0 * 48_000 <= len(u.audio) <= 2.5 * 48_000
    assert u.audio.dtype == np.float32 and u.native_rate == 44_100 and u.n_units >= 3
    assert active_level_db(u.audio, 48_000) == pytest.approx(-26.0, abs=0.5)
    assert u.bandwidth_hz < 2_000  # pure tones: the measured bandwidth says so, the file rate does not
    again = make_utterance(cat, cfg, np.random.default_rng(1))
    assert np.array_equal(again.audio, u.audio) and again.talker == u.talker


@needs_klettres
@needs_fillets
def test_installed_collections_index() -> None:
    cat = Catalog.build(SourcesConfig(espeak=False, tuxpaint=None))
    assert len(cat.talkers["klettres"]) >= 15  # ~20 languages
    assert len(cat.talkers["fillets"]) >= 5  # several characters
    assert "p835" not in cat.talkers  # off by default


@needs_fillets
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_is_band_limited_speech() -> None:
    text = dialogue_text(FILLETS, "en")
    assert len(text) > 100 and all(isinstance(t, str) and t for t in text[:10])
    audio, sr = synthesize(text[0], "en")
    assert sr == 22_050 and len(audio) > sr // 2


def test_tuxpaint_descriptions_one_talker_per_language(tmp_path: Path) -> None:
    stamps = tmp_path / "stamps" / "animals"
    stamps.mkdir(parents=True)
    tone = 0.1 * np.sin(np.arange(44_100) * 0.2)
    for name in ("cat_desc_fr.ogg", "dog_desc_fr.ogg", "cat_desc_es.ogg", "cat.ogg", "cat_fr.ogg"):
        sf.write(stamps / name, tone, 44_100, format="OGG", subtype="VORBIS")
    cfg = SourcesConfig(
        klettres=None, fillets=None, espeak=False, tuxpaint=str(tmp_path / "stamps"), weights=(0, 0, 0, 0, 1)
    )
    cat = Catalog.build(cfg)
    assert {k: len(v) for k, v in cat.talkers["tuxpaint"].items()} == {"tuxpaint-es": 1, "tuxpaint-fr": 2}
    utt = make_utterance(cat, UtteranceConfig(seconds=(1.5, 2.0)), np.random.default_rng(0))
    assert utt.source == "tuxpaint" and utt.native_rate == 44_100
    # an older config's four weights leave tuxpaint out
    assert SourcesConfig(weights=(1, 0, 0, 0)).source_weights == (1, 0, 0, 0, 0)
    with pytest.raises(SourceError, match="tuxpaint-stamps-default"):
        Catalog.build(SourcesConfig(klettres=None, fillets=None, espeak=False, tuxpaint=str(tmp_path / "x")))
