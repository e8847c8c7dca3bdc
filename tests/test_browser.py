"kollm_serve's chat page in a real browser: Debian's headless Chromium types a question and sees the streamed answer."
import shutil, sys
from pathlib import Path

import pytest

from tiny_server import start_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'tools'))
from chat_screenshot import screenshot  # the tool that draws chapter 12b's picture drives the page the same way

pytestmark = pytest.mark.skipif(not (shutil.which('chromium') and shutil.which('chromedriver')),
                                reason='no Chromium here (Debian: apt-get install -y chromium chromium-driver), so '
                                       "kollm_serve's page is not opened in a browser")
QUESTION = '대한민국의 주권은 누구에게 있나요?'


def test_the_page_streams_an_answer(tmp_path):
    pytest.importorskip('selenium.webdriver')
    server = start_server(tmp_path, 'browser-test', hidden=32, layers=1, max_tokens=24)
    try: shown = screenshot(server, QUESTION, tmp_path / 'page.png', timeout=60)
    finally: server.stop()
    assert shown['question'] == QUESTION and shown['answer'].strip() and shown['done'] == 'yes', shown
    assert shown['ready'], 'the button stays disabled after the answer'
    assert (tmp_path / 'page.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_the_page_shows_a_refused_request(tmp_path):
    "A request the server refuses (here: a body over its limit) shows the server's message, and the page goes on."
    pytest.importorskip('selenium.webdriver')
    server = start_server(tmp_path, 'browser-test', hidden=32, layers=1, max_tokens=24, max_body=64)
    try: shown = screenshot(server, QUESTION * 4, tmp_path / 'page.png', timeout=60)
    finally: server.stop()
    assert shown['done'] == 'error' and 'bytes' in shown['answer'] and shown['ready'], shown
