"""The telephony wire formats message by message (no network): Twilio Media Streams and raw PCM
(mod_audio_fork, chan_websocket), including out-of-order and malformed messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from telephony_peers import (
    asterisk_media_start,
    l16le_frames,
    mulaw,
    twilio_call,
    twilio_media,
    twilio_start,
)

from samos.monitor.sources.telephony import Audio, CallError, PcmCall, TwilioCall, parse_control


def tone8k(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_a_twilio_call_decodes_to_the_sent_audio() -> None:
    audio = tone8k(1.0)
    call = TwilioCall()
    results = [call.on_text(m) for m in twilio_call(audio, {"name": "agent7", "token": "t"})]
    assert results[0] is None and results[1] == "start" and results[-1] == "stop"
    got = np.concatenate([r.samples for r in results if isinstance(r, Audio)])
    assert len(got) == len(audio) and np.corrcoef(got, audio)[0, 1] > 0.999  # mu-law is lossy
    assert call.parameters == {"name": "agent7", "token": "t"} and call.stream_sid is not None
    assert call.stats.media == 50 and call.stats.lost_samples == 0


def test_missing_twilio_chunks_are_lost_audio_at_their_place() -> None:
    call = TwilioCall()
    results = [call.on_text(m) for m in twilio_call(tone8k(1.0), skip={10, 11, 30})]
    audio = [r for r in results if isinstance(r, Audio)]
    assert [a.dropped for a in audio if a.dropped] == [320, 160]
    assert call.stats.lost_samples == 480 and sum(len(a.samples) + a.dropped for a in audio) == 8000


def test_out_of_order_and_malformed_twilio_messages_are_refused() -> None:
    call = TwilioCall()
    payload = mulaw(tone8k(0.02))
    with pytest.raises(CallError) as e:
        call.on_text(twilio_media(2, 1, 0, payload))  # media before start
    assert e.value.reason == "before_start"
    for bad in ("{not json", "[1, 2]", json.dumps({"no": "event"}), json.dumps({"event": "party"})):
        with pytest.raises(CallError) as e:
            call.on_text(bad)
        assert e.value.reason == "malformed"
    assert call.on_text(twilio_start()) == "start"
    with pytest.raises(CallError) as e:
        call.on_text(twilio_start())
    assert e.value.reason == "out_of_order"
    assert isinstance(call.on_text(twilio_media(3, 1, 0, payload)), Audio)
    assert isinstance(call.on_text(twilio_media(4, 2, 20, payload)), Audio)
    with pytest.raises(CallError) as e:
        call.on_text(twilio_media(5, 1, 0, payload))  # replayed: behind the audio received
    assert e.value.reason == "out_of_order"
    bad_b64 = json.loads(twilio_media(6, 3, 40, payload))
    bad_b64["media"]["payload"] = "***"
    with pytest.raises(CallError, match="base64"):
        call.on_text(json.dumps(bad_b64))
    assert call.on_text(twilio_media(7, 3, 40, payload, track="outbound")) is None
    assert call.stats.other_track == 1 and call.stats.media == 2


def test_a_twilio_start_with_another_format_is_unsupported() -> None:
    with pytest.raises(CallError) as e:
        TwilioCall().on_text(twilio_start(encoding="audio/x-l16", sampleRate=16000))
    assert e.value.reason == "unsupported"


def test_pcm_frames_split_anywhere_decode_exactly() -> None:
    rate = 16_000
    audio = (0.2 * np.sin(np.arange(rate) * 0.05)).astype(np.float32)
    raw = b"".join(l16le_frames(audio, rate))
    call = PcmCall(rate)
    assert call.on_text(json.dumps({"callId": "abc", "from": "+1555"})) is None  # mod_audio_fork metadata
    pieces, i = [], 0
    for size in (1, 639, 3, 1000, 641):  # not aligned to samples
        pieces.append(call.on_binary(raw[i : i + size]).samples)
        i += size
    pieces.append(call.on_binary(raw[i:]).samples)
    got = np.concatenate(pieces)
    assert np.array_equal(got, (np.clip(audio, -1, 1) * 32767).astype(np.int16) / np.float32(32768))


def test_stereo_pcm_keeps_both_channels() -> None:
    stereo = np.stack([np.full(160, 0.5), np.full(160, -0.25)], axis=1).astype(np.float32)
    out = PcmCall(8000, channels=2).on_binary(l16le_frames(stereo, 8000, channels=2)[0]).samples
    assert (
        out.shape == (160, 2)
        and np.allclose(out[:, 0], 0.5, atol=1e-4)
        and np.allclose(out[:, 1], -0.25, atol=1e-4)
    )


@pytest.mark.parametrize("json_form", [False, True])
def test_asterisk_media_start_sets_the_format(json_form: bool) -> None:
    call = PcmCall(None)
    with pytest.raises(CallError) as e:
        call.on_binary(b"\x00\x00" * 320)  # audio before MEDIA_START
    assert e.value.reason == "before_start"
    assert call.on_text(asterisk_media_start("slin16", json_form)) == "format"
    assert (call.encoding, call.rate) == ("l16le", 16_000)
    assert len(call.on_binary(b"\x00\x00" * 320).samples) == 320
    with pytest.raises(CallError) as e:
        call.on_text(asterisk_media_start("ulaw", json_form))  # the format cannot change now
    assert e.value.reason == "out_of_order"
    assert call.on_text("MEDIA_XOFF") is None and call.on_text("HANGUP") == "hangup"


def test_asterisk_ulaw_and_unsupported_formats() -> None:
    call = PcmCall(None)
    assert call.on_text(asterisk_media_start("ulaw", frame=160)) == "format"
    assert len(call.on_binary(mulaw(tone8k(0.02))).samples) == 160
    with pytest.raises(CallError) as e:
        PcmCall(None).on_text(asterisk_media_start("opus"))
    assert e.value.reason == "unsupported"


def test_parse_control_forms() -> None:
    assert parse_control("MEDIA_START connection_id:x format:slin16 ptime:20") == (
        "MEDIA_START",
        {"connection_id": "x", "format": "slin16", "ptime": "20"},
    )
    assert parse_control('{"event": "MEDIA_XOFF", "channel_id": "1"}')[0] == "MEDIA_XOFF"
    for bad in ("", "{broken", "   "):
        with pytest.raises(CallError):
            parse_control(bad)


def test_bad_construction_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        PcmCall(4000)
    with pytest.raises(ValueError):
        PcmCall(8000, encoding="mp3")
    with pytest.raises(ValueError):
        TwilioCall(track="all")


def test_a_bogus_twilio_timestamp_jump_is_followed_not_counted_as_loss() -> None:
    call = TwilioCall()
    payload = mulaw(tone8k(0.02))
    call.on_text(twilio_start())
    call.on_text(twilio_media(2, 1, 0, payload))
    audio = call.on_text(twilio_media(3, 2, 99_999_999_999, payload))
    assert isinstance(audio, Audio) and audio.dropped == 0
    assert call.stats.resyncs == 1 and call.stats.lost_samples == 0
    assert call.on_text(twilio_media(4, 3, 99_999_999_999 + 40, payload)).dropped == 160  # type: ignore[union-attr]


def test_both_twilio_tracks_each_keep_their_own_clock() -> None:
    call = TwilioCall()
    payload = mulaw(tone8k(0.02))
    call.on_text(twilio_start(parameters={"track": "both"}))
    assert call.tracks == ("inbound", "outbound")
    got = [
        call.on_text(twilio_media(2, 1, 0, payload, track="inbound")),
        call.on_text(twilio_media(3, 1, 0, payload, track="outbound")),
        call.on_text(twilio_media(4, 2, 20, payload, track="inbound")),
        call.on_text(twilio_media(5, 3, 60, payload, track="outbound")),  # outbound lost 40 ms
    ]
    assert [(a.track, a.dropped) for a in got if isinstance(a, Audio)] == [
        ("inbound", 0),
        ("outbound", 0),
        ("inbound", 0),
        ("outbound", 320),
    ]
    assert call.stats.other_track == 0
