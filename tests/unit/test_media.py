"""Probing by content, frame sampling, audio decoding, limits and hostile input."""

from __future__ import annotations

import re
import shutil
import struct
import zipfile
import zlib

import numpy as np
import pytest

from detector import samples
from detector.config import MediaLimits, SamplingConfig
from detector.frontend.media import (
    SAMPLE_RATE,
    CorruptMedia,
    MediaTooLarge,
    UnsupportedMedia,
    iter_audio,
    iter_frames,
    keyframe_times,
    load_audio,
    probe,
    read_image,
    sample_times,
)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("ext,fmt", [("jpg", "jpeg"), ("png", "png"), ("webp", "webp"), ("bmp", "bmp"), ("gif", "gif")])
def test_images_probe_by_content_and_decode(media_dir, tmp_path, ext, fmt):
    # a misleading name must not matter: the bytes decide
    path = shutil.copy(media_dir / f"astronaut.{ext}", tmp_path / "upload.mp3")
    info = probe(path)
    assert (info.media_type, info.format, info.width, info.height) == ("image", fmt, 512, 512)
    image = read_image(path)
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert mean_abs_diff(image, samples.astronaut()) < (25 if fmt == "gif" else 6)


@pytest.mark.parametrize("ext", list(samples.CONTAINER_CODECS))
def test_videos_sample_frames_evenly_with_timestamps(media_dir, ext):
    path = media_dir / f"pan.{ext}"
    info = probe(path)
    assert info.media_type == "video" and info.has_audio
    assert info.frame_count == 40 and info.fps == pytest.approx(25)
    frames = list(iter_frames(path, SamplingConfig(frames=8)))
    assert [f.index for f in frames] == list(range(8))
    expected = np.linspace(0, 39 / 25, 8)
    # the nearest frame, or the next decoded one where the decoder skipped non-reference frames
    # (x264 puts up to 3 B-frames between references)
    assert np.abs(np.array([f.t for f in frames]) - expected).max() <= 3.5 / 25 + 1e-6
    assert frames[0].image.shape == (240, 320, 3)
    # the frame at t is the pan's frame number round(t * 25)
    pan = list(samples.moving_crop(samples.astronaut(), 40))
    for f in frames:
        assert mean_abs_diff(f.image, pan[round(f.t * 25)]) < 12


def test_fps_sampling_and_cap(media_dir):
    frames = list(iter_frames(media_dir / "pan.mp4", SamplingConfig(frames=None, fps=5)))
    assert np.abs(np.array([f.t for f in frames]) - np.arange(8) * 0.2).max() <= 3.5 / 25 + 1e-6
    capped = list(iter_frames(media_dir / "pan.mp4", SamplingConfig(frames=None, fps=25, max_sampled=10)))
    assert len(capped) == 10


def test_more_targets_than_frames_gives_each_frame_once(media_dir):
    frames = list(iter_frames(media_dir / "pan.mp4", SamplingConfig(frames=500)))
    assert len(frames) == 40 and len({f.t for f in frames}) == 40


def test_long_gop_seeks_only_forward(tmp_path):
    """Keyframes every 10 frames: sampled frames are still the right ones after seeking."""
    path = tmp_path / "gop.mp4"
    frames = [np.full((64, 64, 3), i * 2, np.uint8) for i in range(100)]  # brightness encodes the index
    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25, options={"g": "10", "keyint_min": "10"})
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        for img in frames:
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode())
    got = list(iter_frames(path, SamplingConfig(frames=4)))
    want = [0, 33, 66, 99]
    assert [round(f.t * 25) for f in got] == list(want)
    assert np.abs(np.array([f.image.mean() / 2 for f in got]) - want).max() < 1  # brightness = index


def test_keyframes_are_placed_by_presentation_time(tmp_path):
    """With B-frames the index's decode times come before the keyframes' presentation times, by
    which seeks go: a seek between the two would land on the keyframe before."""
    import av

    path = tmp_path / "bframes.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25, options={"g": "10", "keyint_min": "10", "bf": "3"})
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        for i in range(40):
            out.mux(s.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 5, np.uint8), format="rgb24")))
        out.mux(s.encode())
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        shown = [p.pts for p in container.demux(stream) if p.is_keyframe]
        assert min(e.timestamp for e in stream.index_entries) < 0  # decode times lead: B-frames
        assert keyframe_times(stream) == shown


