"""The speedrun at the medium size on one NVIDIA GPU, and the training MFU of kollm's recipe.

One short prepared run for a lent GPU (about 8 minutes on an H200). Every result goes to `$OUT/gpu_speedrun.json`
the moment it exists, so a failure or a timeout keeps what came before; each part runs in its own process (a crash,
an out-of-memory or a compile failure is recorded and the next part runs), and no part starts after `--budget_s`.

    python bench/gpu_speedrun.py                      # on the GPU (data: bench/speedrun.py's cache, see --help)
    python bench/gpu_speedrun.py --smoke              # tiny model on the CPU: every code path in about 2 minutes
    python bench/gpu_speedrun.py --report RESULT.json # write bench/reports/gpu_speedrun.md from a run's JSON

Measured, in this order (most valuable first):
1. **Optimizer step** on the medium model's parameters, CUDA-synchronised medians: fused AdamW, `torch.optim.Muon`
   (one matrix at a time) and kollm's `BatchedMuon` (same-shaped matrices as one batch), each with AdamW for the
   embedding and norms, as the trainer steps them.
2. **MFU** of kollm's trainer (`kollm.train.train`) with the new recipe (Muon + WSD, bf16, `torch.compile`) at the
   plan's batch (16 × 4 windows of 2,048 tokens): tokens/s after compilation, × `model_flops_per_token` ÷ the GPU's
   dense bf16 peak. This run also fills inductor's on-disk cache, so every speedrun recipe after it compiles warm.
3. **The speedrun**: each recipe trains `medium` from scratch for `--minutes` of wall clock on the same data, seed
   and batch (16 × 2,048 tokens a step), bf16 and compiled; compilation, the final evaluation and the checkpoint are
   inside the budget (the trainer's `max_minutes` fits the schedule to it). Then bits per byte on `valid.txt`
   (`evaluate_text`: every token scored once). The recipes: the plan's (AdamW, cosine 2e-4 → 2e-5) with its
   schedule fitted to the budget (as the plan writes it, its 4,000-step warmup would not end in minutes); Muon + WSD
   at 1e-3, what the `m4max` config ships; and AdamW + WSD at 1e-3, Muon's schedule and rates with AdamW, which
   isolates what Muon is worth.
4. If time is left: the MFU run again with AdamW, and with `torch.optim.Muon`, to put the optimizers' cost in tokens/s.

Data: bench/speedrun.py's cache, made here by `python -c "import sys; sys.path.insert(0, 'bench'); import speedrun;
speedrun.prepare_data()"`; the device run carries `bench/.cache/speedrun/{tokens32000,tok32000.model,text/valid.txt}`.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time
from pathlib import Path

from common import REPORTS, gpu_peak_flops, sync, write_report

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / 'bench' / '.cache' / 'speedrun'
FIGURE = ROOT / 'bench' / 'figures' / 'gpu_speedrun.png'

# the speedrun's recipes at medium: identical but for these fields
PLAN = "the plan's recipe (AdamW + cosine 2e-4)"
RECIPES = {
    PLAN: dict(optimizer='adamw', schedule='cosine', lr=2e-4, min_lr=2e-5),
    'Muon + WSD 1e-3 (m4max)': dict(optimizer='muon', schedule='wsd', lr=1e-3, min_lr=1e-4),
    'AdamW + WSD 1e-3': dict(optimizer='adamw', schedule='wsd', lr=1e-3, min_lr=1e-4),
}
RENAMED = dict(zip(('today', 'default', 'adamw wsd'), RECIPES))  # the names in results written before
# everything else, for every recipe: the plan's medium model, seq 2048, AdamW's betas; a batch of 16 windows per step
COMMON = dict(seq_len=2048, batch_size=16, grad_accum=1, max_steps=100_000, warmup_steps=30, weight_decay=0.1,
              grad_clip=1.0, precision='bf16', compile=True, grad_checkpointing=False, eval_steps=10 ** 6,
              save_steps=10 ** 6, eval_batches=4, log_steps=10, keep_checkpoints=1, seed=0)
MFU_RUN = dict(COMMON, optimizer='muon', schedule='wsd', lr=1e-3, min_lr=1e-4, batch_size=16, grad_accum=4,
               max_steps=14, warmup_steps=5, log_steps=2)


def data_overrides(args) -> list[str]:
    return [f'tokens_dir={args.tokens}', f'tokenizer={args.tokenizer}']


def smoke_overrides(smoke: bool) -> list[str]:
    "The same runs on the CPU with the tiny model and short windows: checks the code paths, measures nothing."
    if not smoke: return ['device=cuda']
    return ['device=cpu', 'model=tiny', 'seq_len=128', 'batch_size=4', 'precision=auto', 'compile=false']


def as_overrides(fields: dict) -> list[str]:
    return [f'{k}={v}' for k, v in fields.items()]


# ---- the parts, each called in a fresh process by `main` (--part NAME,ARG) ----

def part_optimizer_steps(args) -> dict:
    "Median seconds of one optimizer step on medium's parameters with random gradients, per optimizer."
    import torch
    from kollm.model import KoLLM, KoLLMConfig
    from kollm.config import TrainConfig
    from kollm.optim import make_optimizer
    device = torch.device('cpu' if args.smoke else 'cuda')
    preset = 'tiny' if args.smoke else 'medium'
    with device: model = KoLLM(KoLLMConfig.from_preset(preset))
    for p in model.parameters(): p.grad = torch.randn_like(p) * 1e-3
    rows = {}
    for name in ('adamw', 'torch muon', 'batched muon'):
        cfg = TrainConfig(model=preset, optimizer='adamw' if name == 'adamw' else 'muon', lr=1e-4)
        opt = make_optimizer(model, cfg, device)
        if name == 'torch muon':  # the same pair with PyTorch's one-matrix-at-a-time Muon
            hidden = opt.muon.param_groups[0]['params']
            opt.muon = torch.optim.Muon(hidden, lr=1e-4, weight_decay=0.1, adjust_lr_fn='match_rms_adamw')
        times = []
        for i in range(3 + args.reps):
            sync(device.type)
            t = time.perf_counter()
            opt.step()
            sync(device.type)
            if i >= 3: times.append(time.perf_counter() - t)
        rows[name] = dict(median_ms=1e3 * statistics.median(times), min_ms=1e3 * min(times), max_ms=1e3 * max(times))
        del opt
        print(f"{name}: {rows[name]['median_ms']:.1f} ms per step", file=sys.stderr, flush=True)
    return dict(preset=preset, matrices=sum(p.dim() == 2 and n.startswith('blocks.')
                                            for n, p in model.named_parameters()), steps=rows)


def part_mfu(args, optimizer: str) -> dict:
    "kollm's trainer at the plan's batch for a few steps: tokens/s after compilation, MFU, peak memory."
    import torch
    from kollm.plan import model_flops_per_token
    from kollm.config import load_train_config
    from kollm.run import read_metrics
    from kollm.train import train
    import kollm.optim as ko
    run = dict(MFU_RUN, optimizer='adamw' if optimizer == 'adamw' else 'muon', batch_size=args.mfu_micro_batch,
               grad_accum=MFU_RUN['batch_size'] * MFU_RUN['grad_accum'] // args.mfu_micro_batch)
    if optimizer == 'torch muon':  # the trainer with PyTorch's Muon in place of kollm's batched one
        ko.BatchedMuon = torch.optim.Muon  # MuonWithAdamW builds whatever kollm.optim names so
    out = Path(args.work) / f"mfu-{optimizer.replace(' ', '_')}"
    shutil.rmtree(out, ignore_errors=True)  # a run folder of an earlier call would be resumed into its metrics
    cfg = load_train_config('m4max', as_overrides(run) + data_overrides(args) + smoke_overrides(args.smoke) +
                            [f'out_dir={out}'])
    if torch.cuda.is_available(): torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    result = train(cfg, progress=False, log=lambda m: print(m, file=sys.stderr, flush=True))
    logged = [m for m in read_metrics(out) if 'tokens_per_s' in m]
    steady = [m['tokens_per_s'] for m in logged[1:]]  # the first interval holds compilation
    tps = statistics.median(steady) if steady else float('nan')
    fpt = model_flops_per_token(cfg.model_config(), cfg.seq_len)
    name = torch.cuda.get_device_name() if torch.cuda.is_available() and not args.smoke else 'cpu'
    peak = gpu_peak_flops(name)
    return dict(optimizer=optimizer, tokens_per_step=cfg.tokens_per_step, micro_batch=cfg.batch_size,
                tokens_per_s=tps, tokens_per_s_all=steady, flops_per_token=fpt, device=name,
                mfu_pct=100 * tps * fpt / peak if peak else None, first_interval_s=logged[0]['seconds'] if logged else None,
                peak_GiB=torch.cuda.max_memory_allocated() / 2 ** 30 if torch.cuda.is_available() else None,
                steps=result['step'], wall_s=time.perf_counter() - began, losses=[m['loss'] for m in logged])


def part_speedrun(args, recipe: str) -> dict:
    "Train one recipe from scratch for `--minutes` of wall clock, then score `valid.txt` in bits per byte."
    import torch
    from kollm.eval import evaluate_text, inference_tokenizer
    from kollm.plan import model_flops_per_token
    from kollm.config import load_train_config
    from kollm.run import load_checkpoint_model, read_metrics
    from kollm.runtime import pick_precision
    from kollm.train import train
    out = Path(args.work) / f"run-{recipe.replace(' ', '_')}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = load_train_config('m4max', as_overrides({**COMMON, **RECIPES[recipe], 'max_minutes': args.minutes}) +
                            data_overrides(args) + smoke_overrides(args.smoke) + [f'out_dir={out}'])
    began = time.perf_counter()
    result = train(cfg, progress=False, log=lambda m: print(m, file=sys.stderr, flush=True))
    trained = time.perf_counter() - began
    metrics = read_metrics(out)
    logged = [m for m in metrics if 'tokens_per_s' in m]
    model = load_checkpoint_model(result['checkpoint'], device='cpu' if args.smoke else 'cuda')
    precision = pick_precision('cpu' if args.smoke else 'cuda', 'bf16')
    scored = evaluate_text(model, inference_tokenizer(cfg.tokenizer), args.valid, seq_len=cfg.seq_len,
                           precision=precision)
    tps = statistics.median(m['tokens_per_s'] for m in logged[1:]) if len(logged) > 1 else float('nan')
    name = torch.cuda.get_device_name() if torch.cuda.is_available() and not args.smoke else 'cpu'
    peak = gpu_peak_flops(name)
    fpt = model_flops_per_token(cfg.model_config(), cfg.seq_len)
    return dict(recipe=recipe, minutes=args.minutes, bpb=scored['bpb'], valid_tokens=scored['tokens'],
                steps=result['step'], tokens=result['tokens'], val_loss=result['val_loss'], train_s=trained,
                last_lr=[m['lr'] for m in logged][-1], tokens_per_s=tps,
                mfu_pct=100 * tps * fpt / peak if peak else None, **{k: cfg.__dict__[k] for k in RECIPES[recipe]},
                curve=[(m['seconds'], m['loss'], m['lr']) for m in logged])


PARTS = {'optimizer': lambda a, _: part_optimizer_steps(a), 'mfu': part_mfu, 'speedrun': part_speedrun}


# ---- the driver ----

def run_part(args, part: str, arg: str = '') -> dict:
    "One part in a fresh process; its JSON result, or the error it ended with."
    cmd = [sys.executable, __file__, '--part', f'{part},{arg}', '--tokens', args.tokens, '--tokenizer', args.tokenizer,
           '--valid', args.valid, '--minutes', str(args.minutes), '--work', args.work, '--reps', str(args.reps),
           '--mfu_micro_batch', str(args.mfu_micro_batch)]
    if args.smoke: cmd.append('--smoke')
    began = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    row = dict(part=part, arg=arg, wall_s=round(time.perf_counter() - began, 1))
    if done.returncode:
        row['error'] = done.stderr[-2500:]
    else:
        row.update(json.loads(done.stdout.strip().splitlines()[-1]))
    row['log_tail'] = done.stderr[-800:]
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--smoke', action='store_true', help='tiny model on the CPU, to check every code path here')
    p.add_argument('--minutes', type=float, default=1.5, help='wall-clock budget of each speedrun recipe (default 1.5)')
    p.add_argument('--recipes', default=','.join(RECIPES), help=f"comma-separated, of: {', '.join(RECIPES)}")
    p.add_argument('--budget_s', type=float, default=470, help='start no part after this many seconds (default 470)')
    p.add_argument('--reps', type=int, default=10, help='timed optimizer steps per optimizer (default 10)')
    p.add_argument('--mfu_micro_batch', type=int, default=16,
                   help='micro-batch of the MFU runs; accumulation keeps 64 windows a step (default 16)')
    p.add_argument('--tokens', default=str(CACHE / 'tokens32000'), help='token shards (32k tokenizer)')
    p.add_argument('--tokenizer', default=str(CACHE / 'tok32000.model'), help='the shards\' SentencePiece model')
    p.add_argument('--valid', default=str(CACHE / 'text' / 'valid.txt'), help='text scored in bits per byte')
    p.add_argument('--work', default='/tmp/kollm-gpu-speedrun', help='run folders (checkpoints: several GB each)')
    p.add_argument('--report', help="write bench/reports/gpu_speedrun.md and .json from this JSON (a device run's result)")
    p.add_argument('--part', help=argparse.SUPPRESS)  # internal: PART,ARG in a fresh process
    args = p.parse_args()
    if args.report:  # a device run's result, or a report's .json (its data is that result)
        result = json.loads(Path(args.report).read_text())
        return compose_report(result.get('data') or result)
    if args.part:
        part, arg = args.part.split(',', 1)
        print(json.dumps(PARTS[part](args, arg)))
        return
    out = Path(os.environ.get('OUT', '/tmp/gpu_speedrun_out')) / 'gpu_speedrun.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    import torch
    result = dict(date=time.strftime('%Y-%m-%d'), torch=torch.__version__, cuda=torch.version.cuda, smoke=args.smoke, minutes=args.minutes,
                  device=torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu', parts=[], skipped=[])
    plan = [('optimizer', ''), ('mfu', 'batched muon')] + [('speedrun', r) for r in args.recipes.split(',')] + \
           [('mfu', 'adamw'), ('mfu', 'torch muon')]
    began = time.perf_counter()
    for part, arg in plan:
        if time.perf_counter() - began > args.budget_s:
            result['skipped'].append(f'{part} {arg}'.strip())
            continue
        row = run_part(args, part, arg)
        result['parts'].append(row)
        result['elapsed_s'] = round(time.perf_counter() - began, 1)
        out.write_text(json.dumps(result, indent=1))
        summary = {k: row[k] for k in ('bpb', 'tokens_per_s', 'mfu_pct', 'steps') if k in row}
        print(f"[{result['elapsed_s']:.0f} s] {part} {arg}: {'FAILED' if 'error' in row else summary}", flush=True)
        if 'error' in row: print(row['error'][-1500:], flush=True)
    compose_report(result, out.parent)  # bench/reports/ is written from the JSON here: --report


def report_parts(result: dict) -> list:
    "The report's prose and tables, in reading order, from one device run's result."
    by = lambda part: [r for r in result['parts'] if r['part'] == part and 'error' not in r]
    parts = [f"`python bench/gpu_speedrun.py` on {result['device']} (torch {result['torch']}, CUDA {result['cuda']}). "
             "One device run of about eight minutes: every figure below is one run, so no spread is given; see the "
             "CPU speedrun (`speedrun.md`) for seeds and spread."]
    for r in by('optimizer'):
        parts += [f"## One optimizer step on {r['preset']}'s parameters ({r['matrices']} block matrices)",
                  ('optimizer step', [{'optimizer': k, 'median ms': f"{v['median_ms']:.1f}",
                                       'min – max ms': f"{v['min_ms']:.1f} – {v['max_ms']:.1f}"}
                                      for k, v in r['steps'].items()])]
    if by('mfu'):
        parts += ["## Training MFU (kollm's trainer, bf16, compiled, the plan's batch)",
                  ('mfu', [{'optimizer': r['optimizer'], 'tokens/step': f"{r['tokens_per_step']:,}",
                            'micro-batch': r['micro_batch'], 'tokens/s': f"{r['tokens_per_s']:,.0f}",
                            'MFU %': r['mfu_pct'] and f"{r['mfu_pct']:.1f}",
                            'peak GiB': r['peak_GiB'] and f"{r['peak_GiB']:.1f}"} for r in by('mfu')])]
    if runs := by('speedrun'):
        plan = next((r['bpb'] for r in runs if r['recipe'] == PLAN), None)
        parts += [f"## Speedrun: medium from scratch, {result['minutes']:g} minutes of wall clock per recipe",
                  ('speedrun', [{'recipe': r['recipe'], 'bpb': f"{r['bpb']:.3f}",
                                 "vs the plan's recipe": plan and f"{r['bpb'] / plan:.3f}", 'steps': r['steps'],
                                 'tokens': f"{r['tokens'] / 1e6:.1f} M", 'tokens/s': f"{r['tokens_per_s']:,.0f}",
                                 'MFU %': r['mfu_pct'] and f"{r['mfu_pct']:.1f}",
                                 'final lr / min_lr': f"{r['last_lr'] / r['min_lr']:.1f}"} for r in runs]),
                  '![training loss against wall-clock seconds](../figures/gpu_speedrun.png)']
    parts += ['\n'.join(f'- {note}' for note in result.get('notes', []))] if result.get('notes') else []
    failed = [r for r in result['parts'] if 'error' in r]
    if failed or result['skipped']:
        parts += ['## Not measured', '\n'.join(
            [f"- {r['part']} {r['arg']}: failed: `{r['error'].strip().splitlines()[-1][:300]}`" for r in failed] +
            [f'- {s}: skipped (the device time was spent)' for s in result['skipped']])]
    return parts


def compose_report(result: dict, folder: Path = REPORTS):
    "Write the report of one device run (its recipes under their current names) and, into bench/, its figure."
    for r in result['parts']:
        if 'recipe' in r: r['recipe'] = RENAMED.get(r['recipe'], r['recipe'])
    if folder == REPORTS and any(r['part'] == 'speedrun' and 'error' not in r for r in result['parts']):
        plot([r for r in result['parts'] if r['part'] == 'speedrun' and 'error' not in r], result['device'])
    title = f"Speedrun at the medium size on {result['device']} ({result.get('date', 'undated')})"
    print(f"wrote {write_report('gpu_speedrun', title, report_parts(result), result, folder)}")


def plot(runs: list[dict], device: str):
    "Training loss (solid) and learning rate (dotted, right axis) against wall-clock seconds, one colour a recipe."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    lr_ax = ax.twinx()
    for r in runs:
        seconds, loss, lr = zip(*r['curve'])
        line, = ax.plot(seconds, loss, label=f"{r['recipe']} ({r['bpb']:.3f} bpb)")
        lr_ax.plot(seconds, lr, ':', color=line.get_color())
    ax.set_xlabel(f'wall-clock seconds ({device}, compilation included)')
    ax.set_ylabel('training loss')
    lr_ax.set_ylabel('learning rate (dotted)')
    ax.set_title('medium, the same time budget: training loss by recipe')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='lower left')
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=120)


if __name__ == '__main__':
    main()
