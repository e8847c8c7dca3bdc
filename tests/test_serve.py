"kollm_serve through the official `openai` client and plain HTTP: answers, streaming, errors, two requests at once."
import json, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from kollm.sft import reply
from tiny_server import start_server

ASK = [dict(role='user', content='대한민국의 주권은 누구에게 있나요?')]


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp('serve'), 'kollm-test', max_tokens=32, max_body=4096)
    yield server, f'http://127.0.0.1:{server.server_port}'
    server.shutdown()
    server.server_close()


def post(url, body: bytes, path='/v1/chat/completions'):
    request = urllib.request.Request(url + path, body, {'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request) as r: return r.status, r.read().decode()
    except urllib.error.HTTPError as e: return e.code, e.read().decode()


def test_openai_client_answers_as_kollm_does_whole_and_streamed(served):
    openai = pytest.importorskip('openai')
    server, url = served
    client = openai.OpenAI(base_url=url + '/v1', api_key='none')
    assert [m.id for m in client.models.list().data] == ['kollm-test']
    expected, _ = reply(server.model, server.sp, ASK, 12, temperature=0)
    whole = client.chat.completions.create(model='kollm-test', messages=ASK, max_tokens=12, temperature=0)
    assert whole.choices[0].message.content == expected
    chunks = list(client.chat.completions.create(model='kollm-test', messages=ASK, max_tokens=12, temperature=0,
                                                 stream=True))
    assert ''.join(c.choices[0].delta.content or '' for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason in ('stop', 'length')
    text = client.completions.create(model='kollm-test', prompt='대한민국의', max_tokens=5, temperature=0)
    assert isinstance(text.choices[0].text, str)
    with pytest.raises(openai.NotFoundError): client.chat.completions.create(model='gpt-4', messages=ASK)
    with pytest.raises(openai.BadRequestError): client.chat.completions.create(model='kollm-test', messages=ASK,
                                                                                max_tokens=1000)


@pytest.mark.parametrize('body,status,text', [
    (b'{not json', 400, 'not JSON'), (b'[1, 2]', 400, 'JSON object'),
    (json.dumps(dict(messages=[dict(role='bot', content='x')])).encode(), 400, 'role'),
    (json.dumps(dict(messages=ASK, max_tokens=0)).encode(), 400, 'max_tokens'),
    (json.dumps(dict(messages=[dict(role='user', content='가 ' * 300)])).encode(), 400, 'context'),
    (json.dumps(dict(messages=ASK, pad='x' * 5000)).encode(), 413, 'at most 4096')])
def test_bad_requests_get_openai_errors_and_the_server_goes_on(served, body, status, text):
    _, url = served
    got, answer = post(url, body)
    assert got == status and text in json.loads(answer)['error']['message']
    assert json.loads(urllib.request.urlopen(url + '/health').read()) == dict(status='ok')


def test_two_requests_at_once_get_their_own_whole_answers(served):
    server, url = served
    asks = [ASK, [dict(role='user', content='국민의 자유와 권리는?')]]
    expected = [reply(server.model, server.sp, a, 16, temperature=0)[0] for a in asks]
    body = lambda a: json.dumps(dict(messages=a, max_tokens=16, temperature=0)).encode()
    with ThreadPoolExecutor(4) as pool: got = list(pool.map(lambda a: post(url, body(a)), asks * 2))
    assert [json.loads(b)['choices'][0]['message']['content'] for _, b in got] == expected * 2


def test_the_page_is_served(served):
    _, url = served
    page = urllib.request.urlopen(url + '/').read().decode()
    assert '/v1/chat/completions' in page and '"kollm-test"' in page
