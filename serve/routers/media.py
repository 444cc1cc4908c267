"""An upload's bytes for reviewers, with HTTP Range so that `<video>` and `<audio>` can seek.

Players cannot send an API key header, so a reviewer first asks for a link: it carries a token
signed with the reviewer's stored key hash, naming the upload and an expiry. Replacing the key
revokes its links; `submit` keys get neither links nor bytes.
"""

import hashlib
import hmac
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import FileResponse, Response

from serve.deps import Reviewer, ServiceDep, UploadId, authorize
from serve.service import Service

router = APIRouter(prefix="/v1/review/media", tags=["review"])
LINK_S = 3600  # how long a media link plays
_MAGIC = [(b"\x1aE\xdf\xa3", 0, "video/webm"), (b"ftyp", 4, "video/mp4"), (b"WAVE", 8, "audio/wav"),
          (b"WEBP", 8, "image/webp"), (b"AVI ", 8, "video/x-msvideo"), (b"OggS", 0, "audio/ogg"),
          (b"fLaC", 0, "audio/flac"), (b"ID3", 0, "audio/mpeg"), (b"\xff\xfb", 0, "audio/mpeg"),
          (b"\xff\xd8", 0, "image/jpeg"), (b"\x89PNG", 0, "image/png"), (b"GIF8", 0, "image/gif"),
          (b"BM", 0, "image/bmp")]


def sniff(head: bytes, media_type: str) -> str:
    """The MIME type of an upload from its first bytes (MP4 audio is audio/mp4)."""
    for magic, at, mime in _MAGIC:
        if head[at:at + len(magic)] == magic:
            return mime.replace("video/", "audio/") if media_type == "audio" else mime
    return "application/octet-stream"


def _sign(key_hash: str, name: str, upload_id: str, expires: int) -> str:
    return hmac.new(key_hash.encode(), f"{name}\n{upload_id}\n{expires}".encode(), hashlib.sha256).hexdigest()


def _upload_bytes(service: Service, upload_id: str):
    up = service.store.uploads.get(upload_id)
    path = service.files.path(up["sha256"]) if up else None
    if up is None or up["bytes_erased_at"] or not path.is_file():
        raise HTTPException(404, "no such upload, or its bytes were erased")
    return up, path


@router.get("/{upload_id}/link", responses={404: {"description": "no bytes"}})
def link(upload_id: UploadId, service: ServiceDep, caller: Reviewer) -> dict:
    """A URL that plays the upload for `LINK_S` seconds without a key header (for `<video src>`)."""
    _upload_bytes(service, upload_id)
    key_hash, _ = service.store.keys.get(caller.name)
    expires = int(time.time()) + LINK_S
    token = f"{caller.name}.{expires}.{_sign(key_hash, caller.name, upload_id, expires)}"
    return {"url": f"/v1/review/media/{upload_id}?token={token}", "expires": expires}


def _viewer(upload_id: UploadId, service: ServiceDep, token: Annotated[str | None, Query(max_length=400)] = None,
            authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
            x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None) -> None:
    """A review key in a header, or a link's token."""
    if token is None:
        bearer = authorization.removeprefix("Bearer ").strip() if authorization else ""
        authorize(service, x_api_key or bearer, ("review",))
        return
    name, expires, sig = (token.rsplit(".", 2) + ["", ""])[:3]
    found = service.store.keys.get(name)
    if (not expires.isdigit() or int(expires) < time.time() or found is None
            or not found[1] & {"review", "admin"}
            or not hmac.compare_digest(sig, _sign(found[0], name, upload_id, int(expires)))):
        raise HTTPException(403, "this media link is invalid or expired: open the item again")


@router.get("/{upload_id}/sound.png", response_class=Response, responses={404: {"description": "no bytes or no sound"}})
def sound(upload_id: UploadId, service: ServiceDep, _: Reviewer):
    """The upload's waveform over its spectrogram (0-8 kHz), spanning its duration; drawn once, kept with its
    evidence (erased with it)."""
    from detector.frontend.media import MediaError
    from serve.sound import sound_picture

    up, path = _upload_bytes(service, upload_id)
    kept = service.files.evidence(upload_id) / "sound.png"
    if not kept.is_file():
        if up["media_type"] == "image":
            raise HTTPException(404, "a photo has no sound")
        try:
            picture = sound_picture(path)
        except (MediaError, ValueError) as e:
            raise HTTPException(404, f"no sound to draw: {e}") from None
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(picture)
    return Response(kept.read_bytes(), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/{upload_id}", response_class=FileResponse, dependencies=[Depends(_viewer)],
            responses={206: {"description": "the requested byte range"}, 404: {"description": "no bytes"}})
def media(upload_id: UploadId, service: ServiceDep):
    """The upload's bytes (reviewers only: a review key, or a link's token); honours Range."""
    up, path = _upload_bytes(service, upload_id)
    with path.open("rb") as f:
        mime = sniff(f.read(16), up["media_type"])
    return FileResponse(path, media_type=mime, headers={"Cache-Control": "private, max-age=3600",
                                                          "Content-Security-Policy": "sandbox"})
