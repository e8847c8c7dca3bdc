"""Throughput of kollm's data pipeline on the project's Korean corpus (`--corpus`), against the implementation before
the datatrove pipeline (or any git revision) in the same run.

Measures, in one run:
- `prepare` MB/s (raw input bytes) with 1 and 2 workers, this tree and the baseline revision in paired rounds (the
  order alternating), with the median of the per-round ratios and its range. This tree's `prepare` is a datatrove
  pipeline: workers=1 runs its tasks in this process, workers=2 in two forked processes; the baseline's workers=N
  is N pool processes beside the main process, which deduplicates and writes;
- how this tree scales with tasks at 2 workers (2, 4, 8 tasks);
- MB/s per pipeline step of this tree in one process (ReadSources, CleanKorean, SignDocuments, WriteSigned: stage 1,
  which runs in tasks × workers; DeduplicateAndSplit: stage 2, one task), and the stage-1 ceiling on 2 cores;
- SentencePiece training time (32k BPE; with --compare also unigram) and compression on the valid split;
- `tokenize_text` MB/s with 1 and 2 threads;
- end to end (prepare with 2 workers + tokenize with 2 threads) for both trees, against the goal of 5 MB/s;
- the loader's batches/s beside the batches/s a tiny model consumes in training.
Prints a markdown table and writes it, with the date, to bench/reports/data_pipeline.md (and .json).

    python bench/data_pipeline.py [--corpus DIR] [--out DIR] [--rounds 3] [--baseline REV] [--vocab 32000] [--compare]
"""
import argparse, importlib.util, os, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path

import torch
import kollm.pipeline as current
from kollm.tokens import (TokenLoader, TokenShards, TokenWindows, compression, load_tokenizer, tokenize_text,
                          train_tokenizer)
from kollm.model import KoLLM, KoLLMConfig
from common import markdown_table, spread, write_report

ROOT = Path(__file__).resolve().parents[1]
BEFORE_DATATROVE = 'd5cbbde'  # kollm/data.py before the datatrove pipeline: the baseline it was measured against


