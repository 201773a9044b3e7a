#!/usr/bin/env python3
"""tests/browser/test_search_page.py — the search page in a real browser (ctest entry "browser").

Headless Chromium driven by Selenium loads the page of `vislang demo` (a toy-world image folder, indexed
with --model, served on a free port) and checks what a user sees:
  1. the header reports the DB (images, model);
  2. typing a text query shows result cards in the order the API ranks them (/api/search) — with the
     trained toy model (weights/toy_clip) also that the top results match the query's label;
  3. uploading an indexed image ranks that very image first, with cosine ~1;
  4. zero-shot labelling of the upload shows one bar per label;
  5. "more like this" on a card shows other images;
  6. the ITM re-ranking control is hidden for a CLIP model; then, on a second demo DB built with the tiny
     BLIP-2 fixture (--blip2-model, default tests/fixtures/blip2/hf), it is shown, and a text query with
     "re-rank top N with ITM" shows the API's rerank=N order with P(match) on the re-scored cards;
and saves a screenshot (--out DIR/search_page.png; the BLIP-2 page: search_page_blip2.png).

Exit status 77 (ctest: Skipped) with a line "SKIPPED: why" when chromium, chromedriver or selenium is
absent. Run by hand:
  python3 tests/browser/test_search_page.py --vislang build/bin/vislang --model tests/fixtures/clip/hf_vit --out /tmp
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

SKIP = 77


def skip(why):
    print(f"SKIPPED: browser test: {why}")
    sys.exit(SKIP)


def find_browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def api(base, path):
    with urllib.request.urlopen(base + path, timeout=60) as r:
        return json.loads(r.read().decode())


def start_demo(vislang, model, work, images):
    """`vislang demo` on a fresh folder and a free port: (process, base URL)."""
    server = subprocess.Popen(
        [vislang, "demo", "--model", model, "--dir", work, "--images", str(images), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = server.stdout.readline()
        if not line:
            if server.poll() is not None:
                raise SystemExit(f"FAIL: vislang demo exited {server.returncode}: {server.stderr.read()}")
            continue
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if m:
            return server, m.group(1)
    server.terminate()
    raise SystemExit("FAIL: vislang demo printed no URL")


def stop(server):
    if server is not None and server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vislang", required=True, help="the vislang binary")
    ap.add_argument("--model", required=True, help="model for the demo DB")
    ap.add_argument("--out", required=True, help="folder for the screenshot")
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--blip2-model", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                                                          "blip2", "hf"),
                    help="BLIP-2 model for the ITM re-ranking check ('' skips it)")
    ap.add_argument("--blip2-images", type=int, default=16)
    args = ap.parse_args()

    browser = find_browser()
    driver_path = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    if not browser:
        skip("no chromium (apt-get install chromium chromium-driver; scripts/setup.sh installs them)")
    if not driver_path:
        skip("no chromedriver (apt-get install chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError as e:
        # Debian's python3-selenium lives in the system Python; another python3 may come first on PATH.
        system = "/usr/bin/python3"
        if os.path.exists(system) and os.path.realpath(sys.executable) != os.path.realpath(system) \
                and not os.environ.get("VISLANG_BROWSER_REEXEC"):
            os.environ["VISLANG_BROWSER_REEXEC"] = "1"
            os.execv(system, [system] + sys.argv)
        skip(f"no selenium ({e}; apt-get install python3-selenium)")

    work = tempfile.mkdtemp(prefix="vislang_browser_")
    server = None
    drv = None
    try:
        server, base = start_demo(args.vislang, args.model, work, args.images)
        health = api(base, "api/health")
        print(f"server {base}: {health['images']} images, model {health['model']}")

        opts = webdriver.ChromeOptions()
        opts.binary_location = browser
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1100"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console, for js_errors()
        drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)

        def js_errors():
            """SEVERE console entries since the last call (a missing favicon is not the page's error)."""
            return [e["message"] for e in drv.get_log("browser")
                    if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]

        wait = WebDriverWait(drv, 60)
        drv.get(base)
        wait.until(lambda d: "images" in d.find_element(By.ID, "health").text)
        assert f"{health['images']} images" in drv.find_element(By.ID, "health").text

        def cards():
            return drv.find_elements(By.CSS_SELECTOR, "#results .result")

        itm_ctl = drv.find_element(By.ID, "itm-ctl")
        assert health["family"] == "clip" and not health["itm"], health
        assert not itm_ctl.is_displayed(), "the ITM re-ranking control is shown for a CLIP model"
        print("CLIP model: the ITM re-ranking control is hidden")

        def wait_status(fragment):
            wait.until(lambda d: fragment in d.find_element(By.ID, "status").text)

        # 2. text query: the page shows the API's ranking.
        trained = health["model"].startswith("toy_clip")
        if health["text_queries"]:
            query = "a photo of a red circle."
            box = drv.find_element(By.ID, "q")
            box.clear()
            box.send_keys(query)
            box.send_keys(Keys.ENTER)
            wait_status("results for")
            shown = [int(c.get_attribute("data-id")) for c in cards()]
            k = drv.find_element(By.ID, "k").get_attribute("value")
            expected = [r["id"] for r in api(base, "api/search?" + urllib.parse.urlencode({"q": query, "k": k}))["results"]]
            assert shown == expected, f"page order {shown} != API order {expected}"
            print(f"text query: {len(shown)} cards in the API's order; top: {cards()[0].text.splitlines()[1:2]}")
            if trained:
                labels = [c.find_element(By.CSS_SELECTOR, ".label").text for c in cards()[:3]]
                assert all("red circle" in l for l in labels), f"top labels for '{query}': {labels}"
        else:
            print("note: the server has no tokenizer; text query and zero-shot not checked")

        # 3. upload an indexed image: it ranks first, cosine ~1.
        target = sorted(f for f in os.listdir(os.path.join(work, "images")) if f.endswith(".png"))[7]
        target_path = os.path.realpath(os.path.join(work, "images", target))
        drv.find_element(By.ID, "file").send_keys(target_path)
        wait_status("results for the image")
        first = cards()[0]
        assert first.get_attribute("data-path") == target_path, (first.get_attribute("data-path"), target_path)
        score = float(first.find_element(By.CSS_SELECTOR, ".score").text)
        assert score > 0.999, score
        print(f"upload {target}: ranked first with score {score}")

        # 4. zero-shot on the upload.
        if health["text_queries"]:
            labels = drv.find_element(By.ID, "labels")
            labels.send_keys("red circle, blue square, green star")
            drv.find_element(By.ID, "zs-btn").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#zero-shot .bar")) == 3)
            print("zero-shot: " + "; ".join(b.text.replace("\n", " ") for b in drv.find_elements(By.CSS_SELECTOR, "#zero-shot .bar")))

        # 5. more like this.
        first_id = int(cards()[0].get_attribute("data-id"))
        cards()[0].find_element(By.CSS_SELECTOR, "button.more").click()
        wait_status(f"images like #{first_id}")
        ids = [int(c.get_attribute("data-id")) for c in cards()]
        assert ids and first_id not in ids, ids
        print(f"more like #{first_id}: {len(ids)} others")

        # The screenshot shows the text query's results (the most telling view).
        if health["text_queries"]:
            box = drv.find_element(By.ID, "q")
            box.clear()
            box.send_keys("a photo of a red circle.")
            box.send_keys(Keys.ENTER)
            wait_status("results for “a photo")
            wait.until(lambda d: all(i.get_property("complete") and i.get_property("naturalWidth") > 0
                                     for i in d.find_elements(By.CSS_SELECTOR, "#results img")))
        os.makedirs(args.out, exist_ok=True)
        shot = os.path.join(os.path.abspath(args.out), "search_page.png")
        drv.save_screenshot(shot)
        print(f"screenshot: {shot}")

        errors = js_errors()
        assert not errors, f"JavaScript errors on the CLIP page: {errors}"

        # 6. BLIP-2: the ITM re-ranking control, and a re-ranked text query.
        if args.blip2_model:
            stop(server)
            server, base = start_demo(args.vislang, os.path.abspath(args.blip2_model), os.path.join(work, "blip2"),
                                      args.blip2_images)
            health = api(base, "api/health")
            assert health["family"] == "blip2" and health["itm"], health
            drv.get(base)
            wait.until(lambda d: "images" in d.find_element(By.ID, "health").text)
            assert "BLIP-2" in drv.find_element(By.ID, "health").text, drv.find_element(By.ID, "health").text
            assert drv.find_element(By.ID, "itm-ctl").is_displayed(), "no ITM re-ranking control for a BLIP-2 model"
            query, n = "a photo of a red circle.", 5
            drv.find_element(By.ID, "rerank-on").click()
            box = drv.find_element(By.ID, "rerank-n")
            box.clear()
            box.send_keys(str(n))
            box = drv.find_element(By.ID, "q")
            box.send_keys(query)
            box.send_keys(Keys.ENTER)
            wait_status("re-ranked by ITM")
            shown = [int(c.get_attribute("data-id")) for c in cards()]
            k = drv.find_element(By.ID, "k").get_attribute("value")
            body = api(base, "api/search?" + urllib.parse.urlencode({"q": query, "k": k, "rerank": n}))
            assert shown == [r["id"] for r in body["results"]], (shown, body["results"])
            scores = [c.find_element(By.CSS_SELECTOR, ".score").text for c in cards()]
            want = [f"P(match) {r['itm']:.4f}" if r["itm"] is not None else "P(match) –" for r in body["results"]]
            assert scores == want, (scores, want)
            assert all(s.startswith("P(match) 0") or s.startswith("P(match) 1") for s in scores[:n]), scores
            print(f"BLIP-2 model: control shown; re-rank top {n}: {len(shown)} cards in the API's order, first {scores[0]}")
            drv.save_screenshot(os.path.join(os.path.abspath(args.out), "search_page_blip2.png"))
            errors = js_errors()
            assert not errors, f"JavaScript errors on the BLIP-2 page: {errors}"
        print("no JavaScript errors in the console")

        print("PASS: browser test")
        return 0
    finally:
        if drv is not None:
            drv.quit()
        stop(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
