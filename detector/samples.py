"""Sample media built in code from the public-domain photos that ship with scikit-image.

Used by `deepfake-detect demo`, the tests and the benchmarks, so nothing binary is committed.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np
from PIL import Image
from skimage import data

# (video codec, audio codec) per container, all encoders that ship inside PyAV's wheels
CONTAINER_CODECS = {
    "mp4": ("libx264", "aac"),
    "mov": ("libx264", "aac"),
    "mkv": ("libx264", "libopus"),
    "webm": ("libvpx-vp9", "libopus"),
    "avi": ("mpeg4", "mp3"),
}
AUDIO_CODECS = {"wav": "pcm_s16le", "flac": "flac", "mp3": "libmp3lame", "m4a": "aac", "ogg": "libopus"}
_AUDIO_FORMATS = {"m4a": "mp4", "ogg": "ogg"}


def astronaut() -> np.ndarray:
    """(512, 512, 3) uint8: one frontal face, the standard MTCNN smoke test."""
    return data.astronaut()


def no_face() -> np.ndarray:
    """(400, 600, 3) uint8: a cup of coffee, no face."""
    return data.coffee()


def moving_crop(image: np.ndarray, n: int, size: tuple[int, int] = (320, 240)) -> Iterator[np.ndarray]:
    """`n` frames of a `size` (w, h) window panning across `image`: a face that moves."""
    w, h = size
    H, W = image.shape[:2]
    for i in range(n):
        x = int(round((W - w) * i / max(1, n - 1)))
        y = int(round((H - h) * 0.1 * (1 + np.sin(i / 5))))
        yield image[y : y + h, x : x + w]


def chirp(seconds: float, sample_rate: int = 16_000, f0: float = 200.0, f1: float = 2000.0) -> np.ndarray:
    """A linear sine sweep, float32 in [-0.5, 0.5]."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))).astype(np.float32)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    path = Path(path)
    Image.fromarray(image).save(path)
    return path


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: int = 25,
    audio: np.ndarray | None = None,
    sample_rate: int = 16_000,
    rotation: int = 0,
    times: Iterable[float] | None = None,
    codec: str | None = None,
) -> Path:
    """Encode RGB frames (and a mono float32 track) into the container that `path`'s suffix names.

    `rotation` writes a display matrix (counter-clockwise degrees); `times` gives each frame's
    presentation time in seconds, for variable frame rate.
    """
    path = Path(path)
    vcodec, acodec = CONTAINER_CODECS[path.suffix.lstrip(".")]
    frames = iter(frames)
    first = next(frames)
    times = iter(times) if times is not None else None
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec or vcodec, rate=fps)
        v.height, v.width = first.shape[:2]
        v.pix_fmt = "yuv420p"
        if times is not None:
            v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            v.set_display_rotation(rotation)
        a = _add_audio(out, acodec, sample_rate) if audio is not None else None
        for img in _chain(first, frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if times is not None:
                frame.pts = int(round(next(times) * 1000))
                frame.time_base = v.time_base
            out.mux(v.encode(frame))
        out.mux(v.encode())
        if a is not None:
            _encode_audio(out, a, audio, sample_rate)
    return path


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int = 16_000) -> Path:
    """Encode a mono float32 signal into the format that `path`'s suffix names."""
    path = Path(path)
    ext = path.suffix.lstrip(".")
    with av.open(str(path), "w", format=_AUDIO_FORMATS.get(ext)) as out:
        a = _add_audio(out, AUDIO_CODECS[ext], sample_rate)
        _encode_audio(out, a, samples, sample_rate)
    return path


def _add_audio(out, codec: str, sample_rate: int):
    rate = 48_000 if codec == "libopus" else sample_rate  # Opus only runs at 8/12/16/24/48 kHz
    a = out.add_stream(codec, rate=rate)
    a.layout = "mono"
    return a


def _encode_audio(out, stream, samples: np.ndarray, sample_rate: int) -> None:
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=stream.rate)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.float32), format="fltp", layout="mono")
    frame.sample_rate = sample_rate
    for f in resampler.resample(frame) + resampler.resample(None):
        out.mux(stream.encode(f))
    out.mux(stream.encode())



def test_signer() -> tuple[bytes, bytes, bytes]:
    """A throwaway C2PA signing identity made offline: (leaf+CA chain PEM, leaf key PEM, CA PEM)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject: str, key, issuer_name: x509.Name | None, issuer_key, ca: bool) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "deepfake-detector tests")])
        usage = dict(digital_signature=True, key_cert_sign=ca, crl_sign=ca, content_commitment=False,
                     key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                     decipher_only=False)
        b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(**usage), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if not ca:
            b = (b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False))
        return b.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("Test CA", ca_key, None, ca_key, ca=True)
    leaf = cert("Test generator", key, ca.subject, ca_key, ca=False)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem(leaf) + pem(ca), private, pem(ca)


def sign_c2pa(src: str | Path, dest: str | Path, mime: str, identity: tuple[bytes, bytes, bytes],
              ai_generated: bool = True, generator: str = "sample-generator") -> Path:
    """Copy `src` to `dest` with a signed C2PA manifest: `c2pa.created`, declared AI-made or not."""
    import c2pa

    source_type = "trainedAlgorithmicMedia" if ai_generated else "digitalCapture"
    manifest = {"claim_generator_info": [{"name": generator, "version": "1.0"}], "title": Path(dest).name,
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
                    "action": "c2pa.created",
                    "digitalSourceType": f"http://cv.iptc.org/newscodes/digitalsourcetype/{source_type}"}]}}]}
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, identity[0], identity[1], None))
    with c2pa.Builder(manifest) as builder, open(src, "rb") as s, open(dest, "w+b") as d:
        builder.sign(signer, mime, s, d)
    return Path(dest)