NOTES = """
## Notes that the chapters point here for

**The filters on a larger corpus.** The quality filters' defaults (chapter 05c_clean) were tuned on the project's own
54 MB corpus (reviews, law, literature, dialogue, reports, technical docs, news), which only the benchmarks read, since
readers do not have it. It is already cleaned and deduplicated by line, so few documents fall out (93% kept); the
report shows which filters still bite: one-word reviews and dialogue turns (`too_short`, 17,375 documents), English
passages in the technical docs (`low_hangul`, 208), `ㅋㅋㅋ`-style reviews (`repetitive`, 265), and a few e-mail
addresses (48). `kollm_prepare` on a folder of your own text prints the same table.

**MinHash before NumPy.** The near-duplicate index (chapter 05d_dedup) first used `datasketch`, and it was the slowest
part of the pipeline: it hashes shingles one Python call at a time and regenerates its permutations for each document.
kollm's signature hashes all shingles of a document at once in NumPy with multiply-shift hash functions (no modulo),
and the workers compute the signatures and band keys, so the main process only looks up a few keys per document and
verifies the rare candidates. datasketch's bands for 0.8 (9 of 13 rows) put the S-curve's step on the threshold
itself; kollm's `lsh_bands` (21 of 6) catches every pair at the threshold and verifies the candidates below it.
"""


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--corpus', default=str(ROOT.parent / 'shared/data/korean'), help='folder of Korean .txt files')
    p.add_argument('--out', default='/tmp/kollm-bench-data')
    p.add_argument('--rounds', type=int, default=3, help='paired rounds of prepare (this tree, baseline) per worker count')
    p.add_argument('--baseline', default=BEFORE_DATATROVE, help='git revision whose kollm/data.py is the baseline')
    p.add_argument('--vocab', type=int, default=32000)
    p.add_argument('--compare', action='store_true', help='also train a unigram tokenizer of the same size')
    args = p.parse_args()
    corpus, out = Path(args.corpus), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(f for f in corpus.rglob('*.txt'))
    raw_mb = sum(f.stat().st_size for f in files) / 1e6
    rows = []

    def row(what, value, unit, note=''):
        rows.append((what, value, unit, note))
        print(f'{what}: {value:.3g} {unit} {note}', flush=True)

    def load_baseline(rev: str):
        "kollm/data.py as it was at `rev`, imported as its own module (it has no relative imports)."
        source = subprocess.run(['git', '-C', str(ROOT), 'show', f'{rev}:kollm/data.py'], check=True,
                                capture_output=True, text=True).stdout
        path = Path(tempfile.mkdtemp()) / 'kollm_data_baseline.py'
        path.write_text(source)
        spec = importlib.util.spec_from_file_location('kollm_data_baseline', path)
        module = importlib.util.module_from_spec(spec)
        sys.modules['kollm_data_baseline'] = module  # forked workers unpickle its functions by this name
        spec.loader.exec_module(module)
        return module

    def timed_prepare(module, workers: int, folder: Path) -> tuple[float, object]:
        if folder.exists(): current.remove_path(folder)
        start = time.perf_counter()
        report = module.prepare(files, folder, workers=workers, progress=False)
        return time.perf_counter() - start, report

    # 1. prepare, this tree against the baseline, paired rounds with the order alternating
    baseline = load_baseline(args.baseline)
    seconds = {}
    for workers in (1, 2):
        for r in range(args.rounds):
            for name in (('current', 'baseline') if r % 2 == 0 else ('baseline', 'current')):
                module = current if name == 'current' else baseline
                dt, report = timed_prepare(module, workers, out / f'processed-{name}')
                seconds.setdefault((name, workers), []).append(dt)
                if name == 'current': current_report = report
        cur, base = seconds['current', workers], seconds['baseline', workers]
        row(f'prepare, {workers} worker(s), this tree', raw_mb / statistics.median(cur), 'MB/s', f'{raw_mb:.1f} MB')
        row(f'prepare, {workers} worker(s), baseline {args.baseline}', raw_mb / statistics.median(base), 'MB/s')
        ratios = [b / c for c, b in zip(cur, base)]
        row(f'prepare, {workers} worker(s): speed-up over baseline', statistics.median(ratios), '×',
            f'median (range) of {len(ratios)} rounds: {spread(ratios, 2)}')
    print(current_report.table().T.to_string())

    for tasks in (2, 4, 8):
        start = time.perf_counter()
        current.prepare(files, out / 'processed-tasks', workers=2, tasks=tasks, progress=False)
        row(f'prepare, 2 workers, {tasks} tasks, this tree', raw_mb / (time.perf_counter() - start), 'MB/s', 'one round')
        current.remove_path(out / 'processed-tasks')

    # 2. the pipeline's steps in one process: stage 1 (read, clean, sign, write) and stage 2 (dedup, split, write)
    work = out / 'steps-work'
    current.remove_path(work)
    step_s, data = {}, None
    for step in (current.ReadSources(files, work), current.CleanKorean(work), current.SignDocuments(0.8)):
        start = time.perf_counter()
        data = list(step.run(iter(data) if data is not None else None, 0, 1))
        step_s[step.__class__.__name__] = time.perf_counter() - start
    start = time.perf_counter()
    current.WriteSigned(work).run(iter(data), 0, 1)
    step_s['WriteSigned'] = time.perf_counter() - start
    del data
    start = time.perf_counter()
    current.DeduplicateAndSplit(out / 'processed-steps', work, len(files)).run()
    step_s['DeduplicateAndSplit'] = time.perf_counter() - start
    for name, s in step_s.items():
        row(f'step: {name} (one core)', raw_mb / s, 'MB/s', f'{s:.1f} s')
    stage1_s = sum(v for k, v in step_s.items() if k != 'DeduplicateAndSplit')
    row('stage 1 ceiling on 2 cores (perfect split)', 2 * raw_mb / stage1_s, 'MB/s', 'then stage 2 runs alone')
    row('prepare ceiling on 2 cores (stage 1 split, stage 2 after)', raw_mb / (stage1_s / 2 + step_s['DeduplicateAndSplit']),
        'MB/s', 'no start-up or imbalance')
    current.remove_path(work)
    current.remove_path(out / 'processed-steps')

    # 3. tokenizer and tokenization (the same in both trees: one measurement serves both)
    processed = out / 'processed-current'
    train_txt, valid_txt = processed / 'train.txt', processed / 'valid.txt'
    for kind in ('bpe', 'unigram') if args.compare else ('bpe',):
        start = time.perf_counter()
        model = train_tokenizer([train_txt], out / f'{kind}.model', vocab_size=args.vocab, model_type=kind, progress=False)
        row(f'train tokenizer ({args.vocab} {kind})', time.perf_counter() - start, 's')
        c = compression(load_tokenizer(model), valid_txt)
        row(f'{kind}: characters per token on valid', c['chars_per_token'], 'chars/token')
        row(f'{kind}: bytes per token on valid', c['bytes_per_token'], 'bytes/token')
    text_mb = (train_txt.stat().st_size + valid_txt.stat().st_size) / 1e6
    tokenize_s = {}
    for threads in (1, 2):
        start = time.perf_counter()
        metas = [tokenize_text(f, out / 'bpe.model', out / 'tokens', threads=threads, progress=False)
                 for f in (train_txt, valid_txt)]
        tokenize_s[threads] = time.perf_counter() - start
        row(f'tokenize, {threads} thread(s)', text_mb / tokenize_s[threads], 'MB/s',
            f"{sum(m['tokens'] for m in metas):,} tokens, {sum(m['documents'] for m in metas):,} documents")
    for name in ('current', 'baseline'):
        e2e = raw_mb / (statistics.median(seconds[name, 2]) + tokenize_s[2])
        row(f'end to end ({name}: prepare 2 workers + tokenize 2 threads)', e2e, 'MB/s',
            f"goal 5: {'met' if e2e >= 5 else 'not met'}; tokenizer training excluded")

    # 4. the loader against what training consumes
    cfg = KoLLMConfig.from_preset('tiny')
    cfg.vocab_size = 32000 if args.vocab > 8000 else args.vocab
    windows = TokenWindows(TokenShards(out / 'tokens', 'train', tokenizer=out / 'bpe.model'), seq_len=256)
    for workers in (0, 2):
        loader = iter(TokenLoader(windows, batch_size=16, seed=0, num_workers=workers))
        next(loader)
        start = time.perf_counter()
        n = sum(1 for _ in islice(loader, 500))
        row(f'loader, 16×256, {workers} workers', n / (time.perf_counter() - start), 'batches/s')
    model = KoLLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = iter(TokenLoader(windows, batch_size=16, seed=0, num_workers=0))
    def step():
        x, y = next(batches)
        _, loss = model(x, labels=y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    step()
    start = time.perf_counter()
    for _ in range(10): step()
    row(f'tiny model training (vocab {cfg.vocab_size}), 16×256', 10 / (time.perf_counter() - start), 'batches/s',
        'what the loader must keep up with')

    load = os.getloadavg()[0]
    table = [dict(measure=what, value=f'{value:.3g}', unit=unit, note=note) for what, value, unit, note in rows]
    tree = subprocess.run(['git', '-C', str(ROOT), 'describe', '--always', '--dirty'], capture_output=True, text=True).stdout
    intro = (f'Tree {tree.strip()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average '
             f'{load:.1f} at the end, torch {torch.__version__}; the corpus: {raw_mb:.1f} MB in {len(files)} files; '
             f'baseline = kollm/data.py at {args.baseline}. Absolute MB/s follow the machine\'s load; the paired '
             f'ratios are the comparison.')
    report = write_report('data_pipeline', 'Data pipeline throughput', [intro, ('measures', table), NOTES],
                          [dict(measure=what, value=value, unit=unit, note=note) for what, value, unit, note in rows])
    print(markdown_table(table))
    print(f'wrote {report}')

if __name__ == '__main__':
    main()
