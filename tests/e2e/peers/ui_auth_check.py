"""The captured-mail web interface behind a login, in headless Chromium:
opened as http://user:password@host/ui/, its requests (list, events, the
HTML frame) carry the login, and a message sent afterwards appears and
opens.

Usage: ui_auth_check.py ADMIN_URL_WITH_CREDENTIALS SMTP_PORT
"""

import smtplib
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

admin, smtp_port = sys.argv[1], int(sys.argv[2])
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 20)
try:
    driver.get(admin + "/ui/")
    wait.until(EC.visibility_of_element_located((By.ID, "empty")))
    wait.until(lambda d: "on" in d.find_element(By.ID, "live").get_attribute("class"))
    with smtplib.SMTP("127.0.0.1", smtp_port) as s:
        s.sendmail(
            "app@dev.example",
            ["someone@remote.example"],
            b"Subject: behind a login\r\nContent-Type: text/html\r\n\r\n<p id=\"body\">hello</p>\r\n",
        )
    row = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#messages tbody tr")))
    assert "behind a login" in row.text, row.text
    row.click()
    driver.switch_to.frame(wait.until(EC.presence_of_element_located((By.ID, "html-frame"))))
    assert wait.until(EC.presence_of_element_located((By.ID, "body"))).text == "hello"
    print("ok")
finally:
    driver.quit()
