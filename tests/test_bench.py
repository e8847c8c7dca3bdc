"""bench/ keeps one convention: every script a `main()` behind `--help`, the shared helpers only in bench/common.py."""
import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / 'bench'
SCRIPTS = sorted(p for p in BENCH.glob('*.py') if p.name != 'common.py')
SHARED = {'seconds', 'rotating_rounds', 'spread', 'paired_ratio', 'markdown_table', 'write_report', 'report_table',
          'train_step', 'gpu_peak_flops', 'sync'}

def _tree(path: Path) -> ast.Module: return ast.parse(path.read_text(encoding='utf-8'))

def test_every_script_has_main():
    "Each script defines `main()` and runs it only as a program (importing one runs nothing)."
    for path in SCRIPTS:
        tree = _tree(path)
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        guards = [n for n in tree.body if isinstance(n, ast.If) and "__name__ == '__main__'" in ast.unparse(n.test)]
        assert 'main' in names and guards, f"{path.name}: needs def main() and an `if __name__ == '__main__'` guard"
        top = [n for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
        assert not top, f"{path.name}: work at import time: {ast.unparse(top[0])[:80]}"
        main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == 'main')
        assert 'ArgumentParser(' in ast.unparse(main), f"{path.name}: main() parses its arguments (and so has --help)"

def test_shared_helpers_live_in_common():
    "No script defines a shared helper again or imports a private name from another script."
    for path in SCRIPTS:
        tree = _tree(path)
        again = sorted(n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in SHARED)
        assert not again, f"{path.name} defines {again}: import them from bench/common.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (BENCH / f'{node.module}.py').exists():
                private = [a.name for a in node.names if a.name.startswith('_')]
                assert not private, f"{path.name} imports {private} from {node.module}"

def test_no_script_imports_another():
    "What two scripts share lives in common.py: a script imports no other script."
    for path in SCRIPTS:
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                others = [n for n in names if n and n != 'common' and (BENCH / f'{n}.py').exists()]
                assert not others, f"{path.name} imports {others}: move what they share to bench/common.py"

def test_every_script_writes_its_report_through_common():
    "Each script writes its report with `write_report` (a .md to read and a .json with its tables)."
    for path in SCRIPTS:
        calls = {n.func.id for n in ast.walk(_tree(path)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert 'write_report' in calls, f"{path.name}: write its report with common.write_report"

def test_reports_have_md_and_json_that_agree():
    "Every report is a .md and a .json, and each table of the .json appears in the .md as `report_table` renders it."
    import json, sys
    sys.path.insert(0, str(BENCH))
    from common import REPORTS, report_table
    mds, jsons = {p.stem for p in REPORTS.glob('*.md')}, {p.stem for p in REPORTS.glob('*.json')}
    assert mds == jsons, f'reports without their pair: {sorted(mds ^ jsons)}'
    for name in sorted(jsons):
        tables = json.loads((REPORTS / f'{name}.json').read_text(encoding='utf-8'))['tables']
        md = (REPORTS / f'{name}.md').read_text(encoding='utf-8')
        for table in tables: assert report_table(name, table) in md, f'{name}.md: table {table!r} differs from its .json'

def test_docs_tables_are_generated():
    "The marked tables in bench/README.md and nbs/index.ipynb are what tools/bench_tables.py writes from the reports."
    import json, sys
    sys.path.insert(0, str(BENCH.parent / 'tools'))
    import bench_tables
    text = bench_tables.BENCH_README.read_text(encoding='utf-8')
    assert bench_tables.regions(text), 'bench/README.md has no generated tables'
    assert bench_tables.fill(text) == text, 'bench/README.md: run `python tools/bench_tables.py`'
    nb = json.loads(bench_tables.INDEX.read_text(encoding='utf-8'))
    assert bench_tables.fill_notebook(json.loads(json.dumps(nb))) == nb, 'nbs/index.ipynb: run `python tools/bench_tables.py`'

def test_fill_rewrites_a_region(tmp_path):
    "A region's old table is replaced by the report's; text outside regions is kept."
    import json, sys
    sys.path.insert(0, str(BENCH.parent / 'tools'))
    import bench_tables
    (tmp_path / 'r.json').write_text(json.dumps({'tables': {'t': [{'a': 1, 'b': 'x'}]}}))
    text = 'before\n<!-- bench:r/t -->\n| stale |\n<!-- /bench -->\nafter\n'
    test = bench_tables.fill(text, tmp_path)
    assert test == 'before\n<!-- bench:r/t -->\n| a | b |\n|---|---|\n| 1 | x |\n<!-- /bench -->\nafter\n', test
