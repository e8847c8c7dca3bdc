"kollm_serve's chat page in a real browser: Debian's headless Chromium types a question and sees the streamed answer."
import shutil

import pytest

from tiny_server import start_server

CHROMIUM, DRIVER = shutil.which('chromium') or '/usr/bin/chromium', shutil.which('chromedriver') or '/usr/bin/chromedriver'
pytestmark = pytest.mark.skipif(not (shutil.which(CHROMIUM) and shutil.which(DRIVER)),
                                reason='no Chromium here (Debian: apt-get install -y chromium chromium-driver), so '
                                       "kollm_serve's page is not opened in a browser")


def test_the_page_streams_an_answer(tmp_path):
    webdriver = pytest.importorskip('selenium.webdriver')
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    server = start_server(tmp_path, 'browser-test', hidden=32, layers=1, max_tokens=24)
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
