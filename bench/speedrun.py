"""Speedrun: the validation bits per byte a fixed CPU budget buys, per training recipe, all in the same run.

Every recipe trains the `tiny` model from scratch on the shared Korean corpus (`../shared/data/korean`, 7 genres)
for the same wall-clock budget, in its own process (the same threads, nothing shared but the data), and is then
scored on one fixed validation text (the `valid.txt` split, every token scored once by `evaluate_text`): bits per
byte do not depend on the tokenizer, so a 32k and an 8k vocabulary are compared on the same bytes.

Recipes are named for what they train: `old cpu_tiny` is cpu_tiny as it shipped before issue 15 (the 32k tokenizer
`kollm_tokenizer` makes by default, AdamW at 1e-3 after 100 warmup steps, a cosine over 2,000 steps stopped by the
clock mid-schedule: not the plan's recipe, which is AdamW at 2e-4 after 4,000 warmup steps); `candidate` is every
ingredient at once (8k vocabulary, Muon, WSD fitted to the budget, lr 2e-3, compile); `cpu_tiny` is what the
cpu_tiny config ships now; the others change one ingredient of `old cpu_tiny` at a time (reports written before
the renaming call these `today` and `default`). Runs go in rounds (every recipe once per seed, the order
rotating), so slow and fast windows of this shared machine fall on every recipe alike; the spread over seeds
(median and range) is reported. Writes `bench/reports/speedrun.md`, `bench/reports/speedrun.json` and
`bench/figures/speedrun.png`.

    python bench/speedrun.py                             # 5-minute budgets: every recipe, 2 seeds (≈ 75 min)
    python bench/speedrun.py --budgets 1,2,5 --recipes 'old cpu_tiny,cpu_tiny'
    python bench/speedrun.py --budgets 30 --recipes 'old cpu_tiny,cpu_tiny' --seeds 1
"""
import argparse, json, math, os, subprocess, sys, time
from pathlib import Path

from common import spread, write_report

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / 'shared' / 'data' / 'korean'
CACHE = ROOT / 'bench' / '.cache' / 'speedrun'  # prepared text, tokenizers and shards (git-ignored)
REPORT, FIGURE = ROOT / 'bench' / 'reports' / 'speedrun.md', ROOT / 'bench' / 'figures' / 'speedrun.png'

# one ingredient at a time on top of `old cpu_tiny`; `cpu_tiny` is whatever kollm ships in cpu_tiny now
RECIPES = {
    'old cpu_tiny': dict(vocab=32000, config='today', overrides=[], clock='pause'),
    'fitted cosine': dict(vocab=32000, config='today', overrides=[], clock='budget'),
    'wsd': dict(vocab=32000, config='today', overrides=['schedule=wsd'], clock='budget'),
    'muon': dict(vocab=32000, config='today', overrides=['optimizer=muon'], clock='pause'),
    'vocab 8k': dict(vocab=8000, config='today', overrides=[], clock='pause'),
    'compile': dict(vocab=32000, config='today', overrides=['compile=true'], clock='pause'),
    'candidate': dict(vocab=8000, config='today', clock='budget', overrides=[
        'schedule=wsd', 'optimizer=muon', 'lr=2e-3', 'min_lr=2e-4', 'warmup_steps=50', 'compile=true']),
    'cpu_tiny': dict(vocab=8000, config='cpu_tiny', overrides=[], clock='budget'),
}
RENAMED = {'today': 'old cpu_tiny', 'default': 'cpu_tiny'}  # the names in reports written before

# leave one ingredient out of `candidate`: what each is worth in the company of the others
_CANDIDATE = RECIPES['candidate']['overrides']
for name, drop, vocab in (('candidate -compile', 'compile=true', 8000), ('candidate -muon', 'optimizer=muon', 8000),
                          ('candidate -wsd', 'schedule=wsd', 8000), ('candidate -8k', None, 32000)):
    RECIPES[name] = dict(vocab=vocab, config='today', clock='budget', overrides=[o for o in _CANDIDATE if o != drop])

# cpu_tiny as it shipped before issue 15 (kollm/configs/training_cpu_tiny.yaml at c943014)
TODAY = dict(seq_len=256, batch_size=16, grad_accum=1, max_steps=2000, lr=1e-3, min_lr=1e-4, warmup_steps=100,
             weight_decay=0.1, grad_clip=1.0, device='cpu', precision='auto', save_steps=250, eval_steps=250,
             eval_batches=20, log_steps=10, schedule='cosine', optimizer='adamw', compile=False)


