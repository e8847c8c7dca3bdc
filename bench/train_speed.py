"""Training throughput of kollm against transformers' `LlamaForCausalLM` holding the same weights (CPU).

Same config, batch, precision and AdamW step for both models. The machine is shared and its load drifts (single
steps of the same model vary by up to 2× here), so the models run in rounds: one step each, in an order that
rotates every round, and each round gives a paired ratio (transformers' step time ÷ kollm's) measured under the
same load. The number to read is the median of those paired ratios, with their range (`common.spread`) beside it.
Peak memory is live tensor bytes measured by `kollm.train.peak_memory` (PyTorch's MemTracker), the same tool that
validates `estimate_memory`; MFU divides `model_flops_per_token` by this CPU's measured `torch.mm` peak.

    python bench/train_speed.py                  # tiny 16×256 and small 8×512, fp32 and bf16
    python bench/train_speed.py --compile        # also kollm under torch.compile (`--steps 15`: 30 min on 2 cores)
    python bench/train_speed.py --presets tiny --steps 10 --no-memory
"""
import argparse, statistics, sys

import torch
from transformers.utils import logging as hf_logging

from kollm.model import KoLLM, KoLLMConfig, to_hf
from kollm.plan import estimate_memory, model_flops_per_token, peak_memory
from common import DTYPES, SHAPES, markdown_table, paired_ratio, rotating_rounds, seconds, train_step, write_report


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    "Best FLOP/s of an n×n `torch.mm` in `dtype` on this CPU."
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = min(seconds(lambda: torch.mm(a, b)) for _ in range(reps))
    return 2 * n ** 3 / best




def bench_preset(preset: str, precision: str, steps: int, compile_: bool, memory: bool, peaks: dict) -> dict:
    "Interleaved timing (and optionally peak memory) of kollm, transformers and, with `compile_`, compiled kollm."
    cfg = KoLLMConfig.from_preset(preset)
    micro_batch, seq_len = SHAPES[preset]
    torch.manual_seed(0)
    kollm = KoLLM(cfg).train()
    hf = to_hf(kollm).train()
    ids = torch.randint(0, cfg.vocab_size, (micro_batch, seq_len))
    runs = {'kollm': (kollm, False), 'transformers': (hf, True)}
    if compile_: runs['kollm compiled'] = (torch.compile(KoLLM(cfg).train()), False)
    steps_by_name = {name: train_step(model, ids, precision, is_hf) for name, (model, is_hf) in runs.items()}
    warmup = {}
    for name, (step, _) in steps_by_name.items(): warmup[name] = seconds(step)  # AdamW state; compilation
    for step, _ in steps_by_name.values(): step()  # a second untimed step: allocator caches settle
    times = rotating_rounds({name: step for name, (step, _) in steps_by_name.items()}, steps)
    tokens, fpt = micro_batch * seq_len, model_flops_per_token(cfg, seq_len)
    row = {'preset': preset, 'batch': f'{micro_batch}×{seq_len}', 'precision': precision, 'rounds': steps}
    for name in runs:
        tps = tokens / statistics.median(times[name])
        row[f'{name} tok/s'] = tps
        row[f'{name} MFU %'] = 100 * tps * fpt / peaks[precision]
    for name, label in [('kollm', 'kollm / transformers'), ('kollm compiled', 'compiled / transformers')]:
        if name in runs: row[label], row[f'{label} range'] = paired_ratio(times['transformers'], times[name])
    if compile_: row['compile warm-up s'] = warmup['kollm compiled']
    if memory:
        for name in ('kollm', 'transformers'):
            step, opt = steps_by_name[name]
            row[f'{name} peak MiB'] = peak_memory(step, runs[name][0], opt) / 2**20
        row['estimate MiB'] = estimate_memory(cfg, micro_batch, seq_len, precision, device_type='cpu').total / 2**20
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--presets', nargs='+', default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument('--precisions', nargs='+', default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument('--steps', type=int, default=10, help='timed rounds (one step of each model) after two warm-up steps')
    parser.add_argument('--compile', action='store_true', help='also time kollm under torch.compile')
    parser.add_argument('--no-memory', action='store_true', help='skip the (≈3× slower) peak-memory steps')
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    peaks = {p: matmul_peak(DTYPES[p]) for p in args.precisions}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; torch.mm peak: "
          + ', '.join(f'{p} {v / 1e9:.0f} GFLOP/s' for p, v in peaks.items()), flush=True)
    rows = []
    for preset in args.presets:
        for precision in args.precisions:
            rows.append(bench_preset(preset, precision, args.steps, args.compile, not args.no_memory, peaks))
            print(rows[-1], flush=True)
    print(markdown_table(rows))
    intro = (f"`python bench/train_speed.py {' '.join(sys.argv[1:])}`: torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, `torch.mm` peak "
             + ', '.join(f'{p} {v / 1e9:.0f} GFLOP/s' for p, v in peaks.items())
             + f"; {args.steps} paired rounds, ratios as the median of the per-round ratios (range).")
    print(f"wrote {write_report('train_speed', 'Training throughput: kollm against transformers (CPU)', [intro, ('speed', rows)], rows)}")


if __name__ == '__main__':
    main()
