"""Screenshots of report pages in headless Chromium, for the README:
python experiments/report/screenshot.py PAGE.html OUT.png [--width 1280] [--height H | --until CSS-SELECTOR]
(height: the whole page when not given, capped at --max-height). The commands behind the committed screenshots are
in experiments/report/README.md."""

import argparse
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("page", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--max-height", type=int, default=2400)
    ap.add_argument("--until", default=None, help="CSS selector: the shot ends 16 px below this element")
    args = ap.parse_args()
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
              f"--window-size={args.width},900"):
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(args.page.resolve().as_uri())
        time.sleep(1.0)
        height = args.height or min(driver.execute_script("return document.body.scrollHeight"), args.max_height)
        if args.until:
            height = int(driver.execute_script("return document.querySelector(arguments[0]).getBoundingClientRect()"
                                               ".bottom + window.scrollY", args.until)) + 16
        chrome = driver.execute_script("return window.outerHeight - window.innerHeight")  # the window's own bars
        driver.set_window_size(args.width, height + chrome)
        time.sleep(0.5)
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