def prepare_data(log=print) -> Path:
    "Clean text, a 32k and an 8k tokenizer, and token shards for each, made once and cached."
    from kollm.pipeline import prepare
    from kollm.tokens import train_tokenizer, tokenize_text
    text = CACHE / 'text'
    if not (text / 'valid.txt').exists():
        log(f'preparing {CORPUS} …')
        prepare(sorted(CORPUS.glob('*.txt')), text, valid_fraction=0.01, progress=False)
    for vocab in (32000, 8000):
        tok, tokens = CACHE / f'tok{vocab}.model', CACHE / f'tokens{vocab}'
        if not tok.exists():
            log(f'training the {vocab}-piece tokenizer …')
            train_tokenizer([text / 'train.txt'], tok, vocab_size=vocab, progress=False)
        if not (tokens / 'valid.json').exists():
            for split in ('train', 'valid'):
                tokenize_text(text / f'{split}.txt', tok, tokens, progress=False)
    return text


def run_one(recipe: str, minutes: float, seed: int, out: Path) -> dict:
    "Train one recipe for `minutes` and score it (called in a fresh process by `main`)."
    import torch
    from kollm.run import load_train_config, load_checkpoint_model, read_metrics
    from kollm.train import budget_overrides, train
    from kollm.runtime import pick_precision
    from kollm.eval import evaluate_text, inference_tokenizer
    r = RECIPES[recipe]
    budgeted = r['clock'] == 'budget'  # today's 2,000 steps stay a limit only where the clock pauses the run
    today = {k: v for k, v in TODAY.items() if not (budgeted and k == 'max_steps')} if r['config'] == 'today' else {}
    base = [f'{k}={v}' for k, v in today.items()]
    vocab = r['vocab']
    overrides = base + r['overrides'] + [f"tokens_dir={CACHE / f'tokens{vocab}'}",
                                         f"tokenizer={CACHE / f'tok{vocab}.model'}", f'out_dir={out}', f'seed={seed}']
    # a budgeted recipe runs as `kollm_train --max_minutes` does: the budget, not cpu_tiny's 2,000 steps, ends it
    cfg = load_train_config('cpu_tiny', budget_overrides(overrides, minutes) if budgeted else overrides)
    threads = torch.get_num_threads()
    clock = lambda: time.process_time() / threads  # CPU seconds per thread: other load on the machine does not count
    began, wall = clock(), time.perf_counter()
    result = train(cfg, progress=False, log=lambda m: None, clock=clock,
                   pause_after=minutes * 60 if r['clock'] == 'pause' else None)
    seconds, wall = clock() - began, time.perf_counter() - wall
    model = load_checkpoint_model(result['checkpoint'])
    sp = inference_tokenizer(cfg.tokenizer)
    scored = evaluate_text(model, sp, CACHE / 'text' / 'valid.txt', seq_len=cfg.seq_len,
                           precision=pick_precision('cpu', 'auto'))
    metrics = read_metrics(out)
    last_lr = [m['lr'] for m in metrics if 'lr' in m][-1]
    return dict(recipe=recipe, minutes=minutes, seed=seed, bpb=scored['bpb'], steps=result['step'],
                tokens=result['tokens'], seconds=seconds, wall_seconds=wall, last_lr=last_lr, min_lr=cfg.min_lr,
                optimizer=cfg.optimizer, schedule=cfg.schedule, lr=cfg.lr, vocab=r['vocab'],
                threads=torch.get_num_threads(), curve=[(m['seconds'], m['lr']) for m in metrics if 'seconds' in m])


def used_minutes(runs: list[dict]) -> float:
    "CPU minutes the runs took on average: their budget, or less where a run's step limit ended it first."
    return sum(r['seconds'] for r in runs) / len(runs) / 60


def compose_report(rows: list[dict], args):
    import statistics
    budgets = sorted({r['minutes'] for r in rows})
    recipes = [k for k in RECIPES if any(r['recipe'] == k for r in rows)]
    lines = [f"# Speedrun: validation bits per byte at a fixed CPU budget ({time.strftime('%Y-%m-%d')})", '',
             f"Rows from `python bench/speedrun.py` runs ({'the last: ' if args.keep else ''}"
             f"`{' '.join(sys.argv[1:])}`; `--keep` adds to earlier rows) on {os.cpu_count()} cores, "
             f"torch threads {rows[0]['threads']}. tiny model (4 layers × 256), the shared Korean corpus; "
             f"bpb on `valid.txt` ({args.valid_bytes / 1e6:.2f} MB, 7 genres), every token scored once. "
             "Median and range (min–max) over seeds; the ratio column pairs each run with `old cpu_tiny`'s run of the same "
             "seed and budget (lower is better). A run may end before its budget: `old cpu_tiny` at the end of its 2,000-step "
             "cosine, and runs made before `budget_overrides` at cpu_tiny's 2,000 steps; 'CPU minutes used' says when.",
             '']
    for minutes in budgets:
        lines += [f'## {minutes:g} minutes', '', '| recipe | bpb | vs old cpu_tiny (paired) | CPU minutes used | steps | tokens '
                  '| final lr / min_lr |', '|---|---|---|---|---|---|---|']
        for k in recipes:
            mine = [r for r in rows if r['recipe'] == k and r['minutes'] == minutes]
            if not mine: continue
            today = {r['seed']: r['bpb'] for r in rows if r['recipe'] == 'old cpu_tiny' and r['minutes'] == minutes}
            ratios = [r['bpb'] / today[r['seed']] for r in mine if r['seed'] in today]
            lines.append(f"| {k} | {spread([r['bpb'] for r in mine])} | "
                         f"{spread(ratios) if ratios else '–'} | {used_minutes(mine):.1f} | "
                         f"{statistics.mean(r['steps'] for r in mine):.0f} | "
                         f"{statistics.mean(r['tokens'] for r in mine) / 1e6:.2f} M | "
                         f"{statistics.mean(r['last_lr'] / r['min_lr'] for r in mine):.1f} |")
        lines.append('')
    write_report('speedrun', '\n'.join(lines), rows)
    print('\n'.join(lines))
    plot(rows, recipes, budgets)


