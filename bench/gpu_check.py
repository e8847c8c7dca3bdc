"""One short run on an NVIDIA H100/H200: kollm's training speed, MFU and peak memory against `estimate_memory`.

Run once on the lent GPU (about 3 minutes); results go to $OUT/gpu_check.json after every measurement (and at the
end the report, $OUT/gpu_check.md with its .json), so a
failure or a timeout keeps what came before. Each measurement is independent (one failing is recorded, the rest
run), and everything after `--budget-s` seconds is skipped rather than started.

    python bench/gpu_check.py                 # medium preset, seq 2048, on CUDA
    python bench/gpu_check.py --smoke         # tiny preset, tiny shapes, on CPU: checks the code paths here

Measured, in this order (most valuable first):
1. peak memory (`torch.cuda.max_memory_allocated`) of one steady-state training step against
   `estimate_memory(..., device_type='cuda')` for several (micro-batch, checkpointing) combinations;
2. tokens/s and MFU of kollm, bf16 autocast and fp16 autocast + GradScaler (the MPS-like path);
3. the same steps for transformers' `LlamaForCausalLM` holding the same weights (`to_hf`), as a ratio;
4. kollm under `torch.compile` (bf16), if time is left.
"""
import argparse, gc, json, os, statistics, sys, time, traceback
from pathlib import Path

import torch

from kollm.model import KoLLM, KoLLMConfig, to_hf
from kollm.plan import estimate_memory, model_flops_per_token, peak_memory
from common import gpu_peak_flops, sync, write_report

class Report:
    "Results, written to JSON after every change."
    def __init__(self, path: Path, budget_s: float):
        self.path, self.budget_s, self.start = path, budget_s, time.perf_counter()
        self.data = {'memory': [], 'throughput': [], 'errors': [], 'skipped': []}
        path.parent.mkdir(parents=True, exist_ok=True)

    def save(self):
        self.data['elapsed_s'] = round(time.perf_counter() - self.start, 1)
        self.path.write_text(json.dumps(self.data, indent=1, default=str))

    def attempt(self, what: str, fn):
        "Run `fn()` unless the time budget is spent; record a failure instead of raising."
        if time.perf_counter() - self.start > self.budget_s:
            self.data['skipped'].append(what); self.save(); return None
        try: return fn()
        except Exception as e:
            self.data['errors'].append({'what': what, 'error': repr(e), 'traceback': traceback.format_exc(limit=4)})
            print(f'!! {what}: {e!r}', flush=True)
            return None
        finally:
            self.save()
            if torch.cuda.is_available(): torch.cuda.empty_cache()


def make_step(model, ids: torch.Tensor, precision: str, hf: bool = False):
    "One training step (autocast forward, backward, AdamW, grads to None); fp16 goes through a GradScaler."
    device = ids.device.type
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device, enabled=precision == 'fp16')
    dtype = torch.float16 if precision == 'fp16' else torch.bfloat16
    def step():
        with torch.autocast(device, dtype=dtype, enabled=precision != 'fp32'):
            loss = model(input_ids=ids, labels=ids).loss if hf else model(ids, ids)[1]
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
    return step, opt


def step_peak_bytes(step, model, opt, device: str) -> int:
    "Peak bytes of one step: the CUDA allocator's counter, or MemTracker's live-tensor peak on CPU."
    if device != 'cuda': return peak_memory(step, model, opt)
    sync(device)
    torch.cuda.reset_peak_memory_stats()
    step()
    sync(device)
    return torch.cuda.max_memory_allocated()


def time_steps(step, device: str, warmup: int, steps: int) -> tuple[float, float]:
    "(first warm-up step's seconds, median seconds of the timed steps)."
    times = []
    for i in range(warmup + steps):
        sync(device); t = time.perf_counter()
        step()
        sync(device); times.append(time.perf_counter() - t)
    return times[0], statistics.median(times[warmup:])


