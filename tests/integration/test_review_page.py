"""The reviewer workbench in headless Chromium (Debian's, driven by Playwright) at 1366x900: media
that plays and seeks, charts linked to the player, evidence, the queue, "mine", keyboard flow.
Screenshots of a video, an audio and an image item land in out/test-artifacts/."""

from __future__ import annotations

import json
import re
import time
from itertools import combinations

import httpx
import pytest
from conftest import KEYS, ROOT, Server, review_page, server_config
from playwright.sync_api import expect

from detector import samples

pytestmark = pytest.mark.slow
SHOTS = ROOT / "out" / "test-artifacts"
PRESETS = ["lips lag the voice", "genuine recording"]
UPLOADS = ["talk.webm", "spread.webm", "sweep.wav", "photo.jpg", "appeal.jpg", "keys.png", "held1.webp", "held2.bmp",
           "look.gif", "policy.webm", "policy.wav", "policy.jpg", "draft1.jpg", "draft2.jpg", "next1.jpg", "next2.jpg",
           "stale1.jpg", "stale2.jpg", "reload.webm", "senior.jpg", "amend.jpg",
           "step.webm", "slow.jpg"]  # each test takes its own
PHOTOS = ["draft1.jpg", "draft2.jpg", "next1.jpg", "next2.jpg", "stale1.jpg", "stale2.jpg", "senior.jpg", "amend.jpg", "slow.jpg"]


@pytest.fixture(scope="module")
def workbench(bundles, media_dir, tmp_path_factory):
    """One server with one upload of each kind (and a few photos), every one queued for review."""
    tmp = tmp_path_factory.mktemp("workbench")
    face = samples.astronaut()
    samples.write_video(tmp / "talk.webm", samples.moving_crop(face, 100), fps=10, audio=samples.chirp(10.0))
    for name in ("spread.webm", "reload.webm", "step.webm"):
        (tmp / name).write_bytes((tmp / "talk.webm").read_bytes())
    samples.write_video(tmp / "policy.webm", samples.moving_crop(face, 30), fps=10, audio=samples.chirp(3.0))
    samples.write_audio(tmp / "sweep.wav", samples.chirp(4.0))
    samples.write_audio(tmp / "policy.wav", samples.chirp(3.0))
    for name, source in (("photo.jpg", "astronaut.jpg"), ("appeal.jpg", "astronaut.jpg"), ("keys.png", "astronaut.png"), ("held1.webp", "astronaut.webp"),
                         ("held2.bmp", "astronaut.bmp"), ("look.gif", "astronaut.gif"),
                         ("policy.jpg", "astronaut.jpg"), *((n, "astronaut.jpg") for n in PHOTOS)):
        (tmp / name).write_bytes((media_dir / source).read_bytes())
    cfg = server_config(bundles, tmp, review={"queue_decisions": ["likely_fake", "review", "clear"],
                                              "preset_reasons": PRESETS})
    server = Server(cfg, tmp).start()
    ids = {name: upload(server, tmp / name) for name in UPLOADS}
    server.ids, server.folder = ids, tmp
    yield server
    server.kill()


def upload(server: Server, path) -> str:
    r = httpx.post(f"{server.url}/v1/uploads", params={"wait": 120}, headers={"X-API-Key": KEYS["uploader"]},
                   files={"file": (path.name, path.read_bytes())},
                   data={"metadata": json.dumps({"channel": "newsdesk"})}, timeout=180)
    assert r.json()["status"] == "scored", r.text
    return r.json()["id"]


@pytest.fixture
def page_of(browser, workbench):
    pages = []

    def open_page(reviewer: str):
        pages.append(review_page(browser, workbench, reviewer))
        return pages[-1]

    yield open_page
    for p in pages:
        p.close()


def claim(page, name: str) -> None:
    """Open a queued upload's item from the queue, then claim it from the page."""
    page.locator("#queue tr.item", has_text=name).click()
    page.click("#claim-this")
    expect(page.locator("#readonly")).to_be_hidden()


def decide_by_keys(page, reason: str, key: str) -> None:
    """Type a reason, leave the box, press a label's key: what a reviewer does to decide."""
    page.fill("#reason", reason)
    page.keyboard.press("Escape")
    page.keyboard.press(key)


