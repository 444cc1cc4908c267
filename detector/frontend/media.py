"""Probe uploads by content and decode them: sampled video frames, still images, 16 kHz mono audio.

Every failure is one of three typed errors with a message a user can act on; limits are checked
from headers before anything heavy is decoded.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from detector.config import MediaLimits, SamplingConfig

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
_SKIP_AHEAD = 1  # frames before a target from which every frame is decoded again (4: about 7% slower, bench/faces.py) ...
_SKIP_SPACING = 8  # ... where targets are this many frames apart: closer, a late frame could stand for two
_SEEK_MARGIN = 4  # frames: an open GOP shows a keyframe up to a run of B-frames later than its index time says
MediaType = Literal["image", "video", "audio"]


class MediaError(Exception):
    """An upload that cannot be used; `reason` is a short machine-readable code."""

    reason = "media_error"


class UnsupportedMedia(MediaError):
    reason = "unsupported"


class CorruptMedia(MediaError):
    reason = "corrupt"


class MediaTooLarge(MediaError):
    reason = "too_large"


@dataclass(frozen=True)
class MediaInfo:
    path: str
    media_type: MediaType
    format: str  # what the bytes are, e.g. "jpeg", "mp4", "matroska", "flac"
    size_bytes: int
    width: int = 0  # images: as displayed; videos: as stored (frames carry their own rotation)
    height: int = 0
    duration_s: float = 0.0
    fps: float = 0.0
    frame_count: int = 0
    has_audio: bool = False
    sample_rate: int = 0
    channels: int = 0


@dataclass
class Frame:
    index: int  # ordinal among the sampled frames
    t: float  # presentation time in seconds
    image: np.ndarray  # (H, W, 3) uint8 RGB, upright


# --- probing -----------------------------------------------------------------------------------

_IMAGE_FORMATS = {"jpeg", "png", "gif", "bmp", "webp"}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis"}


def sniff(head: bytes) -> str | None:
    """Name the format from the first bytes of a file, or None when nothing matches."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"BM") and len(head) >= 26:
        return "bmp"
    if head[:4] == b"RIFF":
        return {b"WEBP": "webp", b"WAVE": "wav", b"AVI ": "avi"}.get(head[8:12])
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[4:8] == b"ftyp":
        return "heif" if head[8:12] in _HEIF_BRANDS else "mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mp4"  # QuickTime files without an ftyp box
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mpeg_audio"  # MP3 or ADTS AAC
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    return None


def _read_head(path: Path, limits: MediaLimits) -> tuple[bytes, int]:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UnsupportedMedia(f"{path}: no such file") from None
    if not path.is_file():
        raise UnsupportedMedia(f"{path}: not a regular file")
    if size == 0:
        raise CorruptMedia(f"{path}: the file is empty (0 bytes)")
    if size > limits.max_bytes:
        raise MediaTooLarge(f"{path}: {size:,} bytes is over the limit of {limits.max_bytes:,}")
    with path.open("rb") as f:
        return f.read(32), size


def probe(path: str | Path, limits: MediaLimits = MediaLimits()) -> MediaInfo:
    """What the file is, judged by its content, with limits checked; decodes no pixels or samples."""
    path = Path(path)
    head, size = _read_head(path, limits)
    fmt = sniff(head)
    if fmt is None:
        raise UnsupportedMedia(f"{path}: not a recognised image, video or audio format (starts {head[:8].hex()})")
    if fmt == "zip":
        raise UnsupportedMedia(f"{path}: a ZIP archive, not media; upload the image, video or audio file itself")
    if fmt == "heif":
        raise UnsupportedMedia(f"{path}: HEIF/AVIF images are not supported; convert to JPEG or PNG")
    if fmt in _IMAGE_FORMATS:
        with _open_image(path, limits) as im:
            return MediaInfo(str(path), "image", fmt, size, *_upright_size(im, path))
    with _open_av(path) as container:
        return _probe_av(path, fmt, size, container, limits)


def _probe_av(path: Path, fmt: str, size: int, container, limits: MediaLimits) -> MediaInfo:
    video = _video_stream(container)
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None and audio is None:
        raise UnsupportedMedia(f"{path}: a {fmt} file with neither a video nor an audio stream")
    main = video if video is not None else audio
    duration = _duration(container, main)
    if duration > limits.max_duration_s:
        raise MediaTooLarge(f"{path}: {duration:.0f} s is longer than the limit of {limits.max_duration_s:.0f} s")
    info = dict(
        path=str(path), format=fmt, size_bytes=size, duration_s=duration, has_audio=audio is not None,
        sample_rate=audio.codec_context.sample_rate if audio is not None else 0,
        channels=audio.codec_context.channels if audio is not None else 0,
    )
    if video is None:
        return MediaInfo(media_type="audio", **info)
    w, h = video.codec_context.width, video.codec_context.height
    if w <= 0 or h <= 0:
        raise CorruptMedia(f"{path}: the video stream has no frame size")
    if w * h > limits.max_frame_pixels:
        raise MediaTooLarge(f"{path}: {w}x{h} frames are over the limit of {limits.max_frame_pixels:,} pixels")
    fps = float(video.average_rate or video.guessed_rate or 0)
    frames = video.frames or int(round(duration * fps))
    if frames > limits.max_frames:
        raise MediaTooLarge(f"{path}: {frames:,} frames is over the limit of {limits.max_frames:,}")
    return MediaInfo(media_type="video", width=w, height=h, fps=fps, frame_count=frames, **info)


