"""Streaming through kollm_serve against kollm_generate's own streaming on the same model: tokens/s and first-token time.

The in-process side is what `kollm_generate` does (chapter 04c's `generate_ids` with `TokenStreamer`, here through
`reply` on a chat prompt so both sides generate the same tokens) on the main thread; the server side is `ChatServer`
on 127.0.0.1 as `kollm_serve` runs it (the model on the main thread, HTTP on another) read as server-sent events by
plain HTTP from a client thread. A third row runs the generator on a second thread, as kollm_serve did before its
`ModelQueue`: on a CPU that costs the OpenMP spin-wait (chapter 12b, "One thread runs the model"). Rounds alternate
the sides (the order rotating), so load on this shared machine hits all alike; the report gives medians, the per-round
ratio's median and range, and writes reports/serve.md.
python bench/serve.py [--preset small] [--tokens 128] [--rounds 7]
"""
import argparse, json, statistics, tempfile, threading, time, urllib.request
from pathlib import Path

import torch

from kollm.sources import embedded_corpus
from kollm.model import KoLLM, KoLLMConfig
from kollm.serve import ChatServer
from kollm.sft import reply
from kollm.tokens import load_tokenizer, train_tokenizer
from common import spread, write_report

ASK = [dict(role='user', content='대한민국의 주권은 누구에게 있나요?')]

SIDES = {'generate': "kollm_generate's streaming (in process, main thread)",
         'serve': 'kollm_serve, server-sent events over HTTP (model on the main thread)',
         'thread': "kollm_generate's streaming on a second thread (kollm_serve before its ModelQueue)"}


def in_process(model, sp, n):
    "(first-token seconds, tokens/s) of the generator's streaming."
    start, first = time.perf_counter(), []
    text, ended = reply(model, sp, ASK, n, temperature=0, stream=lambda t: first or first.append(time.perf_counter()))
    total = time.perf_counter() - start
    assert not ended and first, 'the model ended its turn early or printed nothing: pick another --seed'
    return first[0] - start, n / total


def in_a_thread(model, sp, n):
    "`in_process` on a fresh second thread, which ends after it (a thread that stayed would slow the main one too)."
    out = []
    worker = threading.Thread(target=lambda: out.append(in_process(model, sp, n)))
    worker.start()
    worker.join()
    return out[0]


def over_http(url, n):
    "(first-token seconds, tokens/s) of kollm_serve's server-sent events."
    body = json.dumps(dict(messages=ASK, max_tokens=n, temperature=0, stream=True)).encode()
    request = urllib.request.Request(url + '/v1/chat/completions', body, {'Content-Type': 'application/json'})
    start, first, finish = time.perf_counter(), None, None
    with urllib.request.urlopen(request) as r:
        for line in r:
            if not line.startswith(b'data: {'): continue
            choice = json.loads(line[6:])['choices'][0]
            if choice['delta'].get('content') and first is None: first = time.perf_counter()
            finish = choice['finish_reason'] or finish
    total = time.perf_counter() - start
    assert finish == 'length', finish
    return first - start, n / total


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--preset', default='small', help='model preset (random weights)')
    p.add_argument('--tokens', type=int, default=128, help='tokens a reply')
    p.add_argument('--rounds', type=int, default=7, help='paired rounds, the order rotating')
    p.add_argument('--seed', type=int, default=0, help='initial weights')
    args = p.parse_args()
    work = Path(tempfile.mkdtemp())
    sp = load_tokenizer(train_tokenizer(embedded_corpus(), work / 'tok.model', vocab_size=2000, progress=False))
    torch.manual_seed(args.seed)
    cfg = KoLLMConfig.from_preset(args.preset)  # random weights, wide enough (init_std 0.2) that greedy text varies
    model = KoLLM(KoLLMConfig(**{**cfg.__dict__, 'vocab_size': sp.vocab_size(), 'init_std': 0.2})).eval()
    server = ChatServer(('127.0.0.1', 0), model, sp, 'bench', max_tokens=args.tokens)
    threading.Thread(target=server.serve_forever, daemon=True).start()  # HTTP here; the model: main thread, below
    url = f'http://127.0.0.1:{server.server_port}'
    on_main = lambda n: server.models.submit(lambda emit: in_process(model, sp, n))  # run by the main thread
    rows = []
    def client():  # no torch work on this thread: it would give the process a second OpenMP team for good
        try:
            on_main(8), over_http(url, 8)  # warm-up
            for i in range(args.rounds):
                pair = {}
                sides = list(SIDES)
                for side in sides[i % 3:] + sides[:i % 3]:
                    pair[side] = (on_main(args.tokens) if side == 'generate' else over_http(url, args.tokens)
                                  if side == 'serve' else in_a_thread(model, sp, args.tokens))
                rows.append(pair)
        finally: server.models.close()
    threading.Thread(target=client).start()
    server.models.run()  # the model's work, on this (the main) thread, until the client is done
    server.shutdown()
    assert len(rows) == args.rounds, 'the client failed: see its traceback above'
    ratios = [r['serve'][1] / r['generate'][1] for r in rows]
    thread_ratios = [r['thread'][1] / r['generate'][1] for r in rows]
    med = lambda side, k: statistics.median(r[side][k] for r in rows)
    table = [{'': what, 'first token, ms (median)': f"{med(side, 0) * 1e3:.1f}",
              'tokens/s (median)': f"{med(side, 1):.1f}"} for side, what in SIDES.items()]
    parts = [f"`python bench/serve.py --preset {args.preset} --tokens {args.tokens} --rounds {args.rounds}` on "
             f"{time.strftime('%Y-%m-%d')}, CPU ({torch.get_num_threads()} threads), {args.preset} model "
             f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, random weights), "
             f"greedy, {args.tokens} tokens a reply, batch 1, {args.rounds} paired rounds.", ('streaming', table),
             f"kollm_serve / kollm_generate, tokens/s per round: {spread(ratios)}; the goal is ≥ 0.9. "
             f"The generator on a second thread / on the main thread: {spread(thread_ratios)}: a second thread doing "
             "torch work gives the process a second OpenMP team, more OpenMP threads than cores, and OpenMP's short "
             "spin-wait; kollm_serve keeps the model on the main thread for that reason."]
    print(f"wrote {write_report('serve', 'kollm_serve against kollm_generate', parts, rows)}")

if __name__ == '__main__':
    main()
