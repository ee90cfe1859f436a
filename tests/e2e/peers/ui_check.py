"""The captured-mail web interface in headless Chromium (Debian's chromium
and chromium-driver, through Selenium): a message sent by SMTP appears in
the list without a reload, opens, shows its HTML without running or
loading anything, loads remote images only when asked, and is released.

Usage: ui_check.py ADMIN_URL SMTP_PORT SCREENSHOT_DIR
Prints "released QUEUEID" at the end; exits non-zero on any failure.
"""

import http.server
import os
import smtplib
import sys
import threading

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

admin, smtp_port, shots = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(shots, exist_ok=True)

# A web server that counts what the mail's HTML tries to load from it.
hits = []


class Counter(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.end_headers()
        self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

    def log_message(self, *args):
        pass


tracker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
threading.Thread(target=tracker.serve_forever, daemon=True).start()
remote = f"http://127.0.0.1:{tracker.server_address[1]}"

HTML = f"""<html><head><base href="{remote}/base/">
<script>parent.document.title = 'script ran'; fetch('{remote}/script');</script>
<style>body {{ background: url('{remote}/css.png'); }}</style></head>
<body onload="parent.document.title = 'onload ran'">
<h1 id="greeting">Your <b>order</b> is on its way</h1>
<img id="inline" src="cid:logo@shop.example" alt="inline logo">
<img id="pixel" src="{remote}/pixel.gif" alt="tracking pixel">
<a id="js" href="javascript:parent.document.title='link ran'">details</a>
<form action="{remote}/form"><input name="q"></form>
</body></html>"""

# A 1x1 PNG, attached inline and referenced as cid:.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

MESSAGE = (
    "From: =?UTF-8?Q?Z=C3=BCrich_Shop?= <shop@dev.example>\r\n"
    "To: buyer@remote.example\r\n"
    "Subject: =?UTF-8?Q?Your_order_=E2=9C=93?=\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative; boundary=b\r\n\r\n"
    "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour order is on its way\r\n"
    "--b\r\nContent-Type: multipart/related; boundary=r\r\n\r\n"
    "--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    + HTML.replace("\n", "\r\n")
    + "\r\n--r\r\nContent-Type: image/png\r\nContent-ID: <logo@shop.example>\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\n" + PNG + "\r\n--r--\r\n--b--\r\n"
)

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1280,900"):
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 20)
try:
    driver.get(admin + "/ui/")
    title = driver.title
    wait.until(EC.visibility_of_element_located((By.ID, "empty")))
    wait.until(lambda d: "on" in d.find_element(By.ID, "live").get_attribute("class"))

    # Sent after the page loaded: it must appear without a reload.
    with smtplib.SMTP("127.0.0.1", smtp_port) as s:
        s.login("shop-team", "anything")
        s.sendmail("shop@dev.example", ["buyer@remote.example"], MESSAGE.encode())
    row = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#messages tbody tr")))
    assert "Your order ✓" in row.text, row.text
    assert "Zürich Shop" in row.text, row.text
    mailbox = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#mailbox-list a[href='#shop-team']")))
    assert "shop-team" in mailbox.text
    driver.save_screenshot(os.path.join(shots, "list.png"))

    row.click()
    wait.until(EC.visibility_of_element_located((By.ID, "message-pane")))
    assert driver.find_element(By.ID, "subject").text == "Your order ✓"
    frame = wait.until(EC.presence_of_element_located((By.ID, "html-frame")))
    assert frame.get_attribute("sandbox") == "", "the frame is sandboxed"
    driver.switch_to.frame(frame)
    greeting = wait.until(EC.presence_of_element_located((By.ID, "greeting")))
    assert "order" in greeting.text
    # The inline image shows, from the message itself.
    wait.until(lambda d: d.execute_script(
        "const i = document.getElementById('inline'); return i.complete && i.naturalWidth === 1;"
    ))
    driver.find_element(By.ID, "js").click()
    driver.switch_to.default_content()
    driver.save_screenshot(os.path.join(shots, "message.png"))

    # Nothing from the mail ran, navigated or loaded.
    assert driver.title == title, f"title changed to {driver.title!r}"
    try:
        alert = driver.switch_to.alert
        raise AssertionError(f"an alert opened: {alert.text}")
    except Exception as e:
        if isinstance(e, AssertionError):
            raise
    assert hits == [], f"the mail loaded {hits}"

    # Asked for, remote images load (and only images).
    driver.find_element(By.ID, "images").click()
    wait.until(lambda d: "/pixel.gif" in hits)
    assert all(h in ("/pixel.gif", "/css.png") for h in hits), hits
    assert driver.title == title

    # At a phone's width the page still fits.
    driver.set_window_size(390, 844)
    width = driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, f"page is {width}px wide at a phone's width"
    driver.save_screenshot(os.path.join(shots, "message-phone.png"))
    driver.set_window_size(1280, 900)

    # Release: the message leaves the hold queue for delivery.
    queue_id = driver.execute_script("return state.current")
    driver.find_element(By.ID, "release").click()
    wait.until(EC.visibility_of_element_located((By.ID, "list-pane")))
    print("released", queue_id)
finally:
    driver.quit()
    tracker.shutdown()