def plot(rows, recipes, budgets):
    import koreanize_matplotlib  # noqa: F401  Hangul in the labels
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for k in recipes:
        groups = [[r for r in rows if r['recipe'] == k and r['minutes'] == m] for m in budgets]
        pts = [(used_minutes(g), [r['bpb'] for r in g]) for g in groups if g]  # at the minutes the runs took
        ms, means = [m for m, _ in pts], [sum(b) / len(b) for _, b in pts]
        line, = ax.plot(ms, means, 'o-' if len(ms) > 1 else 'o', label=k, lw=2.5 if k in ('old cpu_tiny', 'cpu_tiny') else 1)
        for m, b in pts: ax.vlines(m, min(b), max(b), color=line.get_color(), alpha=0.5)
    ax.set_xscale('log')
    ax.set_xticks(budgets, [f'{m:g}' for m in budgets])
    ax.set_xlabel('학습에 쓴 시간 (CPU 분, 2코어)')
    ax.set_ylabel('검증 bits per byte')
    ax.set_title('같은 시간에 어떤 레시피가 더 좋은 모델을 만드나')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=120)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--budgets', default='5', help='training minutes per run, comma-separated (default 5)')
    p.add_argument('--recipes', default=','.join(RECIPES), help=f"comma-separated, of: {', '.join(RECIPES)}")
    p.add_argument('--seeds', type=int, default=2, help='runs per recipe and budget, seeds first_seed, first_seed + 1, …')
    p.add_argument('--first_seed', type=int, default=0, help='the first seed (to add seeds to a report with --keep)')
    p.add_argument('--keep', action='store_true', help='add to the rows of the last report instead of replacing them')
    p.add_argument('--one', help=argparse.SUPPRESS)  # internal: RECIPE,MINUTES,SEED,OUT in a fresh process
    args = p.parse_args()
    if args.one:
        recipe, minutes, seed, out = args.one.split(',')
        print(json.dumps(run_one(recipe, float(minutes), int(seed), Path(out))))
        return
    text = prepare_data()
    args.valid_bytes = (text / 'valid.txt').stat().st_size
    recipes = args.recipes.split(',')
    unknown = set(recipes) - set(RECIPES)
    if unknown: p.error(f'unknown recipes {sorted(unknown)}; known: {", ".join(RECIPES)}')
    rows = json.loads(REPORT.with_suffix('.json').read_text()) if args.keep and REPORT.with_suffix('.json').exists() else []
    for r in rows: r['recipe'] = RENAMED.get(r['recipe'], r['recipe'])
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    runs = [(float(m), s, k) for m in args.budgets.split(',') for s in seeds for k in recipes]
    for i, (minutes, seed, _) in enumerate(runs):
        group = [k for m, s, k in runs if m == minutes and s == seed]
        recipe = group[(group.index(runs[i][2]) + seed) % len(group)]  # the order rotates with the seed
        out = CACHE / 'runs' / f"{recipe.replace(' ', '_')}-{minutes:g}-{seed}"
        subprocess.run(['rm', '-rf', str(out)], check=True)
        env = {**os.environ, 'TORCHINDUCTOR_COMPILE_THREADS': '1'}  # compiling is work of the run: in its process
        done = subprocess.run([sys.executable, __file__, '--one', f'{recipe},{minutes},{seed},{out}'],
                              capture_output=True, text=True, env=env)
        if done.returncode:
            print(f'{recipe} {minutes:g} min seed {seed} failed:\n{done.stderr[-3000:]}', file=sys.stderr)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"[{i + 1}/{len(runs)}] {recipe:14s} {minutes:g} min seed {seed}: {row['bpb']:.4f} bpb, "
              f"{row['steps']} steps, final lr {row['last_lr']:.2e}", flush=True)
        compose_report(rows, args)


if __name__ == '__main__':
    main()