def test_open_gops_lose_no_sampled_frame(tmp_path):
    """Open GOPs: frames shown before a keyframe are decoded after it, so a keyframe is shown later
    than its index time plus the stream's usual delay; no target may be lost, sparse or dense."""
    import av

    path = tmp_path / "open_gop.mp4"
    pan = list(samples.moving_crop(samples.astronaut(), 40))
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25, options={"g": "12", "bf": "3", "x264-params": "open-gop=1"})
        s.height, s.width = pan[0].shape[:2]
        s.pix_fmt = "yuv420p"
        for i in range(120):
            img = np.ascontiguousarray(pan[i % 40]).copy()
            img[:16, :16] = i * 2  # the corner's brightness encodes the index
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode())
    for n in range(8, 121, 3):
        got = list(iter_frames(path, SamplingConfig(frames=n)))
        assert len(got) == n
        index = np.array([round(f.t * 25) for f in got])
        lag = index - np.linspace(0, 119, n)
        assert lag.min() >= -0.5 - 1e-6 and lag.max() <= 3.5  # the nearest frame or a run of B-frames later
        assert np.abs(np.array([f.image[4:12, 4:12].mean() / 2 for f in got]) - index).max() < 1.5


def test_variable_frame_rate_keeps_true_timestamps(tmp_path):
    times = [0.0, 0.1, 0.15, 0.5, 0.55, 0.6, 1.5, 1.6, 1.7, 2.0]
    path = samples.write_video(tmp_path / "vfr.mp4", samples.moving_crop(samples.astronaut(), len(times)),
                               times=times)
    got = list(iter_frames(path, SamplingConfig(frames=None, fps=2)))  # targets 0, 0.5, 1.0, 1.5
    assert [round(f.t, 2) for f in got] == [0.0, 0.5, 1.5]  # the first frame at or after each, once


def test_rotation_metadata_is_honoured(tmp_path):
    upright = samples.astronaut()[:240, :320]
    stored = np.rot90(upright, -1)  # a phone stores the frame turned; the display matrix turns it back
    path = samples.write_video(tmp_path / "rot.mp4", [stored] * 5, rotation=90)
    frame = next(iter_frames(path))
    assert frame.image.shape == upright.shape
    assert mean_abs_diff(frame.image, upright) < 12


@pytest.mark.parametrize("ext", list(samples.AUDIO_CODECS))
def test_audio_files_decode_to_mono_16k(media_dir, ext):
    info = probe(media_dir / f"chirp.{ext}")
    assert info.media_type == "audio" and info.has_audio
    audio = load_audio(media_dir / f"chirp.{ext}")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 2 * SAMPLE_RATE) <= 1100  # AAC/Opus may add up to one frame of padding
    ref = samples.chirp(2.0)
    n = min(ref.size, audio.size)
    if ext != "ogg":  # Opus shifts by its pre-skip; the level check below covers it
        lag = int(np.argmax(np.correlate(audio[:4000], ref[:2000], "valid")))
        assert lag < 1100
    assert 0.25 < float(np.abs(audio[:n]).max()) < 0.6


def test_audio_track_of_video_and_stereo_downmix(media_dir, tmp_path):
    audio = load_audio(media_dir / "pan.mp4")
    assert abs(audio.size - int(1.6 * SAMPLE_RATE)) <= 1100
    import av

    path = tmp_path / "stereo.wav"
    with av.open(str(path), "w") as out:
        s = out.add_stream("pcm_s16le", rate=48_000)
        s.layout = "stereo"
        left = samples.chirp(1.0, 48_000)
        frame = av.AudioFrame.from_ndarray(np.stack([left, left]), format="fltp", layout="stereo")
        frame.sample_rate = 48_000
        out.mux(s.encode(frame))
        out.mux(s.encode())
    mono = load_audio(path)
    assert mono.size == SAMPLE_RATE and probe(path).channels == 2


def test_long_audio_streams_in_windows(tmp_path):
    path = samples.write_audio(tmp_path / "long.flac", samples.chirp(65.0))
    chunks = list(iter_audio(path, window_s=30))
    assert [c.size for c in chunks] == [30 * SAMPLE_RATE, 30 * SAMPLE_RATE, 5 * SAMPLE_RATE]


