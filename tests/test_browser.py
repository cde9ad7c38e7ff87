"""The chat page in real headless Chromium (Debian's chromium + chromium-driver, driven by selenium):
send a message, watch tokens arrive, reload and see the transcript, survive a dropped connection,
and show hostile text as text. Screenshots go to artifacts/ (desktop, phone, reasoning)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.grpc_server import ServerThread
from fixtures.tiny_gguf import THINK_CLOSE_ID, write_tiny_llama

from smolrt import Engine

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
XSS = 'Hi <script>window.__xss = 1</script> <img src=x onerror="window.__xss = 2"> there'

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402


def _browser_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = "headless Chromium is not installed: `make browser` installs Debian's chromium and chromium-driver"
    if os.environ.get("CI"):
        pytest.fail(message)  # CI must run the browser test, not skip it
    pytest.skip(message)


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    browser, chromedriver = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,800"):
        options.add_argument(arg)
    drv = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:  # noqa: BLE001 - the page may be mid-render; look again
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def replies(drv: Any) -> list[Any]:
    return drv.find_elements(By.CSS_SELECTOR, "#messages .msg.assistant")


def finished_replies(drv: Any) -> int:
    """Replies on the page, once none is still streaming (else -1)."""
    if drv.find_elements(By.CSS_SELECTOR, "#messages .msg.assistant.streaming"):
        return -1
    if drv.execute_script("return window.smolrt.state.generating"):
        return -1
    return len(replies(drv))


def texts(drv: Any, role: str) -> list[str]:
    return [e.get_attribute("textContent") for e in drv.find_elements(By.CSS_SELECTOR, f"#messages .msg.{role} .body")]


RECORD_LENGTHS = """
window.__lens = [];
new MutationObserver(() => {
  const bodies = document.querySelectorAll('#messages .msg.assistant .body');
  const last = bodies[bodies.length - 1];
  if (last) window.__lens.push(last.textContent.length);
}).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
"""


def test_chat_page_end_to_end(driver: Any, server: ServerThread) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with httpx.Client(base_url=server.http_url, timeout=30) as http:
        # Long enough to be seen arriving token by token; greedy so a reload shows the same text.
        sid = http.post(
            "/api/sessions", json={"params": {"temperature": 0, "max_tokens": 48, "ignore_eos": True}}
        ).json()["id"]
    driver.set_window_size(1280, 800)
    driver.get(server.http_url + "#" + sid)
    wait_for(lambda: driver.find_element(By.ID, "model").text, what="the model name")
    assert not driver.find_element(By.ID, "banner").is_displayed()
    driver.execute_script(RECORD_LENGTHS)

    box = driver.find_element(By.ID, "input")
    box.send_keys("First line")
    box.send_keys(Keys.SHIFT, Keys.ENTER)  # a new line, not a send
    box.send_keys(XSS)
    assert box.get_attribute("value") == "First line\n" + XSS
    box.send_keys(Keys.ENTER)
    wait_for(lambda: driver.find_element(By.ID, "stop").is_displayed(), what="the stop button")
    wait_for(lambda: finished_replies(driver) == 1, 60, "the reply to finish")

    # Tokens arrived one after another, not as one lump at the end.
    lens = driver.execute_script("return window.__lens")
    growth = sorted({n for n in lens if n > 0})
    assert len(growth) >= 5, lens
    # What was typed shows as typed, markup included, and nothing in it ran.
    assert texts(driver, "user") == ["First line\n" + XSS]
    assert driver.execute_script("return window.__xss") is None
    assert not driver.find_elements(By.CSS_SELECTOR, "#messages img, #messages script")
    reply = texts(driver, "assistant")
    assert reply[0].strip()
    assert not driver.find_element(By.ID, "stop").is_displayed()
    # The sidebar lists the session under its first message.
    item = driver.find_element(By.CSS_SELECTOR, f'#sessions li[data-id="{sid}"]')
    assert item.text.startswith("First line")
    driver.save_screenshot(str(ARTIFACTS / "chat-desktop.png"))

    # Reload: the transcript comes back, the same.
    driver.refresh()
    wait_for(lambda: texts(driver, "assistant"), what="the transcript after reload")
    assert texts(driver, "user") == ["First line\n" + XSS]
    assert texts(driver, "assistant") == reply
    assert driver.execute_script("return window.__xss") is None

    # A network drop mid-reply: the page reconnects with Last-Event-ID; nothing lost or doubled.
    box = driver.find_element(By.ID, "input")
    box.send_keys("Tell me more.", Keys.ENTER)
    wait_for(lambda: len(replies(driver)) == 2 and len(texts(driver, "assistant")[1]) > 0, what="the second reply")
    driver.execute_script("window.smolrt.dropConnection()")
    wait_for(lambda: finished_replies(driver) == 2, 60, "the second reply to finish")
    streamed = texts(driver, "assistant")
    with httpx.Client(base_url=server.http_url) as http:
        last_seq = http.get(f"/api/sessions/{sid}").json()["last_seq"]
    assert driver.execute_script("return window.smolrt.state.stream.lastSeq") == last_seq
    driver.refresh()
    wait_for(lambda: len(texts(driver, "assistant")) == 2, what="both replies after reload")
    assert texts(driver, "assistant") == streamed

    # Phone-sized: the sidebar folds into a drawer behind the menu button.
    driver.set_window_size(390, 844)
    time.sleep(0.3)
    assert driver.find_element(By.ID, "menu").is_displayed()
    sidebar = driver.find_element(By.ID, "sidebar")
    assert sidebar.rect["x"] + sidebar.rect["width"] <= 1
    composer = driver.find_element(By.ID, "composer")
    assert composer.rect["x"] + composer.rect["width"] <= 390 + 1
    driver.save_screenshot(str(ARTIFACTS / "chat-phone.png"))
    driver.find_element(By.ID, "menu").click()
    wait_for(lambda: driver.find_element(By.ID, "sidebar").rect["x"] >= 0, what="the drawer to open")
    driver.save_screenshot(str(ARTIFACTS / "chat-phone-drawer.png"))
    driver.set_window_size(1280, 800)


HOSTILE = [
    "<script>window.__xss = 3</script>",
    '<img src=x onerror="window.__xss = 4">',
    '**bold <img src=x onerror="window.__xss = 5">**',
    "[click](javascript:window.__xss=6) and [ok](https://example.com)",
    "`<iframe src=javascript:window.__xss=7>`",
    "```html\n<script>window.__xss = 8</script>\n```",
    '<svg onload="window.__xss = 9"></svg>',
]


def test_markdown_is_safe_by_construction(driver: Any, server: ServerThread) -> None:
    driver.get(server.http_url)
    wait_for(lambda: driver.execute_script("return !!window.smolrt"), what="the page script")
    result = driver.execute_script(
        """
        const out = [];
        for (const text of arguments[0]) {
          const div = document.createElement('div');
          div.appendChild(window.smolrt.renderMarkdown(text));
          document.body.appendChild(div);
          const attrs = [...div.querySelectorAll('*')].flatMap(
            (el) => [...el.attributes].map((a) => a.name + '=' + a.value));
          out.push({tags: [...div.querySelectorAll('*')].map((e) => e.tagName), attrs, text: div.textContent});
        }
        return out;
        """,
        HOSTILE,
    )
    time.sleep(0.3)  # an onerror or onload would have fired by now
    assert driver.execute_script("return window.__xss") is None
    for text, r in zip(HOSTILE, result, strict=True):
        assert not {"SCRIPT", "IMG", "IFRAME", "SVG"} & set(r["tags"]), (text, r)
        assert not [a for a in r["attrs"] if a.startswith("on") or "javascript:" in a], (text, r)
    assert "<img" in result[1]["text"]
    assert "STRONG" in result[2]["tags"]
    links = [a for a in result[3]["attrs"] if a.startswith("href=")]
    assert links == ["href=https://example.com"]
    assert result[4]["tags"] == ["P", "CODE"]
    assert result[5]["tags"] == ["PRE", "CODE"] and "<script>" in result[5]["text"]


def test_reasoning_block_and_no_model_banner(driver: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = write_tiny_llama(tmp_path_factory.mktemp("think") / "think.gguf", thinking=True)
    with Engine.load(path) as thinker:
        srv = ServerThread(thinker)
        try:
            with httpx.Client(base_url=srv.http_url) as http:
                params = {"temperature": 0, "max_tokens": 12, "ignore_eos": True, "logit_bias": {THINK_CLOSE_ID: -1e9}}
                sid = http.post("/api/sessions", json={"enable_thinking": True, "params": params}).json()["id"]
            driver.get(srv.http_url + "#" + sid)
            wait_for(lambda: driver.find_element(By.ID, "model").text, what="the model name")
            driver.find_element(By.ID, "input").send_keys("Think about it.", Keys.ENTER)
            wait_for(lambda: finished_replies(driver) == 1, 60, "the reply to finish")
            block = driver.find_element(By.CSS_SELECTOR, "#messages .msg.assistant details.reasoning")
            thoughts = block.find_element(By.CSS_SELECTOR, ".thoughts").get_attribute("textContent")
            assert thoughts  # the reasoning is in its own block ...
            assert texts(driver, "assistant") == [""]  # ... and not in the answer
            assert "12 tokens" in block.find_element(By.TAG_NAME, "summary").text
            block.find_element(By.TAG_NAME, "summary").click()  # collapsible: open it
            assert block.get_attribute("open") is not None
            driver.save_screenshot(str(ARTIFACTS / "chat-reasoning.png"))
            # The Think toggle switches the session off for the next turns, and a reload shows it.
            toggle = driver.find_element(By.ID, "thinking")
            assert toggle.is_selected()
            toggle.click()
            with httpx.Client(base_url=srv.http_url) as http:
                wait_for(lambda: http.get(f"/api/sessions/{sid}").json()["enable_thinking"] is False, 10, "the PATCH")
            driver.refresh()
            wait_for(lambda: finished_replies(driver) == 1, 30, "the transcript after reload")
            assert not driver.find_element(By.ID, "thinking").is_selected()
        finally:
            srv.stop()
    nomodel = ServerThread(None)
    try:
        driver.get(nomodel.http_url)
        banner = wait_for(
            lambda: driver.find_element(By.ID, "banner").is_displayed() and driver.find_element(By.ID, "banner"),
            what="the no-model banner",
        )
        assert "No model loaded" in banner.text and "smolrt pull" in banner.text
        assert not driver.find_element(By.ID, "send").is_enabled()
        driver.save_screenshot(str(ARTIFACTS / "chat-no-model.png"))
    finally:
        nomodel.stop()