def fits_the_screen(page, selectors: list[str]) -> None:
    """Nothing scrolls at 1366x900 and each of `selectors` is visible inside the window."""
    assert page.evaluate("document.documentElement.scrollHeight <= innerHeight && "
                         "document.querySelector('main').scrollHeight <= document.querySelector('main').clientHeight")
    for sel in selectors:
        box = page.locator(sel).first.bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= 900, sel


def test_media_bytes_go_to_reviewers_with_range_and_never_to_submitters(workbench):
    uid, raw = workbench.ids["talk.webm"], (workbench.folder / "talk.webm").read_bytes()
    url = f"{workbench.url}/v1/review/media/{uid}"
    r = httpx.get(url, headers={"X-API-Key": KEYS["alice"], "Range": "bytes=100-199"})
    assert (r.status_code, r.headers["content-range"], r.content) == (206, f"bytes 100-199/{len(raw)}", raw[100:200])
    assert r.headers["content-type"] == "video/webm"
    assert httpx.get(url, headers={"X-API-Key": KEYS["uploader"]}).status_code == 403
    assert httpx.get(f"{url}/link", headers={"X-API-Key": KEYS["uploader"]}).status_code == 403
    link = httpx.get(f"{url}/link", headers={"X-API-Key": KEYS["alice"]}).json()["url"]
    played = httpx.get(workbench.url + link, headers={"Range": "bytes=0-9"})  # what <video src> does: no key header
    assert (played.status_code, played.content) == (206, raw[:10])
    assert httpx.get(workbench.url + link.replace(uid, workbench.ids["sweep.wav"])).status_code == 403  # one upload each
    log, deadline = workbench.folder / f"serve-{workbench.port}.log", time.monotonic() + 30
    while f"/v1/review/media/{uid}?token=" not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.05)  # the server's output reaches the file through a copying thread
    text = log.read_text(errors="replace")
    assert f"/v1/review/media/{uid}?token=[redacted]" in text and link.split("token=")[1] not in text


def test_queue_shows_columns_opens_read_only_and_claims(page_of, workbench):
    page = page_of("carol")
    row = page.locator("#queue tr.item", has_text="look.gif")
    expect(row).to_contain_text(re.compile(r"\d+ (s|min)\s*look\.gif\s*image\s*(review|likely_fake|clear)\s*\d\.\d{3}"))
    expect(row.locator("td.meta")).to_have_text("newsdesk")
    expect(row.locator("td.meta")).to_have_attribute("title", "channel: newsdesk")
    row.click()
    expect(page.locator("#readonly")).to_be_visible()
    expect(page.locator("#file-name")).to_have_text("look.gif")
    expect(page.locator("#models")).to_have_text(re.compile(r"^decided by face [\w-]+@[0-9a-f]{16}"))  # which version
    expect(page.locator("button[data-label=confirmed_fake]")).to_be_disabled()
    page.keyboard.press("f")
    expect(page.locator("#status")).to_contain_text("read-only")
    page.click("#claim-this")
    expect(page.locator("button[data-label=confirmed_fake]")).to_be_enabled()
    expect(page.locator("#mine tr.item", has_text="look.gif")).to_have_count(1)
    page.screenshot(path=str(SHOTS / "review_queue.png"))


def test_video_player_and_chart_follow_each_other_with_faces_boxed(page_of, workbench):
    page = page_of("alice")
    claim(page, "talk.webm")
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    verdict = httpx.get(f"{workbench.url}/v1/uploads/{workbench.ids['talk.webm']}",
                        headers={"X-API-Key": KEYS["alice"]}).json()["verdict"]
    faces = verdict["visual"]["faces"]
    expect(page.locator("#timeline polyline.track")).to_have_count(len(faces))
    expect(page.locator("#legend .legend-item")).to_have_count(len(faces))
    assert page.locator("#timeline .tick-y").all_text_contents() == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    ticks = page.locator("#timeline .tick-x").all_text_contents()
    assert ticks[0] == "0 s" and "10 s" in ticks  # a 10 s clip
    assert page.locator("#timeline .threshold-label").all_text_contents() == ["likely fake 0.990", "review 0.000"]
    expect(page.locator("#why")).to_have_text(  # each model against its own thresholds
        re.compile(r"^face \d\.\d{3} >= review 0\.000 · voice \d\.\d{3} (>=|<) (review|likely fake) \d\.\d{3}$"))
    expect(page.locator("#voice rect.segment")).to_have_count(len(verdict["audio"]["segments"]))
    expect(page.locator("#voice-legend")).to_contain_text("voice score")
    box = page.locator("#timeline").bounding_box()  # click the chart at 5 s: the player seeks there
    page.mouse.click(box["x"] + box["width"] * (40 + 5 / page.evaluate("player.duration") * (760 - 150)) / 760,
                     box["y"] + 60)
    page.wait_for_function("Math.abs(player.currentTime - 5) < 0.2")
    first = faces[0]["frames"][0]
    page.evaluate(f"player.currentTime = {first['t']}")  # the player moves: the playhead and the boxes follow
    expect(page.locator("#timeline .playhead")).to_have_attribute("data-t", f"{first['t']:.3f}")
    expect(page.locator("#boxes rect.face").first).to_have_attribute("x", f"{first['box'][0]:g}")
    fits_the_screen(page, ["#player", "#timeline", "#voice", "#reason", "button[data-label=cleared]", "#evidence figure"])
    page.wait_for_function("!player.seeking && player.readyState >= 2")  # the frame the boxes belong to is painted
    page.screenshot(path=str(SHOTS / "review_video.png"))


