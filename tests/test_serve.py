"kollm_serve through the official `openai` client and plain HTTP: answers, streaming, errors, two requests at once."
import json, signal, socket, subprocess, sys, time, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from pathlib import Path

from kollm.sft import reply
from tiny_server import start_server

ASK = [dict(role='user', content='대한민국의 주권은 누구에게 있나요?')]


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp('serve'), 'kollm-test', max_tokens=32, max_body=4096)
    yield server, f'http://127.0.0.1:{server.server_port}'
    server.stop()
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


def forward_hook(model, hook):
    "`hook(module, args)` on every forward pass of `model` while the block runs."
    from contextlib import contextmanager
    @contextmanager
    def hooked():
        handle = model.register_forward_pre_hook(hook)
        try: yield
        finally: handle.remove()
    return hooked()


def test_a_reader_who_leaves_stops_its_reply_and_the_server_goes_on(served, capsys):
    "A client that closes its socket after the first event: the model stops soon after, and nothing is printed."
    server, url = served
    passes = []
    def slow(module, args):
        passes.append(1)
        time.sleep(0.03)  # a model slow enough that 32 tokens outlast the client
    body = json.dumps(dict(messages=ASK, max_tokens=32, temperature=0, stream=True, model='kollm-test')).encode()
    with forward_hook(server.model, slow):
        with socket.create_connection(('127.0.0.1', server.server_port)) as s:
            s.sendall(b'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                      b'Content-Length: %d\r\n\r\n' % len(body) + body)
            got = b''
            while b'data: ' not in got: got += s.recv(4096)  # the first event came: leave
        status, answer = post(url, json.dumps(dict(messages=ASK, max_tokens=4, temperature=0)).encode())
    assert status == 200, answer  # queued behind the cancelled reply, which ended first
    assert len(passes) < 4 + 32, f'{len(passes)} forward passes: the abandoned reply ran to its end'
    err = capsys.readouterr().err
    assert 'Traceback' not in err and 'BrokenPipe' not in err, err


def test_a_failing_model_is_a_500_and_the_server_goes_on(served, capsys):
    server, url = served
    def fail(module, args): raise RuntimeError('out of memory (a test)')
    with forward_hook(server.model, fail):
        status, answer = post(url, json.dumps(dict(messages=ASK, max_tokens=4)).encode())
    assert status == 500 and 'out of memory (a test)' in json.loads(answer)['error']['message'], answer
    assert 'kollm_serve: the model failed' in capsys.readouterr().err
    assert post(url, json.dumps(dict(messages=ASK, max_tokens=4)).encode())[0] == 200


@pytest.mark.parametrize('stop', [signal.SIGINT, signal.SIGTERM])
def test_kollm_serve_serves_a_checkpoint_until_stopped(tmp_path, stop):
    "The console script: a checkpoint served on a free port, a chat answered; Ctrl-C or `kill` ends it with status 0."
    from dataclasses import asdict
    from kollm.config import TrainConfig
    from kollm.run import save_checkpoint
    from tiny_server import start_server
    server = start_server(tmp_path, 'ckpt')  # its tokenizer and model, saved as a checkpoint
    server.stop()
    server.server_close()
    cfg = TrainConfig(model=asdict(server.model.cfg), tokenizer=str(tmp_path / 't.model'), out_dir=str(tmp_path / 'run'))
    ckpt = save_checkpoint(tmp_path / 'run', server.model, cfg, dict(step=1))
    command = str(Path(sys.executable).parent / 'kollm_serve')
    proc = subprocess.Popen([command, '--ckpt', str(ckpt), '--port', '0', '--device', 'cpu'], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        assert 'http://127.0.0.1:' in banner, banner + proc.stderr.read()
        url = banner.split('http://')[1].split('/')[0]
        status, answer = post('http://' + url, json.dumps(dict(messages=ASK, max_tokens=4, temperature=0)).encode())
        assert status == 200 and json.loads(answer)['model'] == 'run', answer
        proc.send_signal(stop)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        assert 'Traceback' not in proc.stderr.read()
    finally: proc.kill()


def test_without_max_tokens_the_reply_gets_what_the_context_leaves(served):
    "OpenAI's default: no max_tokens means up to the context's end, not a fixed count that may not fit."
    server, url = served
    context = server.model.cfg.max_seq_length
    from kollm.chat import render_chat
    words = ['국민']
    while len(render_chat(server.sp, [dict(role='user', content=' '.join(words))], True)[0]) < context - 20:
        words.append('국민')
    prompt = len(render_chat(server.sp, [dict(role='user', content=' '.join(words))], True)[0])
    assert context - prompt < server.max_tokens  # a fixed default of max_tokens would not fit
    status, answer = post(url, json.dumps(dict(messages=[dict(role='user', content=' '.join(words))],
                                               temperature=0)).encode())
    assert status == 200, answer
    status, answer = post(url, json.dumps(dict(messages=[dict(role='user', content=' '.join(words))],
                                               max_tokens=context - prompt + 1)).encode())
    assert status == 400 and json.loads(answer)['error']['code'] == 'context_length_exceeded', answer
