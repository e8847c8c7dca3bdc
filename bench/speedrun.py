"""Speedrun: the validation bits per byte a fixed CPU budget buys, per training recipe, all in the same run.

Every recipe trains the `tiny` model from scratch on the project's Korean corpus (`--corpus`, 7 genres)
for the same wall-clock budget, in its own process (the same threads, nothing shared but the data), and is then
scored on one fixed validation text (the `valid.txt` split, every token scored once by `evaluate_text`): bits per
byte do not depend on the tokenizer, so a 32k and an 8k vocabulary are compared on the same bytes.

Recipes are named for what they train. `AdamW + 2k-step cosine (32k)` is what cpu_tiny shipped before this
benchmark: the 32k tokenizer `kollm_tokenizer` makes by default, AdamW at 1e-3 after 100 warmup steps, a cosine over
2,000 steps stopped by the clock mid-schedule (not the plan's recipe, which is AdamW at 2e-4 after 4,000 warmup
steps); `Muon + WSD 2e-3 (8k) compiled` is every ingredient at once; `cpu_tiny config` is what the cpu_tiny config
ships now (the same ingredients); the others change one ingredient of the first at a time, or leave one out of the
second. Runs go in rounds (every recipe once per seed, the order
rotating), so slow and fast windows of this shared machine fall on every recipe alike; the spread over seeds
(median and range) is reported. Writes `bench/reports/speedrun.md`, `bench/reports/speedrun.json` and
`bench/figures/speedrun.png`.

    python bench/speedrun.py                             # 5-minute budgets: every recipe, 2 seeds (≈ 75 min)
    python bench/speedrun.py --budgets 1,2,5 --recipes 'AdamW + 2k-step cosine (32k),cpu_tiny config'
    python bench/speedrun.py --budgets 30 --recipes 'AdamW + 2k-step cosine (32k),cpu_tiny config' --seeds 1
    python bench/speedrun.py --report    # the report and figure again from bench/reports/speedrun.json
"""
import argparse, json, math, os, re, statistics, subprocess, sys, time
from pathlib import Path

from common import REPORTS, spread, write_report

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / 'shared' / 'data' / 'korean'  # the default of --corpus
CACHE = ROOT / 'bench' / '.cache' / 'speedrun'  # prepared text, tokenizers and shards (git-ignored)
FIGURE = ROOT / 'bench' / 'figures' / 'speedrun.png'
NOT_A_WORD = r'\W+'  # run folders are named by recipe, without spaces or signs

BASE, ALL = 'AdamW + 2k-step cosine (32k)', 'Muon + WSD 2e-3 (8k) compiled'
ALL_OVERRIDES = ['schedule=wsd', 'optimizer=muon', 'lr=2e-3', 'min_lr=2e-4', 'warmup_steps=50', 'compile=true']
# one ingredient at a time on top of BASE (cpu_tiny as it shipped before, `BEFORE`); ALL, every ingredient at once
RECIPES = {
    BASE: dict(vocab=32000, config='before', overrides=[], clock='pause'),
    'AdamW + fitted cosine (32k)': dict(vocab=32000, config='before', overrides=[], clock='budget'),
    'AdamW + WSD (32k)': dict(vocab=32000, config='before', overrides=['schedule=wsd'], clock='budget'),
    'Muon + 2k-step cosine (32k)': dict(vocab=32000, config='before', overrides=['optimizer=muon'], clock='pause'),
    'AdamW + 2k-step cosine (8k)': dict(vocab=8000, config='before', overrides=[], clock='pause'),
    'AdamW + 2k-step cosine (32k) compiled': dict(vocab=32000, config='before', overrides=['compile=true'],
                                                  clock='pause'),
    ALL: dict(vocab=8000, config='before', clock='budget', overrides=ALL_OVERRIDES),
    'cpu_tiny config': dict(vocab=8000, config='cpu_tiny', overrides=[], clock='budget'),
}
# leave one ingredient out of ALL: what each is worth in the company of the others
for name, drop, vocab in (('Muon + WSD 2e-3 (8k)', 'compile=true', 8000),
                          ('AdamW + WSD 2e-3 (8k) compiled', 'optimizer=muon', 8000),
                          ('Muon + fitted cosine 2e-3 (8k) compiled', 'schedule=wsd', 8000),
                          ('Muon + WSD 2e-3 (32k) compiled', None, 32000)):
    RECIPES[name] = dict(vocab=vocab, config='before', clock='budget', overrides=[o for o in ALL_OVERRIDES if o != drop])
