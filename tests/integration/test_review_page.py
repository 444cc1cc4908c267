"""The reviewer page in headless Chromium (Debian's, driven by Playwright): claim, look, decide by key."""

from __future__ import annotations

import httpx
import pytest
from conftest import KEYS, ROOT, Server, review_page, server_config

pytestmark = pytest.mark.slow


def test_a_reviewer_claims_sees_evidence_and_decides_from_the_keyboard(bundles, browser, media_dir, tmp_path):
    server = Server(server_config(bundles, tmp_path), tmp_path).start()
    try:
        with httpx.Client(headers={"X-API-Key": KEYS["uploader"]}, timeout=120) as c:
            for name in ("pan.mp4", "astronaut.jpg"):
                r = c.post(f"{server.url}/v1/uploads", params={"wait": 60}, content=(media_dir / name).read_bytes())
                assert r.json()["status"] == "scored"
        page = review_page(browser, server, "alice", ready="#queue tr.item >> nth=1")  # both uploads wait
        assert page.locator("#queue tr.item").count() == 2
        page.keyboard.press("n")  # claim the most suspicious
        page.wait_for_selector("#detail:not(.hidden)")
        page.wait_for_function("document.querySelectorAll('#thumbs img').length > 0 && "
                               "[...document.querySelectorAll('#thumbs img')].every(i => i.complete && i.naturalWidth > 0)")
        page.wait_for_function("document.querySelectorAll('#frames img').length > 0 && "
                               "[...document.querySelectorAll('#frames img')].every(i => i.complete && i.naturalWidth > 0)")
        item_id = int(page.inner_text("#item-id").lstrip("#"))
        claimed = httpx.get(f"{server.url}/v1/review/items/{item_id}", headers={"X-API-Key": KEYS["alice"]}).json()
        is_video = claimed["upload"]["media_type"] == "video"
        assert page.locator("#timeline polyline.track").count() == len(claimed["upload"]["verdict"]["visual"]["faces"])
        if is_video:  # the clip's voice track is drawn segment by segment
            assert page.locator("#segments span").count() == len(claimed["upload"]["verdict"]["audio"]["segments"])
        page.keyboard.press("f")  # no reason yet: refused
        assert "reason" in page.inner_text("#status")
        page.fill("#reason", "warped ear between frames")
        page.locator("h3").first.click()  # leave the text box: shortcuts work again
        shot = ROOT / "out" / "test-artifacts" / "review_page.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        page.keyboard.press("f")
        page.wait_for_function("document.getElementById('status').textContent.includes('confirmed_fake')")
        assert page.locator("#queue tr.item").count() == 1
        # the uploader appeals; another reviewer sees it with the first decision and its reason
        upload_id = claimed["upload"]["id"]
        r = httpx.post(f"{server.url}/v1/uploads/{upload_id}/appeal", json={"reason": "it is really me"},
                       headers={"X-API-Key": KEYS["uploader"]})
        assert r.status_code == 201
        bob = review_page(browser, server, "bob", ready="#queue td.appeal")
        bob.keyboard.press("n")
        bob.wait_for_selector("#appeal:not(.hidden)")
        text = bob.inner_text("#appeal")
        assert "it is really me" in text and "confirmed_fake by alice" in text and "warped ear" in text
        assert bob.locator("#appeal-buttons").is_visible() and not bob.locator("#detection-buttons").is_visible()
        bob.screenshot(path=str(shot.with_name("review_page_appeal.png")), full_page=True)
        bob.fill("#reason", "second photo matches")
        bob.locator("h3").first.click()
        bob.keyboard.press("o")
        bob.wait_for_function("document.getElementById('status').textContent.includes('overturned')")
        page.close()
        bob.close()
        print(f"screenshot: {shot}")
        assert shot.stat().st_size > 10_000
        item = httpx.get(f"{server.url}/v1/review/items/{item_id}", headers={"X-API-Key": KEYS["alice"]}).json()["item"]
        assert (item["state"], item["label"], item["reviewer"]) == ("decided", "confirmed_fake", "alice")
        assert item["reason"] == "warped ear between frames"
    finally:
        server.kill()
