"""Face detection, crops, tracks and the multi-upload scanner."""

from __future__ import annotations

import numpy as np
import pytest

from detector import samples
from detector.config import FaceConfig, SamplingConfig
from detector.frontend.faces import FaceDetector, FrameFaces, Face, cut_crop, iou, link_tracks, square_box
from detector.frontend.media import Frame, iter_frames


def test_astronaut_has_one_face_with_landmarks_inside(detector):
    (faces,) = detector.detect([samples.astronaut()])
    assert len(faces) == 1
    face = faces[0]
    x1, y1, x2, y2 = face.box
    assert face.prob > 0.99 and 60 < x2 - x1 < 140 and 60 < y2 - y1 < 160
    assert ((face.landmarks[:, 0] > x1) & (face.landmarks[:, 0] < x2)).all()
    assert ((face.landmarks[:, 1] > y1) & (face.landmarks[:, 1] < y2)).all()
    eyes, mouth = face.landmarks[:2], face.landmarks[3:]
    assert eyes[:, 1].mean() < face.landmarks[2, 1] < mouth[:, 1].mean()  # eyes over nose over mouth
    assert face.crop.shape == (224, 224, 3) and face.crop.dtype == np.uint8


def test_no_face_in_coffee(detector):
    assert detector.detect([samples.no_face()]) == [[]]


def test_batch_of_mixed_sizes_matches_single_calls(detector):
    images = [samples.astronaut(), samples.no_face(), samples.astronaut()[100:400, 50:450]]
    batched = detector.detect(images)
    for image, got in zip(images, batched):
        (alone,) = detector.detect([image])
        assert len(alone) == len(got)
        for a, b in zip(alone, got):  # padding shifts the pyramid's grid a little
            assert iou(a.box[None], b.box[None])[0, 0] > 0.9


def test_detection_on_a_downscaled_copy_maps_boxes_back():
    big = np.kron(samples.astronaut(), np.ones((3, 3, 1), np.uint8))  # 1536 px, face ~3x larger
    full = FaceDetector(FaceConfig(detect_max_side=None)).detect([big], crops=False)[0]
    small = FaceDetector(FaceConfig(detect_scale=0.25, detect_max_side=None)).detect([big], crops=False)[0]
    assert len(full) == len(small) == 1
    assert iou(full[0].box[None], small[0].box[None])[0, 0] > 0.8


def test_crop_scale_or_margin():
    assert list(square_box(np.array([100, 100, 200, 150]), 1.3)) == [85, 60, 215, 190]
    assert FaceConfig(crop_margin=1 / 3).scale == pytest.approx(5 / 3)


def test_crop_leaving_the_frame_is_padded_black():
    image = np.full((100, 100, 3), 200, np.uint8)
    crop = cut_crop(image, np.array([-50, -50, 50, 50]), 20)
    assert crop.shape == (20, 20, 3)
    assert crop[:8, :8].max() == 0 and crop[12:, 12:].min() == 200


def face_at(x: float, y: float, side: float = 50, prob: float = 0.99) -> Face:
    box = np.array([x, y, x + side, y + side], np.float32)
    return Face(box=box, prob=prob, landmarks=np.zeros((5, 2)), crop_box=box.astype(int))


def test_tracks_follow_people_across_frames_and_gaps():
    frames = []
    for i in range(10):
        faces = [face_at(10 + 8 * i, 20), face_at(300 - 8 * i, 40)]  # two people walking past each other
        if i == 4:
            faces = faces[:1]  # the second is missed in one frame
        frames.append(FrameFaces(i, i / 10, 400, 300, faces))
    frames.append(FrameFaces(10, 1.0, 400, 300, [face_at(200, 250)]))  # someone new
    tracks = link_tracks(frames)
    assert [len(t.frames) for t in tracks] == [10, 9, 1]
    assert {f.faces[0].track for f in frames[:10]} == {0}
    assert {f.faces[1].track for f in frames[:10] if len(f.faces) > 1} == {1}


def test_a_track_ends_after_a_long_gap():
    frames = [FrameFaces(i, float(i), 100, 100, [face_at(10, 10)] if i in (0, 9) else []) for i in range(10)]
    assert len(link_tracks(frames, FaceConfig(track_max_gap=4))) == 2


