"""Execute the chapters and save their outputs, so that what a page shows is what its code prints.

`python tools/refresh_outputs.py` runs every notebook in nbs/ (or those named: `python tools/refresh_outputs.py
nbs/09_demo.ipynb nbs/index.ipynb`) with nbdev's own executor, exactly as `nbdev_test` does: cells flagged
`#| notest` or `#| slow` (settings.ini's `tst_flags`) and `#| eval: false` are skipped and keep their saved outputs;
`KOLLM_TEST_FLAGS=slow` runs the slow ones too. Every executed cell's outputs replace the saved ones, then
`nbdev_clean` tidies the notebooks. A notebook that fails is left untouched and named; the exit status is 1.

The same module is what tests/test_notebooks.py uses to find stale outputs: for each cell the suite executed, the
kinds of its outputs (text, table, figure, error) and their words with every number masked must be the saved ones.
A cell whose text legitimately varies beyond its numbers (a timing's wording, a sample that depends on the machine)
carries a `# volatile: <why>` comment line and is compared by kinds only.
"""
import json, os, re, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = re.compile(r'^\s*# volatile:', re.M)
_NUMBER = re.compile(r'[-+]?(?:\d[\d,_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?')
_TMP = re.compile(re.escape(tempfile.gettempdir()) + r'/[^\s\'",)\]]*')
_ADDRESS = re.compile(r'0x[0-9a-fA-F]+')


def execute(nb_path, # a notebook
            skip_flags=None, # cells with these flags are not run (default: settings.ini's tst_flags)
            force_flags=None, # flags run anyway (default: $KOLLM_TEST_FLAGS)
           ) -> tuple[bool, object, set]: # (it ran without error, the notebook with outputs, ids of executed cells)
    "Run a notebook as `nbdev.test.test_nb` does, keeping the executed notebook (nbdev's own throws it away)."
    from fastcore.basics import str2bool
    from fastcore.xtras import working_directory
    from execnb.shell import CaptureShell
    from nbdev.config import get_config
    from nbdev.process import NBProcessor, nb_lang
    from nbdev.frontmatter import FrontmatterProc
    cfg, nb_path = get_config(), Path(nb_path).absolute()
    flags = set(cfg.tst_flags.split() if skip_flags is None else skip_flags)
    flags -= set(os.environ.get('KOLLM_TEST_FLAGS', '').split() if force_flags is None else force_flags)
    if str(cfg.config_path) not in sys.path: sys.path.insert(0, str(cfg.config_path))
    os.environ.setdefault('IN_TEST', '1')
    nb = NBProcessor(nb_path, procs=FrontmatterProc, process=True).nb
    if str2bool(getattr(nb, 'frontmatter_', {}).get('skip_exec', False)) or nb_lang(nb) != 'python':
        return True, nb, set()
    def skipped(cell):
        if cell.cell_type != 'code' or 'nbdev_export' + '(' in cell.source: return True
        directives = getattr(cell, 'directives_', {}) or {}
        if directives.get('eval:', [''])[0].lower() == 'false': return True
        return bool(flags & directives.keys())
    def prepare(cell):  # execnb keeps the saved outputs of a cell that prints nothing: clear them first
        if skipped(cell): return True
        cell['outputs'] = []
    ran = set()
    shell = CaptureShell(nb_path)
    try:
        with working_directory(nb_path.parent):
            shell.run_all(nb, exc_stop=True, preproc=prepare, postproc=lambda cell: ran.add(cell.get('id')))
        return True, nb, ran
    except Exception:
        sys.stderr.write(shell.prettytb(fname=nb_path) + '\n')
        return False, nb, ran


def _text(out: dict) -> str:
    if out.get('output_type') == 'stream': return ''.join(out.get('text', ''))
    if out.get('output_type') == 'error': return out.get('ename', '')
    data = out.get('data') or {}
    return ''.join(data.get('text/markdown') or data.get('text/plain', ''))  # a Markdown table's plain text is its repr


def kind(out: dict) -> str:
    "What a reader sees of one output: 'figure', 'table', 'error' or 'text'."
    if out.get('output_type') == 'error': return 'error'
    data = out.get('data') or {}
    if any(k.startswith('image/') for k in data): return 'figure'
    if '<table' in ''.join(data.get('text/html', '')): return 'table'
    return 'text'