def test_evidence_is_spread_over_the_clip_and_enlarges(page_of, workbench):
    page = page_of("bob")
    page.locator("#queue tr.item", has_text="spread.webm").click()
    figures = page.locator("#evidence figure")
    expect(figures.first).to_be_visible()
    times = [float(t.split(" s")[0]) for t in figures.locator("figcaption").all_inner_texts()]
    assert len(times) >= 2 and all(abs(a - b) >= 2.5 for a, b in combinations(times, 2))  # 10 s clip, 4 crops
    figures.nth(1).click()
    expect(page.locator("#zoom")).to_be_visible()
    expect(page.locator("#zoom-caption")).to_have_text(figures.nth(1).locator("figcaption").inner_text())
    page.wait_for_function("document.querySelector('#zoom img').naturalWidth > 0")
    assert page.locator("#zoom img").bounding_box()["width"] > 2 * figures.first.locator("img").bounding_box()["width"]
    page.wait_for_function(f"Math.abs(player.currentTime - {times[1]}) < 0.05")  # and the player went there


def test_audio_only_item_gets_a_player_and_voice_chart_but_no_faces(page_of, workbench):
    page = page_of("alice")
    claim(page, "sweep.wav")
    page.wait_for_function("document.getElementById('player').tagName === 'AUDIO' && player.readyState >= 1")
    expect(page.locator("#evidence-col")).to_be_hidden()
    expect(page.locator("#legend .legend-item")).to_have_text("voice")
    assert page.locator("#timeline .threshold-label").all_text_contents() == ["likely fake 1.000", "review 1.000"]
    expect(page.locator("#voice rect.segment").first).to_be_visible()
    expect(page.locator("#sound")).to_be_visible()  # waveform over spectrogram, under the voice band
    page.wait_for_function("document.getElementById('sound').naturalWidth > 0")
    box = page.locator("#sound").bounding_box()  # a click on it seeks: three quarters of the way in
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
    page.wait_for_function("Math.abs(player.currentTime / player.duration - 0.75) < 0.05")
    fits_the_screen(page, ["#player", "#timeline", "#voice", "#sound", "#reason", "button[data-label=cleared]"])
    page.screenshot(path=str(SHOTS / "review_audio.png"))


def test_image_item_shows_the_photo_with_faces_boxed_and_no_timeline(page_of, workbench):
    page = page_of("alice")
    claim(page, "photo.jpg")
    expect(page.locator("#boxes rect.face")).to_have_count(1)
    expect(page.locator("#charts")).to_be_hidden()
    expect(page.locator("#evidence figure").first).to_be_visible()
    fits_the_screen(page, ["#player", "#reason", "button[data-label=cleared]", "#evidence figure"])
    page.screenshot(path=str(SHOTS / "review_image.png"))


