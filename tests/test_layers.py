"The package's layering, as README's 'How kollm is built' states it, checked against the imports in the code."
import ast, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'nbs'))
from fixtures.korean_run import kollm_imports  # one reader of kollm's imports, shared with the fixtures' cache keys
APPLICATIONS = {'demo', 'doctor', 'benchmarks'}  # the top layer: may import any module


def stated_layers() -> dict[str, set[str]]:
    "module → the kollm modules README says it imports."
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    section = text.split('## How kollm is built', 1)[1].split('\n## ', 1)[0]
    layers = {}
    for row in re.findall(r'^\| (`.+?) \| .+? \| (.+?) \|$', section, re.M):
        modules, imports = (set(re.findall(r'`(\w+)`', cell)) for cell in row)
        for m in modules: layers[m] = imports
    return layers


def actual_imports(module: str) -> set[str]:
    "kollm modules that `kollm/<module>.py` imports, at any depth of the file (lazy imports count)."
    return kollm_imports(ROOT / 'kollm' / f'{module}.py')


def test_readme_states_every_module():
    modules = {p.stem for p in (ROOT / 'kollm').glob('*.py') if not p.stem.startswith('_')}
    assert set(stated_layers()) == modules, f"README's table and kollm/ differ: {set(stated_layers()) ^ modules}"


def test_imports_follow_the_stated_layers():
    layers = stated_layers()
    wrong = {m: sorted(actual_imports(m) - layers[m]) for m in layers if m not in APPLICATIONS}
    wrong = {m: extra for m, extra in wrong.items() if extra}
    assert not wrong, f"modules importing what README's table does not allow: {wrong}"
    unused = {m: sorted(layers[m] - actual_imports(m)) for m in layers if m not in APPLICATIONS}
    unused = {m: extra for m, extra in unused.items() if extra}
    assert not unused, f"README's table lists imports the code does not make: {unused}"


def test_no_cycles_and_no_feature_imports_a_feature():
    layers = stated_layers()
    features = {'train', 'plan', 'eval', 'export'}
    for m in features: assert not (actual_imports(m) & features), f"{m} imports another feature: {actual_imports(m) & features}"
    def reach(m, seen=()):
        for d in actual_imports(m):
            assert d not in seen + (m,), f"import cycle through {m} → {d}"
            reach(d, seen + (m,))
    for m in layers: reach(m)


def package_files():
    return sorted(p for p in (ROOT / 'kollm').glob('*.py') if p.name != '_modidx.py')


def test_functions_are_short():
    "No package function over 60 lines: past that it holds steps that want names of their own."
    long = [f"{p.name}:{n.name} ({n.end_lineno - n.lineno + 1} lines)" for p in package_files()
            for n in ast.walk(ast.parse(p.read_text(encoding='utf-8')))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60]
    assert not long, long


def test_lines_fit_and_statements_stand_alone():
    "Lines ≤ 120 characters and no `;`-joined statements (nbdev's own module docstring and `__all__` aside)."
    wide, joined = [], []
    for p in package_files():
        text = p.read_text(encoding='utf-8')
        for i, line in enumerate(text.split('\n'), 1):
            if len(line) > 120 and i > 1 and not line.startswith('__all__'): wide.append(f'{p.name}:{i}')
        for node in ast.walk(ast.parse(text)):
            body = getattr(node, 'body', None)
            if isinstance(body, list):
                joined += [f'{p.name}:{a.lineno}' for a, b in zip(body, body[1:]) if a.end_lineno == b.lineno]
    assert not wide, f'lines over 120 characters: {wide}'
    assert not joined, f'statements joined with ;: {joined}'
