"""Scoring throughput: kollm's loss under `no_grad` (evaluation) against a plain forward pass and the gradient path.

Evaluation (`kollm_eval`, the trainer's validation) calls the model with labels under `torch.no_grad()`. The fused
loss (chapter 04) decides whether to compute gradients from grad mode; before that fix it followed `requires_grad`
and computed both gradients anyway. This script times, on the same weights and batch, in paired rounds (one call of
each, the order rotating; the machine is shared and noisy):

- `forward`: `model(x)`, the logits of every position, nothing else (what any scorer must at least do);
- `forward + F.cross_entropy`: the textbook scorer, full logits then PyTorch's cross-entropy (the peer);
- `loss, no_grad`: `model(x, labels=y)` under `no_grad`, the evaluation path;
- `loss, gradient path`: the same loss with its gradient buffers computed (what evaluation cost before the fix);
- `evaluate_text`: chapter 07's exact scorer on a generated text file of the same number of tokens, end to end.

It prints a table (tokens/s, the median of per-round ratios to `forward` with their range over the rounds) and writes
it to `bench/reports/eval_speed.md`.

    python bench/eval_speed.py                         # tiny with a 32k vocabulary, 8×512, fp32 and bf16
    python bench/eval_speed.py --preset small --rounds 5
"""
import argparse, dataclasses, statistics, sys, tempfile, time
from pathlib import Path

import torch

from kollm.model import KoLLM, KoLLMConfig
from kollm.memory import LinearCrossEntropy, loss_chunk_size
from common import markdown_table, paired_ratio, seconds, write_report


def scorers(model: KoLLM, x: torch.Tensor, y: torch.Tensor, dtype) -> dict:
    "Closures for each way of scoring the batch, all under autocast in `dtype` (None: fp32) and `no_grad`."
    def autocast(): return torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None)
    def forward():
        with torch.no_grad(), autocast(): model(x)
    def loss():
        with torch.no_grad(), autocast(): model(x, labels=y)
    def forward_cross_entropy():  # the textbook scorer: full logits, then F.cross_entropy over them
        with torch.no_grad(), autocast():
            logits, _ = model(x)
            torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
    def gradient_path():  # the old behaviour: the fused loss computes both gradients although nobody asked
        with torch.no_grad(), autocast():
            h = model.norm(_trunk(model, x))
            LinearCrossEntropy.apply(h.reshape(-1, h.shape[-1]), model.lm_head.weight, y.reshape(-1),
                                     loss_chunk_size('cpu'), True)
    return {'forward': forward, 'forward + F.cross_entropy': forward_cross_entropy, 'loss, no_grad': loss,
            'loss, gradient path': gradient_path}


def _trunk(model: KoLLM, x: torch.Tensor) -> torch.Tensor:
    "The decoder blocks' output (what the loss reads), as `KoLLM.forward` computes it."
    h = model.embed(x)
    for block in model.blocks: h = block(h, model.rope_cos, model.rope_sin)
    return h


def evaluate_text_seconds(model: KoLLM, tokens: int, seq_len: int, workdir: Path) -> tuple[float, int]:
    "Seconds for chapter 07's `evaluate_text` over a generated text of about `tokens` tokens (disjoint windows)."
    from kollm.tokens import train_tokenizer, load_tokenizer
    from kollm.eval import evaluate_text
    lines = [f"{i}번째 문장은 평가 속도를 재기 위해 만든 한국어 문장입니다." for i in range(4000)]
    text = workdir / 'text.txt'
    text.write_text('\n\n'.join(lines) + '\n', encoding='utf-8')
    sp = load_tokenizer(train_tokenizer([text], workdir / 'sp.model', vocab_size=300, progress=False))
    per_doc = len(sp.encode(lines[0])) + 2
    text.write_text('\n'.join(lines[:max(1, tokens // per_doc)]) + '\n', encoding='utf-8')  # one long document
    start = time.perf_counter()
    result = evaluate_text(model, sp, text, seq_len=seq_len, stride=seq_len, batch_size=8)
    return time.perf_counter() - start, result['tokens']


def bench(preset: str, vocab: int, batch: int, seq_len: int, precision: str, rounds: int) -> list[dict]:
    "Paired timing of the scorers on one model; rows for the report."
    cfg = dataclasses.replace(KoLLMConfig.from_preset(preset), vocab_size=vocab, dropout=0.0,
                              max_seq_length=max(seq_len, 128))
    torch.manual_seed(0)
    model = KoLLM(cfg).eval()
    ids = torch.randint(0, vocab, (batch, seq_len + 1), generator=torch.Generator().manual_seed(0))
    x, y = ids[:, :-1], ids[:, 1:]
    dtype = {'fp32': None, 'bf16': torch.bfloat16}[precision]
    runs = scorers(model, x, y, dtype)
    for fn in runs.values(): fn()  # warm-up: allocator caches, oneDNN kernels
    times = {name: [] for name in runs}
    names = list(runs)
    for i in range(rounds):
        for name in names[i % len(names):] + names[:i % len(names)]: times[name].append(seconds(runs[name]))
    rows = []
    for name in names:
        ratio, ratio_range = paired_ratio(times[name], times['forward'])  # per round: this scorer's time / forward's
        rows.append({'preset': f'{preset} (vocab {vocab:,})', 'batch': f'{batch}×{seq_len}', 'precision': precision,
                     'scorer': name, 'tok/s': x.numel() / statistics.median(times[name]),
                     'time / forward': ratio, 'range': ratio_range})
    if precision == 'fp32':
        with tempfile.TemporaryDirectory() as tmp:
            scored_s, tokens = evaluate_text_seconds(model, x.numel(), seq_len, Path(tmp))
        rows.append({'preset': f'{preset} (vocab {vocab:,})', 'batch': f'8×{seq_len}', 'precision': precision,
                     'scorer': 'evaluate_text (one document, disjoint windows, one run)', 'tok/s': tokens / scored_s,
                     'time / forward': float('nan'), 'range': ''})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', default='tiny', help='model preset (its vocabulary replaced by --vocab)')
    parser.add_argument('--vocab', type=int, default=32000, help='vocabulary size: the output layer dominates small models')
    parser.add_argument('--batch', type=int, default=8, help='sequences per call')
    parser.add_argument('--seq_len', type=int, default=512, help='tokens per sequence')
    parser.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'], choices=['fp32', 'bf16'])
    parser.add_argument('--rounds', type=int, default=7, help='timed rounds (one call of each scorer) after a warm-up')
    args = parser.parse_args()
    rows = [r for p in args.precisions for r in bench(args.preset, args.vocab, args.batch, args.seq_len, p, args.rounds)]
    print(markdown_table(rows))
    intro = (f"`python bench/eval_speed.py {' '.join(sys.argv[1:])}` on {time.strftime('%Y-%m-%d %H:%M')}, "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} paired rounds (median of "
             "per-round ratios to `forward`, with their range).")
    print(f"wrote {write_report('eval_speed', 'Scoring throughput', [intro, ('scorers', rows)], rows)}")

if __name__ == '__main__':
    main()
