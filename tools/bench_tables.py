"""Write the benchmark tables that the docs show from the reports' data, so that no table is copied by hand.

A region in bench/README.md or in a markdown cell of nbs/index.ipynb (which `tools/readme.py` renders to README.md)

    <!-- bench:REPORT/TABLE -->
    …
    <!-- /bench -->

holds table TABLE of bench/reports/REPORT.json, rendered by `bench/common.report_table` (the same text as in
REPORT.md). `python tools/bench_tables.py` rewrites every region (and README.md after the notebook);
`tests/test_bench.py` fails when a region differs from what this tool would write.
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))
from common import REPORTS, report_table  # noqa: E402

REGION = re.compile(r'(<!-- bench:([\w-]+)/([^>]+?) -->\n)(.*?)(<!-- /bench -->)', re.S)
BENCH_README, INDEX = ROOT / 'bench' / 'README.md', ROOT / 'nbs' / 'index.ipynb'


def fill(text: str, reports: Path = REPORTS) -> str:
    "`text` with every region's table rendered again from its report."
    return REGION.sub(lambda m: f'{m[1]}{report_table(m[2], m[3].strip(), reports)}\n{m[5]}', text)


def regions(text: str) -> list[tuple[str, str]]:
    "The (report, table) pairs of the regions in `text`."
    return [(m[2], m[3].strip()) for m in REGION.finditer(text)]


def fill_notebook(nb: dict, reports: Path = REPORTS) -> dict:
    "The notebook with the regions of its markdown cells filled (each cell's source kept as a list of lines)."
    for cell in nb['cells']:
        src = ''.join(cell['source'])
        if cell['cell_type'] == 'markdown' and REGION.search(src):
            cell['source'] = fill(src, reports).splitlines(keepends=True)
    return nb


def main():
    BENCH_README.write_text(fill(BENCH_README.read_text(encoding='utf-8')), encoding='utf-8')
    nb = json.loads(INDEX.read_text(encoding='utf-8'))
    filled = fill_notebook(json.loads(json.dumps(nb)))
    if filled != nb:
        INDEX.write_text(json.dumps(filled, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
        sys.path.insert(0, str(ROOT / 'tools'))
        import readme
        (ROOT / 'README.md').write_text(readme.render(), encoding='utf-8')
    print(f'filled {len(regions(BENCH_README.read_text(encoding="utf-8")))} regions in {BENCH_README.name}',
          file=sys.stderr)


if __name__ == '__main__':
    main()
