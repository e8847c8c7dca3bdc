"""A screenshot of kollm_serve's chat page in headless Chromium, after one question and its streamed answer.

    python tools/chat_screenshot.py --ckpt RUN/checkpoints/step-N --question '…' --out nbs/images/chat_page.png

Chapter 12b shows the picture this writes; tests/test_browser.py drives the same page the same way on every run.
Needs Debian's `chromium` and `chromium-driver` and `selenium`.
"""
import argparse, shutil
from pathlib import Path

from kollm.eval import load_for_inference
from kollm.runtime import atomic_path
from kollm.serve import ChatServer


def screenshot(server: ChatServer, question: str, out: Path, temperature: float | None = None, size=(760, 420),
               timeout: float = 120) -> dict:
    """Open the page, ask `question`, wait for the streamed answer to finish, and save the window as a PNG at `out`.
    Returns what the page shows: the question, the answer, and whether it takes the next question."""
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which('chromium') or '/usr/bin/chromium'
    for flag in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
                 f'--window-size={size[0]},{size[1]}', '--lang=ko'):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which('chromedriver') or '/usr/bin/chromedriver')
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get(f'http://127.0.0.1:{server.server_port}/')
        if temperature is not None:  # the page's own field, as a person would set it
            field = driver.find_element(By.ID, 't')
            field.clear()
            field.send_keys(str(temperature))
        driver.find_element(By.ID, 'q').send_keys(question)
        driver.find_element(By.TAG_NAME, 'button').click()
        WebDriverWait(driver, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#log .assistant[data-done]'))
        shown = dict(question=driver.find_element(By.CSS_SELECTOR, '#log .user').text,
                     answer=driver.find_element(By.CSS_SELECTOR, '#log .assistant').text,
                     done=driver.find_element(By.CSS_SELECTOR, '#log .assistant').get_attribute('data-done'),
                     ready=driver.find_element(By.TAG_NAME, 'button').is_enabled())
        with atomic_path(out) as tmp: driver.save_screenshot(str(tmp))
        return shown
    finally:
        driver.quit()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--ckpt', required=True, help='an instruction-tuned checkpoint folder (from kollm_sft)')
    p.add_argument('--tokenizer', help="SentencePiece model with the chat pieces (default: the checkpoint's)")
    p.add_argument('--question', required=True, help="the user's message typed into the page")
    p.add_argument('--temperature', type=float, help="set in the page before asking (default: the page's 0.8; 0: greedy)")
    p.add_argument('--out', type=Path, default=Path('nbs/images/chat_page.png'), help='the PNG to write')
    a = p.parse_args()
    model, sp, policy = load_for_inference(a.ckpt, a.tokenizer, 'cpu', 'fp32')
    server = ChatServer(('127.0.0.1', 0), model, sp, 'kollm', max_tokens=64, precision=policy).start()
    try:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        print(f"{a.out}: the answer was {screenshot(server, a.question, a.out, a.temperature)['answer']!r}")
    finally:
        server.stop()


if __name__ == '__main__': main()