def test_video_without_audio_track(media_dir):
    assert not probe(media_dir / "silent.mp4").has_audio
    with pytest.raises(UnsupportedMedia, match="no audio track"):
        load_audio(media_dir / "silent.mp4")


def test_audio_only_mp4_is_audio(tmp_path):
    path = samples.write_audio(tmp_path / "voice.m4a", samples.chirp(1.0))
    renamed = shutil.copy(path, tmp_path / "voice.mp4")
    info = probe(renamed)
    assert (info.media_type, info.format) == ("audio", "mp4")
    with pytest.raises(UnsupportedMedia, match="no video frames"):
        list(iter_frames(renamed))


# --- limits and hostile input -------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny compressed row: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def test_decompression_bomb_png_is_too_large(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(30000, 30000))
    with pytest.raises(MediaTooLarge, match="over the limit"):
        probe(path)
    with pytest.raises(MediaTooLarge):
        read_image(path)


def test_limits_are_checked_before_decoding(media_dir):
    with pytest.raises(MediaTooLarge, match="bytes"):
        probe(media_dir / "pan.mp4", MediaLimits(max_bytes=1000))
    with pytest.raises(MediaTooLarge, match="pixels"):
        probe(media_dir / "pan.mp4", MediaLimits(max_frame_pixels=320 * 239))
    with pytest.raises(MediaTooLarge, match="longer"):
        probe(media_dir / "pan.mp4", MediaLimits(max_duration_s=1.0))
    with pytest.raises(MediaTooLarge, match="frames"):
        probe(media_dir / "pan.mp4", MediaLimits(max_frames=39))
    with pytest.raises(MediaTooLarge, match="image"):
        probe(media_dir / "astronaut.png", MediaLimits(max_image_pixels=512 * 511))


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(CorruptMedia, match="empty"):
        probe(tmp_path / "empty.mp4")


def test_zip_renamed_mp4(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.mp4", "w") as z:
        z.writestr("video.mp4", b"\0" * 1000)
    with pytest.raises(UnsupportedMedia, match="ZIP"):
        probe(tmp_path / "x.mp4")


def test_garbage_and_text(tmp_path):
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
    (tmp_path / "notes.jpg").write_text("hello, not an image\n" * 10)
    for name in ("noise.mp4", "notes.jpg"):
        with pytest.raises(UnsupportedMedia, match="not a recognised"):
            probe(tmp_path / name)


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.7])
def test_an_mp4_cut_short_fails_alone_naming_the_file(media_dir, tmp_path, keep):
    data = (media_dir / "pan.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * keep)])  # its index (moov, at the end) is gone
    with pytest.raises(CorruptMedia, match=re.escape(str(path))):
        list(iter_frames(path, SamplingConfig(frames=8)))


def test_a_matroska_cut_short_gives_the_frames_before_the_cut(media_dir, tmp_path):
    data = (media_dir / "pan.mkv").read_bytes()
    path = tmp_path / "cut.mkv"
    path.write_bytes(data[: int(len(data) * 0.7)])  # streamable: what arrived still decodes
    frames = list(iter_frames(path, SamplingConfig(frames=8)))
    assert 0 < len(frames) < 8 and [f.index for f in frames] == list(range(len(frames)))


def test_truncated_and_corrupt_images(media_dir, tmp_path):
    data = (media_dir / "astronaut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:2000])
    with pytest.raises(CorruptMedia, match="truncated|damaged"):
        read_image(tmp_path / "cut.jpg")
    (tmp_path / "head.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(CorruptMedia):
        probe(tmp_path / "head.png")
    (tmp_path / "cut.png").write_bytes((media_dir / "astronaut.png").read_bytes()[:200])  # EXIF read runs off the end
    with pytest.raises(CorruptMedia, match="truncated"):
        probe(tmp_path / "cut.png")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(UnsupportedMedia, match="no such file"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(UnsupportedMedia, match="not a regular file"):
        probe(tmp_path)


def test_sample_times_spread_over_duration():
    from detector.frontend.media import MediaInfo

    info = MediaInfo("x", "video", "mp4", 1, 10, 10, duration_s=10.0, fps=10.0, frame_count=100)
    t = sample_times(info, SamplingConfig(frames=4))
    assert t[0] == 0 and t[-1] == pytest.approx(9.9) and len(t) == 4
