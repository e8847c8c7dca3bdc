"""Throughput of kollm's data pipeline on the shared Korean corpus (../shared/data/korean by default).

Measures, in one run: `prepare` MB/s with 1 and 2 worker processes, SentencePiece training time (32k BPE; with
--compare also unigram) and compression on the valid split, `tokenize_text` MB/s with 1 and 2 threads, and the
loader's batches/s beside the batches/s a tiny model consumes in training. Prints a markdown table.

    python bench/data_pipeline.py [--corpus DIR] [--out DIR] [--vocab 32000] [--compare]
"""
import argparse, json, os, time
from itertools import islice
from pathlib import Path

import torch
from kollm.data import (TokenLoader, TokenShards, TokenWindows, compression, load_tokenizer, prepare, tokenize_text,
                        train_tokenizer)
from kollm.model import KoLLM, KoLLMConfig

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument('--corpus', default=str(Path(__file__).resolve().parents[1].parent / 'shared/data/korean'))
p.add_argument('--out', default='/tmp/kollm-bench-data')
p.add_argument('--vocab', type=int, default=32000)
p.add_argument('--compare', action='store_true', help='also train a unigram tokenizer of the same size')
args = p.parse_args()
corpus, out = Path(args.corpus), Path(args.out)
raw_mb = sum(f.stat().st_size for f in corpus.rglob('*.txt')) / 1e6
rows = []
def row(what, value, unit, note=''): rows.append((what, value, unit, note)); print(f'{what}: {value:.3g} {unit} {note}', flush=True)

for workers in (1, 2):
    t = time.perf_counter()
    report = prepare([corpus], out / 'processed', workers=workers, progress=False)
    dt = time.perf_counter() - t
    row(f'prepare, {workers} worker(s)', raw_mb / dt, 'MB/s', f'{raw_mb:.1f} MB in {dt:.1f} s')
total = report.table().loc['total']
print(report.table().T.to_string())
json.dump(report.to_dict(), open(out / 'report.json', 'w'), ensure_ascii=False, indent=1)

train_txt, valid_txt = out / 'processed/train.txt', out / 'processed/valid.txt'
for kind in ('bpe', 'unigram') if args.compare else ('bpe',):
    t = time.perf_counter()
    model = train_tokenizer([train_txt], out / f'{kind}.model', vocab_size=args.vocab, model_type=kind, progress=False)
    row(f'train tokenizer ({args.vocab} {kind})', time.perf_counter() - t, 's')
    c = compression(load_tokenizer(model), valid_txt)
    row(f'{kind}: characters per token on valid', c['chars_per_token'], 'chars/token')
    row(f'{kind}: bytes per token on valid', c['bytes_per_token'], 'bytes/token')

text_mb = (train_txt.stat().st_size + valid_txt.stat().st_size) / 1e6
for threads in (1, 2):
    t = time.perf_counter()
    metas = [tokenize_text(f, out / 'bpe.model', out / 'tokens', threads=threads, progress=False) for f in (train_txt, valid_txt)]
    dt = time.perf_counter() - t
    row(f'tokenize, {threads} thread(s)', text_mb / dt, 'MB/s',
        f"{sum(m['tokens'] for m in metas):,} tokens, {sum(m['documents'] for m in metas):,} documents in {dt:.1f} s")
row('end to end (prepare 2 workers + tokenize 2 threads)',
    raw_mb / (raw_mb / rows[1][1] + text_mb / rows[-1][1]), 'MB/s', 'tokenizer training excluded')

cfg = KoLLMConfig.from_preset('tiny'); cfg.vocab_size = 32000 if args.vocab > 8000 else args.vocab
windows = TokenWindows(TokenShards(out / 'tokens', 'train', tokenizer=out / 'bpe.model'), seq_len=256)
for workers in (0, 2):
    loader = iter(TokenLoader(windows, batch_size=16, seed=0, num_workers=workers))
    next(loader)
    t = time.perf_counter(); n = sum(1 for _ in islice(loader, 500)); dt = time.perf_counter() - t
    row(f'loader, 16×256, {workers} workers', n / dt, 'batches/s')
model = KoLLM(cfg); opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
batches = iter(TokenLoader(windows, batch_size=16, seed=0, num_workers=0))
def step():
    x, y = next(batches); _, loss = model(x, labels=y); loss.backward(); opt.step(); opt.zero_grad()
step(); t = time.perf_counter()
for _ in range(10): step()
row(f'tiny model training (vocab {cfg.vocab_size}), 16×256', 10 / (time.perf_counter() - t), 'batches/s', 'what the loader must keep up with')

print('\n| measure | value | unit | note |\n|---|---|---|---|')
for what, value, unit, note in rows: print(f'| {what} | {value:.3g} | {unit} | {note} |')