def _open_av(path: Path):
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise CorruptMedia(f"{path}: cannot be opened as media ({e.strerror or e})") from None


def _video_stream(container):
    for s in container.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic:  # cover art is not a video
            return s
    return None


def _duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0

# --- images ------------------------------------------------------------------------------------


def _open_image(path: Path, limits: MediaLimits) -> Image.Image:
    try:
        im = Image.open(path)
    except Image.DecompressionBombError as e:
        raise MediaTooLarge(f"{path}: the image is over the limit of {limits.max_image_pixels:,} pixels ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise CorruptMedia(f"{path}: unreadable image ({e})") from None
    w, h = im.size
    if w * h > limits.max_image_pixels:
        im.close()
        raise MediaTooLarge(f"{path}: {w}x{h} image is over the limit of {limits.max_image_pixels:,} pixels")
    return im


def _upright_size(im: Image.Image, path: Path) -> tuple[int, int]:
    w, h = im.size
    try:  # reading EXIF can read past the header: a truncated file fails here
        orientation = im.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise CorruptMedia(f"{path}: the image data is damaged or truncated ({e})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def read_image(path: str | Path, limits: MediaLimits = MediaLimits()) -> np.ndarray:
    """Decode a still image (first frame of a GIF) as upright (H, W, 3) uint8 RGB."""
    path = Path(path)
    _read_head(path, limits)
    with _open_image(path, limits) as im:
        try:
            im.seek(0)
            im = ImageOps.exif_transpose(im).convert("RGB")
        except Image.DecompressionBombError as e:
            raise MediaTooLarge(f"{path}: the image is over the limit of {limits.max_image_pixels:,} pixels ({e})") from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise CorruptMedia(f"{path}: the image data is damaged or truncated ({e})") from None
        return np.asarray(im)


# --- video -------------------------------------------------------------------------------------


def sample_times(info: MediaInfo, sampling: SamplingConfig) -> np.ndarray:
    """Target presentation times (seconds from the stream start) of the frames to read."""
    duration = info.duration_s
    if duration <= 0:  # unknown duration: read from the start, one frame per target
        return np.zeros(1)
    if sampling.fps is not None:
        n = min(sampling.max_sampled, max(1, math.floor(duration * sampling.fps)))
        return np.arange(n) / sampling.fps
    n = sampling.frames
    if info.frame_count:
        n = min(n, info.frame_count)
    last = max(0.0, duration - (1 / info.fps if info.fps else 0.0))
    return np.linspace(0.0, last, n)


def iter_frames(
    path: str | Path,
    sampling: SamplingConfig = SamplingConfig(),
    limits: MediaLimits = MediaLimits(),
    info: MediaInfo | None = None,
) -> Iterator[Frame]:
    """Yield the sampled frames of a video (or the one frame of an image), upright, in time order.

    Memory holds one decoded frame at a time. The decoder seeks only when a keyframe lies between
    the current position and the next target, so short GOPs are skipped and long ones decoded
    straight through.
    """
    info = info or probe(path, limits)
    if info.media_type == "image":
        yield Frame(0, 0.0, read_image(path, limits))
        return
    if info.media_type != "video":
        raise UnsupportedMedia(f"{path}: {info.format} audio has no video frames")
    targets = sample_times(info, sampling)
    yielded = 0
    with _open_av(Path(path)) as container:
        stream = _video_stream(container)
        # frame threading: 20% faster even on one core (bench/faces.py clips); its lag can let
        # the skipping below drop a target frame, which the next decoded frame then stands for
        stream.thread_type = "AUTO"
        tb = float(stream.time_base)
        start = stream.start_time if stream.start_time is not None else 0
        fps = info.fps or 25.0
        half = 0.5 / fps
        keyframes = keyframe_times(stream)
        margin = int(round(_SEEK_MARGIN / fps / tb))
        spacing = float(np.diff(targets).min()) * fps if len(targets) > 1 else math.inf
        skip_ahead = _SKIP_AHEAD if spacing >= _SKIP_SPACING else math.inf
        decoded = None  # frame generator
        pos = -math.inf  # pts of the last decoded frame
        last_t = -math.inf  # time of the last yielded frame
        try:
            for target in targets:
                if last_t >= target - half:
                    continue  # that frame is already out (VFR, or more targets than frames)
                aim = start + int(round((target - half) / tb)) - margin  # a keyframe at or before the target
                k = bisect_right(keyframes, aim) - 1
                if decoded is None or (k >= 0 and keyframes[k] > pos):
                    container.seek(max(aim, start), stream=stream, backward=True)
                    decoded = container.decode(stream)
                for frame in decoded:
                    pts = frame.pts if frame.pts is not None else pos + 1
                    pos = pts
                    t = (pts - start) * tb
                    # far from the target, skip frames that no other frame refers to (a third of
                    # H.264's work); a target that is one of them gets the next decoded frame (a
                    # run of B-frames later at most)
                    near = (target - t) * fps <= skip_ahead
                    stream.codec_context.skip_frame = "DEFAULT" if near else "NONREF"
                    if t >= target - half:
                        last_t = t
                        yield Frame(yielded, t, _upright(frame))
                        yielded += 1
                        break
                else:
                    break  # stream ended before this target
        except av.error.FFmpegError as e:
            if not yielded:
                raise CorruptMedia(f"{path}: the video data is damaged ({e.strerror or e})") from None
            log.warning("%s: decoding stopped after %d frames: %s", path, yielded, e)
    if not yielded:
        raise CorruptMedia(f"{path}: no video frame could be decoded")


def keyframe_times(stream) -> list[int]:
    """Presentation times (the stream's time base) of the keyframes in the container's index.

    The index holds decode times; with B-frames a keyframe is shown that much later, and seeks go by
    presentation time: a seek to a time between the two lands on the keyframe before.
    """
    keyframes = sorted(e.timestamp for e in stream.index_entries if e.is_keyframe)
    start = stream.start_time if stream.start_time is not None else 0
    shown_later = max(0, start - keyframes[0]) if keyframes else 0
    return [k + shown_later for k in keyframes]


def _upright(frame) -> np.ndarray:
    img = frame.to_ndarray(format="rgb24")
    k = (frame.rotation // 90) % 4 if frame.rotation else 0
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


# --- audio -------------------------------------------------------------------------------------


def iter_audio(
    path: str | Path,
    limits: MediaLimits = MediaLimits(),
    window_s: float = 30.0,
    sample_rate: int = SAMPLE_RATE,
    info: MediaInfo | None = None,
) -> Iterator[np.ndarray]:
    """Yield the audio (or a video's audio track) as mono float32 chunks of `window_s` seconds."""
    path = Path(path)
    info = info or probe(path, limits)
    if not info.has_audio:
        raise UnsupportedMedia(f"{path}: the {info.media_type} has no audio track")
    window = max(1, int(window_s * sample_rate))
    expected = int(round(info.duration_s * sample_rate)) if info.duration_s else None
    emitted = 0
    buf: list[np.ndarray] = []
    held = 0
    with _open_av(path) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    buf.append(out.to_ndarray().reshape(-1))
                    held += buf[-1].size
                while held >= window:
                    chunk, buf, held = _take(buf, window)
                    chunk = _trim(chunk, emitted, expected)
                    if chunk.size:
                        yield chunk
                    emitted += chunk.size
            for out in resampler.resample(None):
                buf.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as e:
            if emitted == 0 and not buf:
                raise CorruptMedia(f"{path}: the audio data is damaged ({e.strerror or e})") from None
            log.warning("%s: audio decoding stopped early: %s", path, e)
    rest = _trim(np.concatenate(buf) if buf else np.zeros(0, np.float32), emitted, expected)
    if emitted == 0 and rest.size == 0:
        raise CorruptMedia(f"{path}: no audio could be decoded")
    for i in range(0, rest.size, window):
        yield rest[i : i + window]


def _take(buf: list[np.ndarray], n: int) -> tuple[np.ndarray, list[np.ndarray], int]:
    joined = np.concatenate(buf)
    rest = joined[n:]
    return joined[:n], ([rest] if rest.size else []), rest.size


def _trim(chunk: np.ndarray, emitted: int, expected: int | None) -> np.ndarray:
    """Drop decoder padding past the stream's stated duration (AAC pads its last frame)."""
    if expected is None:
        return chunk
    return chunk[: max(0, expected - emitted)]


def load_audio(path: str | Path, limits: MediaLimits = MediaLimits(), sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The whole audio (or audio track) as one mono float32 array at `sample_rate`."""
    return np.concatenate(list(iter_audio(path, limits, sample_rate=sample_rate)))
