"kollm_serve's chat page in a real browser: Debian's headless Chromium types a question and sees the streamed answer."
import shutil, threading

import pytest
import sentencepiece as spm
import torch

from kollm.model import KoLLM, KoLLMConfig
from kollm.serve import ChatServer
from kollm.tokens import train_tokenizer

CHROMIUM, DRIVER = shutil.which('chromium') or '/usr/bin/chromium', shutil.which('chromedriver') or '/usr/bin/chromedriver'
pytestmark = pytest.mark.skipif(not (shutil.which(CHROMIUM) and shutil.which(DRIVER)),
                                reason='no Chromium here (Debian: apt-get install -y chromium chromium-driver), so '
                                       "kollm_serve's page is not opened in a browser")


def test_the_page_streams_an_answer(tmp_path):
    webdriver = pytest.importorskip('selenium.webdriver')
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    text = ['대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다.'] * 40
    (tmp_path / 'text.txt').write_text('\n'.join(text), encoding='utf-8')
    sp = spm.SentencePieceProcessor(model_file=str(train_tokenizer([tmp_path / 'text.txt'], tmp_path / 't.model',
                                                                   vocab_size=330, progress=False)))
    torch.manual_seed(0)
    model = KoLLM(KoLLMConfig(vocab_size=sp.vocab_size(), hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                              intermediate_size=64, max_seq_length=96, init_std=0.2)).eval()
    server = ChatServer(('127.0.0.1', 0), model, sp, 'browser-test', max_tokens=24)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'): options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    try:
        driver.get(f'http://127.0.0.1:{server.server_port}/')
        box = driver.find_element(By.ID, 'q')
        box.send_keys('대한민국의 주권은 누구에게 있나요?')
        driver.find_element(By.TAG_NAME, 'button').click()
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#log .assistant')
                                        and d.find_element(By.CSS_SELECTOR, '#log .assistant').text.strip())
        assert driver.find_element(By.CSS_SELECTOR, '#log .user').text == '대한민국의 주권은 누구에게 있나요?'
        driver.save_screenshot(str(tmp_path / 'page.png'))
    finally:
        driver.quit()
        server.shutdown()