def new_model(cfg: KoLLMConfig, device: str, seed: int = 0) -> KoLLM:
    torch.manual_seed(seed)
    with torch.device(device): return KoLLM(cfg).train()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--smoke', action='store_true', help='tiny preset and shapes on CPU, to test the code paths')
    parser.add_argument('--micro-batch', type=int, default=8, help='micro-batch of the throughput runs')
    parser.add_argument('--steps', type=int, default=5, help='timed steps per throughput run')
    parser.add_argument('--budget-s', type=float, default=170, help='start no measurement after this many seconds')
    parser.add_argument('--skip-compile', action='store_true')
    args = parser.parse_args()

    device = 'cpu' if args.smoke else 'cuda'
    if device == 'cuda' and not torch.cuda.is_available(): raise SystemExit('no CUDA device; use --smoke on CPU')
    preset, seq_len = ('tiny', 64) if args.smoke else ('medium', 2048)
    micro_batch = 2 if args.smoke else args.micro_batch
    memory_combos = [(1, False), (2, True)] if args.smoke else [(1, False), (4, False), (4, True), (8, False), (8, True)]
    cfg = KoLLMConfig.from_preset(preset)
    name = torch.cuda.get_device_name() if device == 'cuda' else 'cpu'
    peak = gpu_peak_flops(name) if device == 'cuda' else None
    fpt = model_flops_per_token(cfg, seq_len)
    report = Report(Path(os.environ.get('OUT', 'gpu_check_out')) / 'gpu_check.json', args.budget_s)
    report.data.update(device=name, torch=torch.__version__, preset=preset, seq_len=seq_len, peak_flops=peak,
                       flops_per_token=fpt, cuda=torch.version.cuda)
    report.save()
    print(f'{name}, torch {torch.__version__}; {preset} at seq {seq_len}; peak {peak and peak / 1e12} TFLOP/s', flush=True)
    ids_for = lambda mb: torch.randint(0, cfg.vocab_size, (mb, seq_len), device=device)

    def memory_check(mb, ckpt, precision):
        model = new_model(cfg, device)
        model.gradient_checkpointing = ckpt
        step, opt = make_step(model, ids_for(mb), precision)
        step()  # AdamW's moments exist from here on, as in every later step
        measured = step_peak_bytes(step, model, opt, device)
        est = estimate_memory(cfg, mb, seq_len, precision, ckpt, device_type=device)
        row = {'micro_batch': mb, 'grad_checkpointing': ckpt, 'precision': precision, 'measured_GiB': measured / 2**30,
               'estimate_GiB': est.total / 2**30, 'error_pct': 100 * (est.total - measured) / measured,
               'estimate_phase': est.peak_phase, 'estimate_parts_GiB': est.gib()}
        if device == 'cuda': row['reserved_GiB'] = torch.cuda.max_memory_reserved() / 2**30
        report.data['memory'].append(row)
        print(f"memory {mb}×{seq_len} {precision} ckpt={ckpt}: measured {row['measured_GiB']:.2f} GiB, "
              f"estimate {row['estimate_GiB']:.2f} GiB ({row['error_pct']:+.1f}%)", flush=True)

    for mb, ckpt in memory_combos:
        report.attempt(f'memory mb={mb} ckpt={ckpt} bf16', lambda: memory_check(mb, ckpt, 'bf16'))
    report.attempt('memory fp16', lambda: memory_check(memory_combos[1][0], False, 'fp16'))

    def throughput(label, model, precision, hf=False):
        ids = ids_for(micro_batch)
        step, opt = make_step(model, ids, precision, hf)
        first, median = time_steps(step, device, warmup=2, steps=args.steps)
        tps = micro_batch * seq_len / median
        row = {'model': label, 'precision': precision, 'micro_batch': micro_batch, 'tokens_per_s': tps,
               'step_s': median, 'first_step_s': first, 'mfu_pct': peak and 100 * tps * fpt / peak}
        if device == 'cuda': row['peak_GiB'] = torch.cuda.max_memory_allocated() / 2**30
        report.data['throughput'].append(row)
        print(f"{label} {precision}: {tps:,.0f} tok/s, MFU {row['mfu_pct'] and round(row['mfu_pct'], 1)}%, "
              f"first step {first:.1f} s", flush=True)
        del step, opt

    hf_weights = {}
    def kollm_runs():
        model = new_model(cfg, device)
        hf_weights['state'] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        for precision in ('bf16', 'fp16'):
            if device == 'cuda': torch.cuda.reset_peak_memory_stats()
            report.attempt(f'kollm {precision}', lambda: throughput('kollm', model, precision))
    report.attempt('kollm throughput', kollm_runs)
    gc.collect()

    def hf_runs():
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
        source = KoLLM(cfg)
        source.load_state_dict(hf_weights['state'])
        hf = to_hf(source).to(device).train()
        del source
        for precision in ('bf16', 'fp16'):
            if device == 'cuda': torch.cuda.reset_peak_memory_stats()
            report.attempt(f'transformers {precision}', lambda: throughput('transformers', hf, precision, hf=True))
    report.attempt('transformers throughput', hf_runs)
    gc.collect()

    if not args.skip_compile:
        report.attempt('kollm compiled bf16', lambda: throughput('kollm compiled', torch.compile(new_model(cfg, device)), 'bf16'))

    rows = report.data['throughput']
    by = {(r['model'], r['precision']): r['tokens_per_s'] for r in rows}
    for precision in ('bf16', 'fp16'):
        if ('kollm', precision) in by and ('transformers', precision) in by:
            report.data[f'kollm_over_transformers_{precision}'] = by['kollm', precision] / by['transformers', precision]
    report.save()
    memory = [{'micro-batch': r['micro_batch'], 'checkpointing': 'yes' if r['grad_checkpointing'] else 'no',
               'precision': r['precision'], 'measured GiB': f"{r['measured_GiB']:.2f}",
               'estimate GiB': f"{r['estimate_GiB']:.2f}", 'error': f"{r['error_pct']:+.1f}%"}
              for r in report.data['memory']]
    speed = [{'model': r['model'], 'precision': r['precision'], 'tokens/s': f"{r['tokens_per_s']:,.0f}",
              'MFU %': '' if r['mfu_pct'] is None else f"{r['mfu_pct']:.1f}", 'first step s': f"{r['first_step_s']:.1f}"}
             for r in rows]
    ratios = '; '.join(f'{k}: {v:.2f}×' for k, v in report.data.items() if k.startswith('kollm_over'))
    intro = (f"`python bench/gpu_check.py {' '.join(sys.argv[1:])}` on {name} (torch {torch.__version__}), {preset} at "
             f"seq {seq_len}. {ratios}. Errors: {len(report.data['errors'])}, skipped: {report.data['skipped'] or 'none'}.")
    parts = [intro, '## Peak memory against `estimate_memory`', ('memory', memory), '## Throughput', ('throughput', speed)]
    print(f"wrote {write_report('gpu_check', f'Training speed and memory of {preset} on {name}', parts, report.data, report.path.parent)}")

if __name__ == '__main__':
    main()