def test_video_scan_gives_one_track(media_dir, detector):
    frames = detector.scan(iter_frames(media_dir / "pan.mp4", SamplingConfig(frames=8)))
    assert [len(f.faces) for f in frames] == [1] * 8
    assert len(link_tracks(frames)) == 1


def moving_face(n: int) -> list[Frame]:
    """`n` (up to 40) frames of the astronaut's face moving a few pixels from one to the next."""
    return [Frame(i, i / 10, np.ascontiguousarray(img))
            for i, img in enumerate(samples.moving_crop(samples.astronaut(), 40))][:n]


def detections(detector: FaceDetector, frames: list[Frame]) -> tuple[list[int], list[FrameFaces]]:
    """Scan the frames: the indices of those the full cascade ran on, and what was found."""
    calls, detect = [], detector.detect
    detector.detect = lambda images, *a, **k: calls.append(next(f.index for f in frames if f.image is images[0])) \
        or detect(images, *a, **k)
    found = detector.scan(frames)
    return calls, found


def test_following_keeps_a_face_that_moves_a_little():
    detector = FaceDetector(FaceConfig(device="cpu"))
    frames = moving_face(2)
    (before,), (now,) = detector.detect([f.image for f in frames])
    assert abs(before.box[0] - now.box[0]) > 4  # it did move
    (followed,) = detector.follow(frames[1].image, [before], 96 / (before.box[2] - before.box[0]))
    assert iou(followed.box[None], now.box[None])[0, 0] > 0.8
    assert followed.prob > 0.95 and followed.crop.shape == (224, 224, 3)


def test_a_followed_face_needs_only_track_keep():
    """A face found before stays at O-Net's `track_keep`, where a new face would need thresholds[2]."""
    frames = moving_face(2)
    (before,) = FaceDetector(FaceConfig(device="cpu")).detect([frames[0].image])[0]
    strict = FaceDetector(FaceConfig(device="cpu", thresholds=(0.85, 0.95, 1.0), track_keep=0.9))
    assert strict.detect([frames[1].image])[0] == []  # no face is new at probability above 1
    (followed,) = strict.follow(frames[1].image, [before], 96 / (before.box[2] - before.box[0]))
    (now,) = FaceDetector(FaceConfig(device="cpu")).detect([frames[1].image])[0]
    assert iou(followed.box[None], now.box[None])[0, 0] > 0.8


def test_track_keep_above_the_finding_threshold_is_refused():
    with pytest.raises(ValueError, match="track_keep"):
        FaceConfig(thresholds=(0.85, 0.95, 0.9), track_keep=0.95)


def test_full_cascade_on_every_kth_frame_only():
    frames = moving_face(10)
    assert detections(FaceDetector(FaceConfig(device="cpu", track_every=4)), frames)[0] == [0, 4, 8]


def test_a_lost_track_makes_the_full_cascade_run():
    frames = moving_face(3)
    x1, y1, x2, y2 = FaceDetector(FaceConfig(device="cpu")).detect([frames[1].image])[0][0].box.astype(int)
    frames[1].image[y1:y2, x1:x2] = 128  # the face is gone, the scene the same
    calls, found = detections(FaceDetector(FaceConfig(device="cpu", scene_change=255)), frames)
    assert calls == [0, 1, 2] and [len(f.faces) for f in found] == [1, 0, 1]


def test_a_scene_cut_makes_the_full_cascade_run():
    frames = moving_face(3)
    frames[2].image[:] //= 3  # much darker: the same face where it was, in another scene
    assert detections(FaceDetector(FaceConfig(device="cpu")), frames)[0] == [0, 2]


def test_tracking_finds_the_faces_the_full_cascade_finds(media_dir):
    frames = list(iter_frames(media_dir / "pan.mp4", SamplingConfig(frames=16)))
    tracked = FaceDetector(FaceConfig(device="cpu")).scan(frames)
    full = FaceDetector(FaceConfig(device="cpu", track_every=1)).scan(frames)
    assert [len(f.faces) for f in tracked] == [len(f.faces) for f in full] == [1] * 16
    a, b = (np.array([x.faces[0].box for x in found]) for found in (tracked, full))
    offset = np.linalg.norm((a[:, :2] + a[:, 2:] - b[:, :2] - b[:, 2:]) / 2, axis=1)  # box centres, pixels
    assert offset.mean() < 3 and offset.max() < 0.1 * (b[:, 2] - b[:, 0]).min()