def words(text: str) -> list[str]:
    "The words of an output with numbers, temporary paths and addresses masked: what must not change by itself."
    text = _ADDRESS.sub('0x#', _TMP.sub('<tmp>', text))
    return _NUMBER.sub('#', text).split()


def signature(outputs, volatile: bool = False) -> list:
    "Per output: its kind and, unless `volatile`, its masked words; stderr (warnings, progress bars) is left out."
    # a library's warning prints once per process (nbdev_test runs several chapters in one), so stderr is not the code's
    outs = [dict(o) for o in outputs or [] if not (o.get('output_type') == 'stream' and o.get('name') == 'stderr')]
    return [(kind(o),) if volatile or kind(o) == 'figure' else (kind(o), words(_text(o))) for o in outs]


def _difference(now: list, then: list) -> str:
    "Where two signatures first differ, in a few words."
    if len(now) != len(then):
        return f"outputs {[o[0] for o in now]} where {[o[0] for o in then]} are saved"
    a, b = next((a, b) for a, b in zip(now, then) if a != b)
    if a[0] != b[0] or len(a) == 1: return f"a {a[0]} where a {b[0]} is saved"
    i = next((i for i, (x, y) in enumerate(zip(a[1], b[1])) if x != y), min(len(a[1]), len(b[1])))
    return f"prints {' '.join(a[1][max(i - 3, 0):i + 5])!r} where {' '.join(b[1][max(i - 3, 0):i + 5])!r} is saved"


def stale_cells(saved_path, # the committed .ipynb
                executed, # the notebook `execute` returned
                ran: set, # ids of the cells it executed
               ) -> list[str]:
    "One line per executed cell whose saved outputs are not what it printed now."
    saved = {c.get('id'): c for c in json.loads(Path(saved_path).read_text(encoding='utf-8'))['cells']}
    problems = []
    for cell in executed.cells:
        cid = cell.get('id')
        if cid not in ran or cid not in saved: continue
        volatile = bool(VOLATILE.search(cell.source))
        now, then = signature(cell.get('outputs'), volatile), signature(saved[cid].get('outputs'), volatile)
        if now != then:
            problems.append(f"cell {cid} ({cell.source.splitlines()[0][:50]!r}): {_difference(now, then)}")
    return problems


def _plain(o):
    "An execnb output (AttrDict) as plain JSON for the .ipynb, keys sorted as Jupyter writes them."
    if isinstance(o, dict): return {k: _plain(o[k]) for k in sorted(o)}
    if isinstance(o, (list, tuple)): return [_plain(v) for v in o]
    return o


def save_outputs(nb_path, executed, ran: set):
    "Write the executed cells' outputs into the .ipynb; every other cell keeps its saved outputs."
    nb_path = Path(nb_path)
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    now = {c.get('id'): c for c in executed.cells}
    for cell in nb['cells']:
        if cell.get('id') in ran: cell['outputs'] = _plain(list(now[cell['id']].get('outputs') or []))
    tmp = nb_path.with_name(f'.tmp-{nb_path.name}')
    tmp.write_text(json.dumps(nb, ensure_ascii=False, indent=1) + '\n', encoding='utf-8')
    os.replace(tmp, nb_path)


def refresh(paths) -> list[str]:
    "Execute and save each notebook; the names of those that failed."
    failed = []
    for p in paths:
        start = time.perf_counter()
        ok, executed, ran = execute(p)
        if ok: save_outputs(p, executed, ran)
        else: failed.append(str(p))
        print(f"{p}: {'saved' if ok else 'FAILED, left as it was'} ({len(ran)} cells run, "
              f"{time.perf_counter() - start:.0f} s)", flush=True)
    exe = Path(sys.executable).with_name('nbdev_clean')
    subprocess.run([str(exe) if exe.exists() else 'nbdev_clean'], cwd=ROOT, check=True)
    return failed


if __name__ == '__main__':
    os.chdir(ROOT)
    names = [Path(a) for a in sys.argv[1:]] or sorted(p for p in (ROOT / 'nbs').glob('*.ipynb')
                                                      if not p.name.startswith('_'))
    bad = refresh(names)
    if bad: sys.exit(f"refresh_outputs: these notebooks failed and were not saved: {', '.join(bad)}")