RENAMED = {  # the names in rows written before
    'today': BASE, 'old cpu_tiny': BASE, 'fitted cosine': 'AdamW + fitted cosine (32k)', 'wsd': 'AdamW + WSD (32k)',
    'muon': 'Muon + 2k-step cosine (32k)', 'vocab 8k': 'AdamW + 2k-step cosine (8k)',
    'compile': 'AdamW + 2k-step cosine (32k) compiled', 'candidate': ALL, 'default': 'cpu_tiny config',
    'cpu_tiny': 'cpu_tiny config', 'candidate -compile': 'Muon + WSD 2e-3 (8k)',
    'candidate -muon': 'AdamW + WSD 2e-3 (8k) compiled', 'candidate -wsd': 'Muon + fitted cosine 2e-3 (8k) compiled',
    'candidate -8k': 'Muon + WSD 2e-3 (32k) compiled'}

# cpu_tiny as it shipped before this benchmark (kollm/configs/training_cpu_tiny.yaml at c943014)
BEFORE = dict(seq_len=256, batch_size=16, grad_accum=1, max_steps=2000, lr=1e-3, min_lr=1e-4, warmup_steps=100,
             weight_decay=0.1, grad_clip=1.0, device='cpu', precision='auto', save_steps=250, eval_steps=250,
             eval_batches=20, log_steps=10, schedule='cosine', optimizer='adamw', compile=False)


def prepare_data(corpus: Path = CORPUS, log=print) -> Path:
    "Clean text, a 32k and an 8k tokenizer, and token shards for each, made once and cached."
    from kollm.pipeline import prepare
    from kollm.tokens import train_tokenizer, tokenize_text
    text = CACHE / 'text'
    if not (text / 'valid.txt').exists():
        log(f'preparing {corpus} …')
        prepare(sorted(corpus.glob('*.txt')), text, valid_fraction=0.01, progress=False)
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
    from kollm.config import load_train_config
    from kollm.run import load_checkpoint_model, read_metrics
    from kollm.train import budget_overrides, train
    from kollm.runtime import pick_precision
    from kollm.eval import evaluate_text, inference_tokenizer
    r = RECIPES[recipe]
    budgeted = r['clock'] == 'budget'  # BEFORE's 2,000 steps stay a limit only where the clock pauses the run
    before = {k: v for k, v in BEFORE.items() if not (budgeted and k == 'max_steps')} if r['config'] == 'before' else {}
    base = [f'{k}={v}' for k, v in before.items()]
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


def budget_table(rows: list[dict], minutes: float) -> list[dict]:
    "One budget's recipes: bpb and its ratio to BASE's run of the same seed, each as `spread` over seeds."
    base = {r['seed']: r['bpb'] for r in rows if r['recipe'] == BASE and r['minutes'] == minutes}
    table = []
    for k in RECIPES:
        mine = [r for r in rows if r['recipe'] == k and r['minutes'] == minutes]
        if not mine: continue
        ratios = [r['bpb'] / base[r['seed']] for r in mine if r['seed'] in base]
        table.append({'recipe': k, 'bpb': spread([r['bpb'] for r in mine]),
                      f'vs {BASE} (paired)': spread(ratios) if ratios else '–',
                      'CPU minutes used': f'{used_minutes(mine):.1f}', 'seeds': len(mine),
                      'steps': f"{statistics.mean(r['steps'] for r in mine):.0f}",
                      'tokens': f"{statistics.mean(r['tokens'] for r in mine) / 1e6:.2f} M",
                      'final lr / min_lr': f"{statistics.mean(r['last_lr'] / r['min_lr'] for r in mine):.1f}"})
    return table


def compose_report(rows: list[dict], command: str, valid_bytes: int, date: str | None = None, notes=()):
    "Write the report, its .json (the tables and every run) and the figure."
    budgets = sorted({r['minutes'] for r in rows})
    parts = [f"Rows from `python bench/speedrun.py` runs (the last: `{command}`; `--keep` adds to earlier rows) on "
             f"2 CPU threads. tiny model (4 layers × 256), the project's Korean corpus; bpb on `valid.txt` "
             f"({valid_bytes / 1e6:.2f} MB, 7 genres), every token scored once. Median and range (min–max) over "
             f"seeds; the ratio column pairs each run with `{BASE}`'s run of the same seed and budget (lower is "
             f"better). A run may end before its budget: `{BASE}` at the end of its 2,000-step cosine, and runs made "
             "before `budget_overrides` at cpu_tiny's 2,000 steps; 'CPU minutes used' says when.",
             '![validation bits per byte against CPU minutes, by recipe](../figures/speedrun.png)']
    for minutes in budgets: parts += [f'## {minutes:g} minutes', (f'{minutes:g} minutes', budget_table(rows, minutes))]
    parts += ['## Notes', '\n\n'.join(notes)] if notes else []
    date = date or time.strftime('%Y-%m-%d')
    data = dict(date=date, command=command, valid_bytes=valid_bytes, notes=list(notes), runs=rows)
    title = f'Speedrun: validation bits per byte at a fixed CPU budget ({date})'
    print(f"wrote {write_report('speedrun', title, parts, data)}")
    plot(rows, [k for k in RECIPES if any(r['recipe'] == k for r in rows)], budgets)