def test_shortcuts_rest_while_typing_presets_fill_and_ctrl_enter_submits(page_of, workbench):
    page = page_of("bob")
    claim(page, "keys.png")
    page.click("#reason")
    page.keyboard.type("fine")  # "f" and "e" are shortcuts outside the box, letters inside it
    expect(page.locator("#reason")).to_have_value("fine")
    expect(page.locator("#mine tr.item", has_text="keys.png")).to_have_count(1)  # nothing was decided
    page.keyboard.press("Escape")
    page.keyboard.press("2")  # the deployment's second preset reason
    expect(page.locator("#reason")).to_have_value(PRESETS[1])
    page.fill("#reason", "")
    page.keyboard.press("Escape")
    page.keyboard.press("c")  # no reason yet: the label waits in the box
    expect(page.locator("#reason")).to_be_focused()
    page.keyboard.type("lighting is consistent")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#status")).to_contain_text("cleared")
    item = httpx.get(f"{workbench.url}/v1/review/items?state=decided", headers={"X-API-Key": KEYS["bob"]}).json()
    assert [(i["label"], i["reason"]) for i in item if i["upload_id"] == workbench.ids["keys.png"]] == [
        ("cleared", "lighting is consistent")]


def test_mine_survives_a_reload_counts_down_and_releases(page_of, workbench):
    page = page_of("dave")
    claim(page, "held1.webp")
    claim(page, "held2.bmp")
    page.reload()  # the key stays in this tab's session
    held = page.locator("#mine tr.item")
    expect(held).to_have_count(2)
    expect(held.first.locator(".lease")).to_have_text(re.compile(r"^[45]:\d\d$"))  # 5 min leases
    page.keyboard.press("n")  # held items come first, not "nothing to review"
    expect(page.locator("#file-name")).to_have_text(re.compile(r"held[12]\."))
    held.filter(has_text="held1.webp").get_by_role("button", name="Release").click()
    expect(held).to_have_count(1)
    expect(page.locator("#queue tr.item", has_text="held1.webp")).to_have_count(1)


def test_the_queue_refreshes_itself(page_of, workbench):
    page = page_of("carol")
    expect(page.locator("#queue tr.item", has_text="late.jpg")).to_have_count(0)
    (workbench.folder / "late.jpg").write_bytes((workbench.folder / "photo.jpg").read_bytes())
    upload(workbench, workbench.folder / "late.jpg")
    expect(page.locator("#queue tr.item", has_text="late.jpg")).to_have_count(1, timeout=15_000)


def test_an_appeal_goes_to_another_reviewer_with_the_first_decision(page_of, workbench):
    alice = page_of("alice")
    claim(alice, "appeal.jpg")
    decide_by_keys(alice, "warped ear between frames", "f")
    expect(alice.locator("#status")).to_contain_text("confirmed_fake")
    r = httpx.post(f"{workbench.url}/v1/uploads/{workbench.ids['appeal.jpg']}/appeal", json={"reason": "it is really me"},
                   headers={"X-API-Key": KEYS["uploader"]})
    assert r.status_code == 201
    bob = page_of("bob")
    claim(bob, "appeal.jpg")
    expect(bob.locator("#appeal")).to_contain_text('"it is really me". First decision: confirmed_fake by alice, '
                                                   '"warped ear between frames"')
    expect(bob.locator("#appeal-buttons")).to_be_visible()
    expect(bob.locator("#detection-buttons")).to_be_hidden()
    decide_by_keys(bob, "second photo matches", "o")
    expect(bob.locator("#status")).to_contain_text("overturned")


def test_the_page_works_under_its_content_security_policy(browser, workbench):
    headers = httpx.get(f"{workbench.url}/review").headers
    assert "script-src" not in headers["content-security-policy"]  # scripts fall to default-src 'self'
    assert "frame-ancestors 'none'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    page = review_page(browser, workbench, "dave", bypass_csp=False)
    refused = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.reload()  # the whole load again, listened to
    page.locator("#queue tr.item", has_text="policy.webm").click()
    expect(page.locator("#file-name")).to_have_text("policy.webm")
    expect(page.locator("#evidence img").first).to_be_visible()
    expect(page.locator("video")).to_have_attribute("src", re.compile(r"/v1/review/media/"))
    for name, player in (("policy.wav", "audio"), ("policy.jpg", "#stage img")):  # the other two players
        page.locator("#queue tr.item", has_text=name).click()
        expect(page.locator("#file-name")).to_have_text(name)
        expect(page.locator(player).first).to_be_visible()
    page.close()
    assert refused == []


def item_of(workbench, name: str, state: str = "pending") -> dict:
    items = httpx.get(f"{workbench.url}/v1/review/items", params={"state": state},
                      headers={"X-API-Key": KEYS["admin"]}).json()
    (item,) = [i for i in items if i["upload_id"] == workbench.ids[name]]
    return item


