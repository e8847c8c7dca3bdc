"""Training step time of kollm against the chunk size of its loss (`model.loss_chunk`), on the CPU.

`linear_cross_entropy` holds `chunk × vocab_size` logits at once. This sweep is the measurement behind
`loss_chunk_size` (chapter 04): one model per chunk size, all with the same weights and batch, timed in paired
rounds as in `train_speed.py` (one step of each, the order rotating); each size's speed-up over 4,096 tokens (the GPU
default) is the median of its per-round ratios, with their range (`common.spread`).

    python bench/loss_chunk.py                               # tiny fp32 and small bf16, compiled, ≈ 10 min on 2 cores
    python bench/loss_chunk.py --presets tiny --precisions bf16 --eager --chunks 4096 512
"""
import argparse, statistics, sys

import torch

from kollm.model import KoLLM, KoLLMConfig
from common import DTYPES, SHAPES, markdown_table, paired_ratio, rotating_rounds, seconds, train_step, write_report


def sweep(preset: str, precision: str, chunks: list[int], rounds: int, compile_: bool) -> list[dict]:
    "Paired timing of one training step per loss chunk size; speed-ups relative to the chunk size 4096."
    cfg = KoLLMConfig.from_preset(preset)
    micro_batch, seq_len = SHAPES[preset]
    ids = torch.randint(0, cfg.vocab_size, (micro_batch, seq_len), generator=torch.Generator().manual_seed(0))
    steps = {}
    for chunk in chunks:
        torch.manual_seed(0)
        model = KoLLM(cfg).train()
        model.loss_chunk = chunk
        steps[chunk] = train_step(torch.compile(model) if compile_ else model, ids, precision, hf=False)[0]
    for step in steps.values(): step(); step()  # compilation, AdamW state, allocator caches
    times = rotating_rounds(steps, rounds)
    rows = []
    for chunk in chunks:
        row = {'preset': preset, 'precision': precision, 'compiled': compile_, 'loss chunk': chunk,
               'logits MB': chunk * cfg.vocab_size * 4 / 1e6, 'step ms': 1e3 * statistics.median(times[chunk])}
        if 4096 in times: row['speed-up vs 4096'], row['range'] = paired_ratio(times[4096], times[chunk])
        rows.append(row)
    return rows


def allocation_cost(vocab_size: int = 8000, tokens: int = 4096) -> dict:
    "Milliseconds of an `exp` (allocates its output) and an `amax` (allocates almost nothing) over one chunk of logits."
    logits = torch.randn(tokens, vocab_size)
    timed = lambda fn: 1e3 * statistics.median(seconds(fn) for _ in range(7))
    return {'logits MB': logits.numel() * 4 / 1e6, 'exp ms': timed(logits.exp), 'amax ms': timed(lambda: logits.amax(-1))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--presets', nargs='+', default=['tiny', 'small'], choices=list(SHAPES))
    parser.add_argument('--precisions', nargs='+', default=None, choices=list(DTYPES),
                        help='precisions to sweep (default: fp32 for tiny, bf16 for small)')
    parser.add_argument('--chunks', nargs='+', type=int, default=[4096, 1024, 512, 256, 128], help='loss chunk sizes, tokens')
    parser.add_argument('--rounds', type=int, default=6, help='timed rounds (one step per chunk size) after two warm-up steps')
    parser.add_argument('--eager', action='store_true', help='time eager models instead of torch.compile')
    args = parser.parse_args()
    cost = {k: round(v, 1) for k, v in allocation_cost().items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; one 4,096-token chunk of tiny's logits:",
          cost, flush=True)
    rows = []
    for preset in args.presets:
        for precision in args.precisions or [{'tiny': 'fp32', 'small': 'bf16'}[preset]]:
            rows += sweep(preset, precision, args.chunks, args.rounds, not args.eager)
            print(rows[-1], flush=True)
    print(markdown_table(rows))
    intro = (f"`python bench/loss_chunk.py {' '.join(sys.argv[1:])}`: torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, {args.rounds} paired rounds; speed-up over 4,096 tokens as the median "
             f"of the per-round ratios (range). One 4,096-token chunk of tiny's logits: {cost}.")
    print(f"wrote {write_report('loss_chunk', 'Training step time against the loss chunk size (CPU)', [intro, ('sweep', rows)], rows)}")


if __name__ == '__main__':
    main()