def stored_runs() -> tuple[list[dict], str, int, str, list[str]]:
    "The runs of the last report (their recipes under their current names), its last command, validation bytes, date, notes."
    path = REPORTS / 'speedrun.json'
    if not path.exists(): return [], '', 0, None, []
    data = json.loads(path.read_text())['data']
    for r in data['runs']: r['recipe'] = RENAMED.get(r['recipe'], r['recipe'])
    return data['runs'], data['command'], data['valid_bytes'], data['date'], data.get('notes', [])


def plot(rows, recipes, budgets):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for k in recipes:
        groups = [[r for r in rows if r['recipe'] == k and r['minutes'] == m] for m in budgets]
        pts = [(used_minutes(g), [r['bpb'] for r in g]) for g in groups if g]  # at the minutes the runs took
        ms, means = [m for m, _ in pts], [sum(b) / len(b) for _, b in pts]
        line, = ax.plot(ms, means, 'o-' if len(ms) > 1 else 'o', label=k, lw=2.5 if k in (BASE, 'cpu_tiny config') else 1)
        for m, b in pts: ax.vlines(m, min(b), max(b), color=line.get_color(), alpha=0.5)
    ax.set_xscale('log')
    ax.set_xticks(budgets, [f'{m:g}' for m in budgets])
    ax.set_xlabel('training time (CPU minutes, 2 cores)')
    ax.set_ylabel('validation bits per byte')
    ax.set_title('Which recipe trains the better model in the same time')
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
    p.add_argument('--report', action='store_true', help='only write the report and figure again from its .json')
    p.add_argument('--corpus', default=str(CORPUS), help='folder of Korean .txt files (cached once prepared)')
    p.add_argument('--one', help=argparse.SUPPRESS)  # internal: RECIPE,MINUTES,SEED,OUT in a fresh process
    args = p.parse_args()
    if args.one:
        recipe, minutes, seed, out = args.one.split(',')
        print(json.dumps(run_one(recipe, float(minutes), int(seed), Path(out))))
        return
    if args.report: return compose_report(*stored_runs())
    text = prepare_data(Path(args.corpus))
    valid_bytes, command = (text / 'valid.txt').stat().st_size, ' '.join(sys.argv[1:])
    recipes = args.recipes.split(',')
    unknown = set(recipes) - set(RECIPES)
    if unknown: p.error(f'unknown recipes {sorted(unknown)}; known: {", ".join(RECIPES)}')
    rows = stored_runs()[0] if args.keep else []
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    runs = [(float(m), s, k) for m in args.budgets.split(',') for s in seeds for k in recipes]
    for i, (minutes, seed, _) in enumerate(runs):
        group = [k for m, s, k in runs if m == minutes and s == seed]
        recipe = group[(group.index(runs[i][2]) + seed) % len(group)]  # the order rotates with the seed
        out = CACHE / 'runs' / f"{re.sub(NOT_A_WORD, '_', recipe)}-{minutes:g}-{seed}"
        subprocess.run(['rm', '-rf', str(out)], check=True)
        env = {**os.environ, 'TORCHINDUCTOR_COMPILE_THREADS': '1'}  # compiling is work of the run: in its process
        done = subprocess.run([sys.executable, __file__, '--one', f'{recipe},{minutes},{seed},{out}'],
                              capture_output=True, text=True, env=env)
        if done.returncode:
            print(f'{recipe} {minutes:g} min seed {seed} failed:\n{done.stderr[-3000:]}', file=sys.stderr)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"[{i + 1}/{len(runs)}] {recipe:40s} {minutes:g} min seed {seed}: {row['bpb']:.4f} bpb, "
              f"{row['steps']} steps, final lr {row['last_lr']:.2e}", flush=True)
        compose_report(rows, command, valid_bytes, notes=stored_runs()[4] if args.keep else ())


if __name__ == '__main__':
    main()