def decided(workbench, name: str) -> list[dict]:
    items = httpx.get(f"{workbench.url}/v1/review/items", params={"state": "decided"},
                      headers={"X-API-Key": KEYS["admin"]}).json()
    return [i for i in items if i["upload_id"] == workbench.ids[name]]


def test_a_draft_belongs_to_the_item_it_was_typed_for(page_of, workbench):
    page = page_of("carol")
    claim(page, "draft1.jpg")
    page.fill("#reason", "typed for the first item")
    page.keyboard.press("Escape")
    claim(page, "draft2.jpg")
    expect(page.locator("#reason")).to_have_value("")  # not the first item's text
    page.keyboard.press("f")
    expect(page.locator("#reason")).to_be_focused()  # the label waits for this item's own reason
    assert decided(workbench, "draft2.jpg") == []
    page.locator("#mine tr.item", has_text="draft1.jpg").click()
    expect(page.locator("#reason")).to_have_value("typed for the first item")  # kept with its item


def test_n_after_a_decision_never_reopens_the_decided_item(page_of, workbench):
    page = page_of("admin")
    claim(page, "next2.jpg")
    claim(page, "next1.jpg")  # held: next1 first (older), next2; next1 open
    expect(page.locator("#mine tr.item", has_text="next")).to_have_count(2)  # the page's held list has both
    held = []  # the held list's reload waits until the test lets it go: "n" acts on what the page knew
    page.route(re.compile(r".*/v1/review/items\?state=claimed.*"), lambda route: held.append(route))
    while not held:  # the page's next refresh is held: no reload of the list started earlier can land later
        page.wait_for_timeout(100)
    decide_by_keys(page, "ear warps between frames", "f")
    expect(page.locator("#status")).to_contain_text("confirmed_fake")
    page.keyboard.press("n")
    expect(page.locator("#file-name")).to_have_text("next2.jpg")
    expect(page.locator("#readonly")).to_be_hidden()
    for route in held:
        route.continue_()
    page.unroute(re.compile(r".*/v1/review/items\?state=claimed.*"))
    assert [i["label"] for i in decided(workbench, "next1.jpg")] == ["confirmed_fake"] and decided(workbench, "next2.jpg") == []


def test_a_decision_made_while_the_media_loads_is_what_the_status_line_says(page_of, workbench):
    """A reviewer quicker than the media: the claim's late end does not write over the decision's line."""
    page = page_of("carol")
    link = re.compile(r".*/v1/review/media/[^/]+/link$")
    held = []  # the media's link waits until the test lets it go
    page.route(link, lambda route: held.append(route))
    claim(page, "slow.jpg")
    decide_by_keys(page, "genuine recording", "c")
    expect(page.locator("#status")).to_contain_text(": cleared")
    assert held  # the item was decided with its media still loading
    with page.expect_request(lambda r: "state=pending" in r.url):  # the claim's own ending reloads the queue
        for route in held:
            route.continue_()
    expect(page.locator("#status")).to_contain_text(": cleared")
    page.unroute(link)
    assert [i["label"] for i in decided(workbench, "slow.jpg")] == ["cleared"]


def test_an_open_item_shows_who_claimed_or_decided_it_and_a_refused_decision_stops_the_page(page_of, workbench):
    bob = page_of("bob")
    bob.locator("#queue tr.item", has_text="stale1.jpg").click()
    expect(bob.locator("#item-state")).to_have_text("read-only, pending")
    item = item_of(workbench, "stale1.jpg")
    r = httpx.post(f"{workbench.url}/v1/review/items/{item['id']}/claim", headers={"X-API-Key": KEYS["alice"]})
    assert r.status_code == 200
    expect(bob.locator("#item-state")).to_have_text("read-only, claimed by alice", timeout=15_000)  # the page's refresh
    expect(bob.locator("#claim-this")).to_be_disabled()

    carol = page_of("carol")
    claim(carol, "stale2.jpg")
    mine = item_of(workbench, "stale2.jpg", "claimed")
    assert httpx.post(f"{workbench.url}/v1/review/items/{mine['id']}/release", json={"version": mine["version"]},
                      headers={"X-API-Key": KEYS["carol"]}).status_code == 200  # from another tab, say
    assert httpx.post(f"{workbench.url}/v1/review/items/{mine['id']}/claim",
                      headers={"X-API-Key": KEYS["dave"]}).status_code == 200
    decide_by_keys(carol, "consistent lighting", "c")
    expect(carol.locator("#status")).to_contain_text("claimed by dave")
    expect(carol.locator("button[data-label=cleared]")).to_be_disabled()
    expect(carol.locator("#lease")).to_be_hidden()
    assert decided(workbench, "stale2.jpg") == []


