"""bench/ keeps one convention: every script a `main()` behind `--help`, the shared helpers only in bench/common.py."""
import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / 'bench'
SCRIPTS = sorted(p for p in BENCH.glob('*.py') if p.name != 'common.py')
SHARED = {'seconds', 'spread', 'paired_ratio', 'markdown_table', 'write_report', 'gpu_peak_flops', 'sync'}

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
