"""What every kollm benchmark shares, so that each one says a measurement the same way.

- `seconds(fn)`: wall seconds of one call (on CUDA, with the device synchronised before and after);
- `spread(xs)`: the one meaning of "spread" in kollm's reports: the median of the runs with their range (min–max);
- `paired_ratio(baseline, candidate)`: ratios of two things timed in the same round (the machines are shared and noisy:
  only a ratio measured side by side compares), as their median and spread;
- `markdown_table(rows)`: a list of dicts as a markdown table;
- `write_report(name, markdown, data)`: `bench/reports/<name>.md` and `<name>.json`, each written whole or not at all;
- `gpu_peak_flops(name)`, `sync(device)`: the dense peak a GPU's MFU is measured against, and the CUDA sync timings need.

Every script in bench/ has a `main()` with `--help`, and writes its report with `write_report`.
"""
import json, statistics, time
from pathlib import Path

import torch

from kollm.runtime import write_atomic

REPORTS = Path(__file__).resolve().parent / 'reports'
DENSE_PEAK_FLOPS = [('H200', 989e12), ('H100 PCIe', 756e12), ('H100', 989e12), ('A100', 312e12)]  # bf16 = fp16, dense


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
        return str(v)
    lines = ['| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
    lines += ['| ' + ' | '.join(fmt(r.get(c, '')) for c in cols) + ' |' for r in rows]
    return '\n'.join(lines)


def write_report(name: str, # the report's name: bench/reports/<name>.md and .json
                 markdown: str, # the report a person reads
                 data=None, # what the tables were made from (JSON-serialisable), or None for no .json
                 folder: Path = REPORTS) -> Path:
    "Write a benchmark's report (and its data) under bench/reports/, atomically; return the .md path."
    if data is not None: write_atomic(folder / f'{name}.json', json.dumps(data, indent=1, default=str) + '\n')
    return write_atomic(folder / f'{name}.md', markdown.rstrip('\n') + '\n')


def gpu_peak_flops(name: str) -> float | None:
    "Dense bf16 peak FLOP/s of a GPU recognised by name (None if unknown: MFU is then left out)."
    return next((flops for key, flops in DENSE_PEAK_FLOPS if key.lower() in name.lower()), None)