def test_a_reload_keeps_the_open_item_its_draft_and_its_playhead(page_of, workbench):
    page = page_of("alice")
    claim(page, "reload.webm")
    page.fill("#reason", "half typed")
    page.evaluate("document.getElementById('player').currentTime = 4")
    expect(page.locator("#timeline .playhead")).to_have_attribute("data-t", "4.000")
    page.reload()
    expect(page.locator("#file-name")).to_have_text("reload.webm")
    assert "#item=" in page.url
    expect(page.locator("#reason")).to_have_value("half typed")
    expect(page.locator("#readonly")).to_be_hidden()
    expect(page.locator("#timeline .playhead")).to_have_attribute("data-t", "4.000")


def test_the_page_renews_the_leases_it_holds_and_warns_near_their_end(browser, bundles, media_dir, tmp_path):
    server = Server(server_config(bundles, tmp_path, review={"lease_s": 8, "queue_decisions": ["likely_fake", "review", "clear"]}),
                    tmp_path).start()
    try:
        (tmp_path / "lease.jpg").write_bytes((media_dir / "astronaut.jpg").read_bytes())
        upload(server, tmp_path / "lease.jpg")
        page = review_page(browser, server, "alice")
        page.keyboard.press("n")
        expect(page.locator("#readonly")).to_be_hidden()
        expect(page.locator("#lease")).to_have_class(re.compile(r"\bwarn\b"))  # under a minute left
        page.wait_for_timeout(12_000)  # longer than the lease: only renewals keep it
        (item,) = httpx.get(f"{server.url}/v1/review/items", params={"state": "claimed"},
                            headers={"X-API-Key": KEYS["alice"]}).json()
        assert item["reviewer"] == "alice" and item["version"] == 2  # claimed once, renewed without a new version
        expect(page.locator("#readonly")).to_be_hidden()
        expect(page.locator("button[data-label=confirmed_fake]")).to_be_enabled()
        page.close()
    finally:
        server.kill()


def test_rows_and_evidence_open_from_the_keyboard_and_question_mark_lists_the_keys(page_of, workbench):
    page = page_of("carol")
    row = page.locator("#queue tr.item", has_text="spread.webm")
    row.focus()  # where Tab lands: rows are in the tab order
    assert page.evaluate("document.activeElement.tabIndex") == 0
    page.keyboard.press("Enter")
    expect(page.locator("#file-name")).to_have_text("spread.webm")
    page.locator("#evidence figure").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#zoom")).to_be_visible()
    page.keyboard.press("Escape")
    page.locator("#reason").focus()
    page.keyboard.press("Escape")  # leave the box: keys act again
    page.keyboard.press("?")
    expect(page.locator("#keys")).to_be_visible()
    expect(page.locator("#keys")).to_contain_text("Enter opens it")


def test_an_escalation_reaches_a_senior_with_its_note_and_only_final_labels(page_of, workbench):
    bob = page_of("bob")
    claim(bob, "senior.jpg")
    decide_by_keys(bob, "a minister's face: needs a senior", "e")
    expect(bob.locator("#status")).to_contain_text("escalated")
    expect(bob.locator("#queue tr.item", has_text="senior.jpg")).to_have_count(0)  # not in a reviewer's queue
    admin = page_of("admin")
    row = admin.locator("#queue tr.item", has_text="senior.jpg")
    expect(row.locator("td").first).to_contain_text("escalation")
    row.click()
    admin.click("#claim-this")
    expect(admin.locator("#appeal")).to_have_text('Escalated by bob: "a minister\'s face: needs a senior". Your decision is final.')
    expect(admin.locator("button[data-label=escalated]")).to_be_hidden()
    expect(admin.locator("button[data-label=confirmed_fake]")).to_be_enabled()
    admin.screenshot(path=str(SHOTS / "review_escalation.png"))
    admin.fill("#reason", "confirmed with the ministry")
    admin.keyboard.press("Escape")
    admin.keyboard.press("e")  # not a label here: nothing happens
    admin.keyboard.press("f")
    expect(admin.locator("#status")).to_contain_text("confirmed_fake")


