"""kollm's own trainer (`kollm.train.train`) on a CUDA GPU: the plan's MPS recipe (fp16 autocast + GradScaler) and
bf16, on the medium preset at seq 2048, from real token shards. Prints tokens/s, MFU, peak memory beside
`estimate_memory`, and the loss going down. Each run is in try/except so one failure keeps the others.

Writes gpu_train.md and .json to $OUT (copy them to bench/reports/).

    python bench/gpu_train.py --tokens data/tokens --tokenizer models/tokenizer.model [--steps 30] [--smoke]
"""
import argparse, json, os, sys, time
from pathlib import Path

import pandas as pd
import torch
from kollm.plan import GiB, estimate_memory, model_flops_per_token
from kollm.config import load_train_config
from kollm.train import train
from common import gpu_peak_flops, write_report


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--tokens', default='data/tokens', help='token shards (kollm_tokenize)')
    p.add_argument('--tokenizer', default='models/tokenizer.model', help='the tokenizer the shards were made with')
    p.add_argument('--steps', type=int, default=30, help='training steps per run')
    p.add_argument('--micro-batch', type=int, default=8, help='sequences of 2,048 tokens per micro-batch (accumulation 2)')
    p.add_argument('--smoke', action='store_true', help='tiny model on the CPU, to check the script')
    p.add_argument('--runs', default='fp16,bf16,bf16+compile,fp16+ckpt', help='comma-separated precision[+compile][+ckpt]')
    args = p.parse_args()
    out = Path(os.environ.get('OUT', '/tmp/gpu_train_out'))  # a device run's files come back from $OUT
    out.mkdir(parents=True, exist_ok=True)
    peak = gpu_peak_flops(torch.cuda.get_device_name()) if torch.cuda.is_available() else None
    runs = [(r.split('+')[0], '+compile' in r, '+ckpt' in r) for r in args.runs.split(',')]  # precision, compile, ckpt
    rows = []
    for precision, compile_, ckpt in runs:
        name = f"{precision}{' compiled' if compile_ else ''}{' ckpt' if ckpt else ''}"
        try:
            over = [f'tokens_dir={args.tokens}', f'tokenizer={args.tokenizer}', f'out_dir=/tmp/kollm-gpu/{name.replace(" ", "_")}',
                    f'max_steps={args.steps}', 'warmup_steps=10', f'save_steps={args.steps}', f'eval_steps={args.steps}',
                    'eval_batches=4', 'log_steps=5', f'batch_size={args.micro_batch}', 'grad_accum=2', f'precision={precision}',
                    f'compile={str(compile_).lower()}', f'grad_checkpointing={str(ckpt).lower()}', 'lr=3.0e-4']
            over += (['device=cpu', 'seq_len=128', 'model=tiny', 'model.vocab_size=32000'] if args.smoke else ['device=cuda'])
            cfg = load_train_config('m4max', over)
            if torch.cuda.is_available(): torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            result = train(cfg, progress=False)
            wall = time.perf_counter() - t
            m = pd.read_json(Path(cfg.out_dir) / 'metrics.jsonl', lines=True)
            logged = m.dropna(subset=['loss'])
            tps = logged.tokens_per_s.iloc[1:].median()  # the first interval holds warm-up (and compilation)
            mcfg = cfg.model_config()
            est = estimate_memory(mcfg, cfg.batch_size, cfg.seq_len, precision, ckpt, device_type='cuda' if not args.smoke else 'cpu',
                                  grad_accum=cfg.grad_accum)
            meas = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else float('nan')
            rows.append(dict(run=name, tokens_per_s=round(tps), mfu_pct=round(100 * tps * model_flops_per_token(mcfg, cfg.seq_len) / peak, 1) if peak else None,
                             peak_GiB=round(meas / GiB, 2), estimate_GiB=round(est.total / GiB, 2),
                             est_error_pct=round(100 * (est.total - meas) / meas, 1) if meas == meas else None,
                             first_loss=round(logged.loss.iloc[0], 3), last_loss=round(logged.loss.iloc[-1], 3),
                             val_first=round(m.val_loss.dropna().iloc[0], 3), val_last=round(m.val_loss.dropna().iloc[-1], 3),
                             overflow_skips=int(result['overflow']), wall_s=round(wall, 1)))
        except Exception as e:
            rows.append(dict(run=name, error=f'{type(e).__name__}: {str(e)[:300]}'))
        print(json.dumps(rows[-1]), flush=True)
        title = f"kollm's train() on {torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}"
        write_report('gpu_train', title, [f"`python bench/gpu_train.py {' '.join(sys.argv[1:])}`", ('runs', rows)], rows,
                     out)  # after every run: a timeout keeps the rest
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == '__main__':
    main()
