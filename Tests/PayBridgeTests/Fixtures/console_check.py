"""Drives paybridge's console in headless Chromium (Debian's chromium + chromium-driver,
PyPI selenium), as on-call would: a wrong token refused; a read token signs in, sees the
actions disabled, and is refused (403) when it tries one anyway; an operate token finds a
payment by reference and sees its timeline, dry-runs and replays the dead letters and watches
them turn delivered, disables and enables an endpoint. Screenshots of each page go to SHOTS.

usage: console_check.py BASE OPERATE_TOKEN READ_TOKEN REFERENCE PAYMENT_ID SHOTS"""
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

base, operate, read, reference, payment_id, shots = sys.argv[1:7]
os.makedirs(shots, exist_ok=True)

options = webdriver.ChromeOptions()
for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900", "--disable-gpu"]:
    options.add_argument(argument)
for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"]:
    if os.path.exists(candidate):
        options.binary_location = candidate
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 20)
step = "start"


def check(condition, message):
    if not condition:
        raise AssertionError(f"{step}: {message}")


def text(css):
    # The page redraws itself from the live stream: an element may be replaced while read.
    for _ in range(20):
        try:
            return driver.find_element(By.CSS_SELECTOR, css).text
        except (StaleElementReferenceException, NoSuchElementException):
            time.sleep(0.05)
    return ""


def click(css):
    for _ in range(20):
        try:
            wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, css))).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.05)
    raise AssertionError(f"{step}: cannot click {css}")


def sign_in(token):
    driver.get(base + "/console")
    wait.until(EC.visibility_of_element_located((By.ID, "token")))
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.ID, "signin-button").click()


def sign_out():
    wait.until(EC.element_to_be_clickable((By.ID, "signout"))).click()
    wait.until(EC.visibility_of_element_located((By.ID, "token")))


try:
    step = "a wrong token"
    sign_in("wrong-token-0123456789")
    wait.until(lambda d: "not one of admin.tokens" in text("#message"))
    check(driver.find_element(By.ID, "nav").get_attribute("hidden") is not None, "the console opened")

    step = "a read token"
    sign_in(read)
    wait.until(EC.visibility_of_element_located((By.ID, "overview-endpoints")))
    check("audit" in text("#who") and "actions disabled" in text("#who"), text("#who"))
    driver.get(base + "/console#dead")
    wait.until(EC.visibility_of_element_located((By.ID, "dead-letters")))
    check(not driver.find_element(By.ID, "dry-run").is_enabled(), "dry run enabled for a read token")
    check(not driver.find_element(By.ID, "replay").is_enabled(), "replay enabled for a read token")
    status = driver.execute_async_script(
        "const done = arguments[0]; fetch('/api/v1/endpoints/erp/disable', {method: 'POST', headers: {'Content-Type': 'application/json', "
        "'X-CSRF-Token': session.csrf}, body: '{}'}).then(r => done(r.status));")
    check(status == 403, f"a read session's action answered {status}")
    cookies = {c["name"]: c for c in driver.get_cookies()}
    cookie = cookies.get("paybridge_session")
    check(cookie is not None and cookie.get("httpOnly") and cookie.get("sameSite") == "Strict", f"session cookie {cookie}")
    sign_out()

    step = "an operate token: the overview"
    sign_in(operate)
    wait.until(EC.visibility_of_element_located((By.ID, "overview-endpoints")))
    wait.until(lambda d: "erp" in text("#overview-endpoints"))
    check("Polling: yes" in text("#overview-summary"), text("#overview-summary"))
    check("recent" in text("#overview-watches"), text("#overview-watches"))
    driver.save_screenshot(os.path.join(shots, "overview.png"))

    step = "a payment by reference"
    driver.get(base + "/console#payment")
    wait.until(EC.visibility_of_element_located((By.ID, "payment-query"))).send_keys(reference)
    driver.find_element(By.ID, "payment-find").click()
    wait.until(EC.visibility_of_element_located((By.ID, "timeline")))
    timeline = text("#timeline")
    check(payment_id in timeline, f"the timeline is not the payment's: {timeline}")
    check("PendingProcessing (new)" in timeline and "erp" in timeline and "dead" in timeline and "HTTP 500" in timeline, timeline)
    driver.save_screenshot(os.path.join(shots, "payment.png"))

    step = "the dead letters: dry run, then replay"
    driver.get(base + "/console#dead")
    wait.until(EC.visibility_of_element_located((By.ID, "dead-letters")))
    picks = driver.find_elements(By.CSS_SELECTOR, "#dead-letters input.pick")
    check(len(picks) >= 2, f"{len(picks)} dead letters shown")
    for pick in picks:
        pick.click()
    driver.find_element(By.ID, "dry-run").click()
    wait.until(lambda d: "Dry run" in text("#plan"))
    driver.save_screenshot(os.path.join(shots, "dead-letters.png"))
    driver.find_element(By.ID, "replay").click()
    wait.until(EC.visibility_of_element_located((By.ID, "replayed")))
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            rows = text("#replayed")
            if rows.count("delivered") >= len(picks):
                break
        except Exception:
            pass
        time.sleep(0.2)
    check(text("#replayed").count("delivered") >= len(picks), "replayed deliveries did not turn delivered: " + text("#replayed"))
    driver.save_screenshot(os.path.join(shots, "replayed.png"))

    step = "endpoints: disable, then enable"
    driver.get(base + "/console#endpoints")
    click("#endpoints button.disable")
    wait.until(EC.alert_is_present()).accept()
    wait.until(lambda d: "disabled" in text("#endpoints tr[data-endpoint=erp]"))
    driver.save_screenshot(os.path.join(shots, "endpoints.png"))
    click("#endpoints button.enable")
    wait.until(EC.alert_is_present()).accept()
    wait.until(lambda d: "ok" in text("#endpoints tr[data-endpoint=erp]"))

    step = "a phone"
    driver.set_window_size(390, 844)
    driver.get(base + "/console#overview")
    wait.until(EC.visibility_of_element_located((By.ID, "overview-endpoints")))
    driver.save_screenshot(os.path.join(shots, "overview-phone.png"))
    print("console ok")
except Exception as error:
    driver.save_screenshot(os.path.join(shots, "failure.png"))
    print(f"console check failed at {step}: {error}", file=sys.stderr)
    print(driver.find_element(By.TAG_NAME, "body").text[:3000], file=sys.stderr)
    sys.exit(1)
finally:
    driver.quit()