def test_filters_narrow_the_queue_and_the_next_item_and_survive_a_reload(page_of, workbench):
    dave = {"X-API-Key": KEYS["dave"]}
    for it in httpx.get(f"{workbench.url}/v1/review/items", params={"state": "claimed", "mine": True}, headers=dave).json():
        httpx.post(f"{workbench.url}/v1/review/items/{it['id']}/release", json={"version": it["version"]}, headers=dave)
    page = page_of("dave")  # holding nothing, so `n` claims (held items would come first)
    page.select_option("#f-media_type", "audio")
    rows = page.locator("#queue tr.item")
    expect(rows.locator("td:nth-child(4)", has_not_text="audio")).to_have_count(0)  # the queue refetched, narrowed
    assert rows.count() >= 1
    page.keyboard.press("n")
    expect(page.locator("#readonly")).to_be_hidden()
    expect(page.locator("#media-type")).to_have_text("audio")  # the next item the filters keep
    page.reload()
    expect(page.locator("#f-media_type")).to_have_value("audio")
    page.locator("#mine tr.item button", has_text="Release").click()  # for the other tests' items
    expect(page.locator("#mine tr.item")).to_have_count(0)


def test_a_recent_decision_reopens_from_recent_and_is_amended(page_of, workbench):
    page = page_of("carol")
    claim(page, "amend.jpg")
    decide_by_keys(page, "looks genuine", "c")
    recent = page.locator("#recent tr.item", has_text="amend.jpg")
    expect(recent).to_contain_text("cleared")
    recent.click()
    expect(page.locator("#readonly")).to_be_hidden()  # my own decision, inside the window: I may choose again
    expect(page.locator("#reason")).to_have_value("looks genuine")
    expect(page.locator("button[data-label=escalated]")).to_be_hidden()
    decide_by_keys(page, "blending seam at the jaw on a second look", "f")
    expect(recent).to_contain_text("confirmed_fake")
    item_id = workbench_item(workbench, "amend.jpg")
    events = httpx.get(f"{workbench.url}/v1/review/items/{item_id}/audit", headers={"X-API-Key": KEYS["carol"]}).json()
    (amended,) = [e for e in events if e["action"] == "amended"]
    assert amended["detail"]["from"]["label"] == "cleared" and amended["detail"]["label"] == "confirmed_fake"


def workbench_item(server, name: str) -> int:
    """The review item of an upload of the workbench, by its file name."""
    items = httpx.get(f"{server.url}/v1/review/items", params={"state": "decided", "limit": 500},
                      headers={"X-API-Key": KEYS["admin"]}).json()
    (item,) = [i for i in items if i["upload_id"] == server.ids[name]]
    return item["id"]


def test_video_steps_frame_by_frame_and_slows_down_by_keys(page_of, workbench):
    page = page_of("bob")
    claim(page, "step.webm")
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    page.evaluate("player.currentTime = 2")
    page.wait_for_function("!player.seeking")
    page.locator("#player").blur()  # keys go to the page, not the player's own controls
    page.keyboard.press(".")
    page.wait_for_function("Math.abs(player.currentTime - 2.04) < 0.005 && player.paused")  # one frame on
    page.keyboard.press(",")
    page.keyboard.press(",")
    page.wait_for_function("Math.abs(player.currentTime - 1.96) < 0.005")
    page.keyboard.press("[")
    expect(page.locator("#speed")).to_have_text("0.5x")
    assert page.evaluate("player.playbackRate") == 0.5
    page.keyboard.press("]")
    page.keyboard.press("]")
    expect(page.locator("#speed")).to_have_text("1.5x")


