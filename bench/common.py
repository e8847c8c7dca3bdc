"""What every kollm benchmark shares, so that each one says a measurement the same way.

- `seconds(fn)`: wall seconds of one call (on CUDA, with the device synchronised before and after);
- `rotating_rounds(fns, rounds)`: every function once per round, the order rotating, so that a burst of load on this
  shared machine falls on each alike;
- `spread(xs)`: the one meaning of "spread" in kollm's reports: the median of the runs with their range (min–max);
- `paired_ratio(baseline, candidate)`: ratios of two things timed in the same round (the machines are shared and noisy:
  only a ratio measured side by side compares), as their median and spread;
- `markdown_table(rows)`: a list of dicts as a markdown table;
- `write_report(name, title, parts, data)`: `bench/reports/<name>.md` (what a person reads) and `<name>.json` (its
  tables, and the data they were made from), each written whole or not at all; `report_table(name, table)` renders
  one table of a report from its .json, which is how bench/README.md and the README get their tables
  (`tools/bench_tables.py`);
- `SHAPES`, `DTYPES`, `train_step(...)`: the CPU benchmarks' shapes and their training step (forward, backward, AdamW);
- `gpu_peak_flops(name)`, `sync(device)`: the dense peak a GPU's MFU is measured against, and the CUDA sync timings need.

Every script in bench/ has a `main()` with `--help`, and writes its report with `write_report`.
"""
import json, statistics, time
from pathlib import Path

import torch

from kollm.runtime import write_atomic

REPORTS = Path(__file__).resolve().parent / 'reports'
DENSE_PEAK_FLOPS = [('H200', 989e12), ('H100 PCIe', 756e12), ('H100', 989e12), ('A100', 312e12)]  # bf16 = fp16, dense
SHAPES = {'tiny': (16, 256), 'small': (8, 512)}  # preset: (micro-batch, seq_len) of the CPU training benchmarks
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}


def sync(device: str):
    "Wait for the device's queued work (CUDA runs asynchronously; the CPU and MPS timings here need no sync)."
    if device == 'cuda': torch.cuda.synchronize()


def seconds(fn, device: str = 'cpu') -> float:
    "Wall seconds of one call of `fn`."
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def rotating_rounds(fns: dict, rounds: int, device: str = 'cpu') -> dict[str, list[float]]:
    "Seconds of each of `fns` (name: function) per round; each round calls every one once, the order rotated."
    names, times = list(fns), {name: [] for name in fns}
    for i in range(rounds):
        for name in names[i % len(names):] + names[:i % len(names)]: times[name].append(seconds(fns[name], device))
    return times


def spread(xs: list[float], digits: int = 3) -> str:
    "`median (min–max)` of several runs (just the value for one run): the one way kollm's reports give a spread."
    med = f'{statistics.median(xs):.{digits}f}'
    return med if len(xs) < 2 else f'{med} ({min(xs):.{digits}f}–{max(xs):.{digits}f})'


def paired_ratio(baseline: list[float], candidate: list[float], digits: int = 2) -> tuple[float, str]:
    "Median of the per-round ratios `baseline[i] / candidate[i]` (times: > 1 means the candidate is faster), and `spread`."
    ratios = [b / c for b, c in zip(baseline, candidate)]
    return statistics.median(ratios), spread(ratios, digits)


def markdown_table(rows: list[dict]) -> str:
    "Rows (dicts) as a markdown table; floats below 10 with two decimals, larger ones as whole numbers."
    cols = list(dict.fromkeys(k for r in rows for k in r))
    def fmt(v):
        if isinstance(v, float): return f'{v:,.2f}' if abs(v) < 10 else f'{v:,.0f}'
        return '' if v is None else str(v)
    lines = ['| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
    lines += ['| ' + ' | '.join(fmt(r.get(c, '')) for c in cols) + ' |' for r in rows]
    return '\n'.join(lines)


def write_report(name: str, # the report's name: bench/reports/<name>.md and .json
                 title: str, # the report's heading
                 parts: list, # in reading order: prose (str), and tables as (table name, rows) pairs
                 data=None, # what the tables were made from (JSON-serialisable), kept in the .json
                 folder: Path = REPORTS) -> Path:
    "Write a benchmark's report and its .json (tables by name, and the data) atomically; return the .md path."
    tables = {part[0]: part[1] for part in parts if isinstance(part, tuple)}
    text = [f'# {title}'] + [markdown_table(p[1]) if isinstance(p, tuple) else p.strip('\n') for p in parts]
    write_atomic(folder / f'{name}.json', json.dumps(dict(title=title, tables=tables, data=data), indent=1,
                                                     ensure_ascii=False, default=str) + '\n')
    return write_atomic(folder / f'{name}.md', '\n\n'.join(text) + '\n')


def report_table(name: str, table: str, folder: Path = REPORTS) -> str:
    "The markdown of table `table` of report `name`, from its .json: the same text its .md holds."
    return markdown_table(json.loads((folder / f'{name}.json').read_text(encoding='utf-8'))['tables'][table])


def train_step(model, ids: torch.Tensor, precision: str, hf: bool):
    "A closure running one training step (forward under autocast, backward, AdamW, grads to None) and its optimizer."
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    def step():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16'):
            loss = model(input_ids=ids, labels=ids).loss if hf else model(ids, ids)[1]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, opt


def gpu_peak_flops(name: str) -> float | None:
    "Dense bf16 peak FLOP/s of a GPU recognised by name (None if unknown: MFU is then left out)."
    return next((flops for key, flops in DENSE_PEAK_FLOPS if key.lower() in name.lower()), None)