def test_a_video_flagged_by_its_voice_shows_voice_moments_as_evidence(browser, bundles, tmp_path):
    """The face model's thresholds out of reach, the voice model's at 0: the voice alone flags the clip."""
    import shutil

    visual, audio = tmp_path / "visual", tmp_path / "audio"
    for src, dst, thresholds in ((bundles[0], visual, {"likely_fake": 0.9999, "review": 0.999}),
                                 (bundles[1], audio, {"likely_fake": 0.9999, "review": 0.0})):
        shutil.copytree(src, dst)
        meta = json.loads((dst / "bundle.json").read_text())
        (dst / "bundle.json").write_text(json.dumps(meta | {"thresholds": thresholds}))
    samples.write_video(tmp_path / "voiced.webm", samples.moving_crop(samples.astronaut(), 60), fps=10,
                        audio=samples.chirp(6.0))
    server = Server(server_config((visual, audio), tmp_path), tmp_path).start()
    try:
        upload(server, tmp_path / "voiced.webm")
        page = review_page(browser, server, "alice")
        claim(page, "voiced.webm")
        expect(page.locator("#why")).to_have_text(re.compile(r"^face \d\.\d{3} < review 0\.999 · voice \d\.\d{3} >= "))
        ticks = [float(t) for t in page.locator("#timeline .tick-y").all_text_contents()]
        assert 0.3 < ticks[0] < 0.5 < 0.999 <= ticks[-1] <= 1  # zoomed around the scores (0.5) and thresholds
        moments = page.locator("#evidence figure.voice-moment")
        expect(moments.first).to_be_visible()
        assert page.locator("#evidence img").count() == 0  # no face crops: the face model did not flag it
        caption = moments.first.locator("figcaption").text_content()
        start = float(caption.split("-")[0])
        page.evaluate(f"window.starts = 0; player.addEventListener('seeked', () => "
                      f"{{ if (Math.abs(player.currentTime - {start}) < 0.05) window.starts++; }})")
        moments.first.click()  # plays that window over and over: back to its start at its end
        page.wait_for_function("window.starts >= 2", timeout=20_000)
        page.keyboard.press("l")
        expect(page.locator("#status")).to_have_text("loop stopped")
        page.evaluate("player.pause()")
        expect(page.locator("#voice line.voice-threshold")).to_have_count(2)  # the voice model's own thresholds
        expect(page.locator("#voice polyline.voice-line")).to_have_count(1)
        page.screenshot(path=str(SHOTS / "review_video_voice.png"))
        page.close()
    finally:
        server.kill()


def test_fifty_mixed_items_worked_by_keyboard_alone_are_each_filed_as_meant(browser, bundles, tmp_path):
    """n, a label key, the reason typed, Ctrl+Enter: fifty times over photos, clips and voice notes; each
    decision lands on the item it was typed for (the reason names the file)."""
    from concurrent.futures import ThreadPoolExecutor

    face = samples.astronaut()
    samples.write_video(tmp_path / "clip.webm", samples.moving_crop(face, 10), fps=10, audio=samples.chirp(1.0))
    samples.write_audio(tmp_path / "note.wav", samples.chirp(1.5))
    samples.write_image(tmp_path / "photo.png", face)
    kinds = ["photo.png"] * 30 + ["clip.webm"] * 10 + ["note.wav"] * 10
    names = []
    for i, kind in enumerate(kinds):
        stem, ext = kind.split(".")
        names.append(f"k{i:02d}_{'fake' if i % 3 == 0 else 'real'}_{stem}.{ext}")
        (tmp_path / names[-1]).write_bytes((tmp_path / kind).read_bytes())
    cfg = server_config(bundles, tmp_path, review={"queue_decisions": ["likely_fake", "review", "clear", "no_signal"]})
    server = Server(cfg, tmp_path).start()
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: upload(server, tmp_path / n), names))
        page = review_page(browser, server, "alice")
        shown = ""
        for _ in names:
            page.keyboard.press("n")
            expect(page.locator("#detail")).to_be_visible()
            expect(page.locator("#item-id")).not_to_have_text(shown)  # the next item is open, not the last one
            expect(page.locator("#readonly")).to_be_hidden()
            shown, name = page.locator("#item-id").text_content(), page.locator("#file-name").text_content()
            page.keyboard.press("f" if "_fake_" in name else "c")  # no reason yet: the reason box takes the keys
            expect(page.locator("#reason")).to_be_focused()
            page.keyboard.type(f"checked {name}")
            page.keyboard.press("Control+Enter")
            expect(page.locator("#status")).to_contain_text(": confirmed_fake" if "_fake_" in name else ": cleared")
            expect(page.locator("#detail")).to_be_hidden()
        page.close()
        decided = httpx.get(f"{server.url}/v1/review/items", params={"state": "decided", "limit": 500},
                            headers={"X-API-Key": KEYS["admin"]}).json()
        assert len(decided) == len(names)
        for item in decided:
            assert item["reason"] == f"checked {item['filename']}"  # typed for this very item
            assert item["label"] == ("confirmed_fake" if "_fake_" in item["filename"] else "cleared")
    finally:
        server.kill()
