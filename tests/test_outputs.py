"""The staleness check of tests/test_notebooks.py and the saver of tools/refresh_outputs.py, on a small notebook.

A notebook is written to a temporary folder, executed by nbdev's executor as the suite executes chapters, and its
saved outputs compared with what it prints: stale words, a missing figure and a missing output are reported; a
changed number, a skipped cell and a `# volatile:` cell's text are not.
"""
import copy, importlib.util, json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('refresh_outputs', ROOT / 'tools' / 'refresh_outputs.py')
ro = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ro)

CELLS = {
    'aaaa0001': "print('validation loss', 4.25)",
    'aaaa0002': "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                "from IPython.display import display\nfig, ax = plt.subplots()\nax.plot([1, 2])\n"
                "display(fig)\nplt.close(fig)",
    'aaaa0003': "# volatile: a timing\nprint('took', 0.5, 'seconds on this machine')",
    'aaaa0004': "#| notest\nprint('never run by the tests')",
    'aaaa0005': "x = 1",
}

def _write(path: Path, outputs=None):
    cells = [dict(cell_type='code', id=cid, metadata={}, execution_count=None, source=src.splitlines(keepends=True),
                  outputs=(outputs or {}).get(cid, [])) for cid, src in CELLS.items()]
    nb = dict(cells=cells, metadata=dict(kernelspec=dict(name='python3', language='python', display_name='Python 3')),
              nbformat=4, nbformat_minor=5)
    path.write_text(json.dumps(nb, indent=1), encoding='utf-8')

def _outputs(path: Path) -> dict:
    return {c['id']: c['outputs'] for c in json.loads(path.read_text(encoding='utf-8'))['cells']}

def _stale(path: Path) -> list[str]:
    ok, executed, ran = ro.execute(path)
    assert ok
    return ro.stale_cells(path, executed, ran)

@pytest.fixture
def saved(tmp_path) -> Path:
    "The notebook with the outputs `refresh_outputs` saves for it; the notest cell keeps a hand-written output."
    path = tmp_path / 'small.ipynb'
    _write(path, {'aaaa0004': [dict(output_type='stream', name='stdout', text=['kept as it was\n'])]})
    ok, executed, ran = ro.execute(path)
    assert ok and 'aaaa0004' not in ran and 'aaaa0001' in ran
    ro.save_outputs(path, executed, ran)
    return path

def test_saved_outputs_are_fresh(saved):
    outs = _outputs(saved)
    assert [ro.kind(o) for o in outs['aaaa0002']] == ['figure']
    assert ''.join(outs['aaaa0001'][0]['text']) == 'validation loss 4.25\n'
    assert ''.join(outs['aaaa0004'][0]['text']) == 'kept as it was\n'  # skipped cells keep their outputs
    assert _stale(saved) == []

def test_outputs_never_saved_are_stale(tmp_path):
    path = tmp_path / 'fresh.ipynb'
    _write(path)
    stale = _stale(path)
    assert [line.split()[1] for line in stale] == ['aaaa0001', 'aaaa0002', 'aaaa0003'], stale  # the figure too

def _edit(path: Path, cid: str, change):
    nb = json.loads(path.read_text(encoding='utf-8'))
    cell = next(c for c in nb['cells'] if c['id'] == cid)
    change(cell)
    path.write_text(json.dumps(nb, indent=1), encoding='utf-8')

def test_other_words_are_stale_other_numbers_are_not(saved):
    _edit(saved, 'aaaa0001', lambda c: c['outputs'][0].update(text=['validation loss 4.31\n']))
    assert _stale(saved) == []
    _edit(saved, 'aaaa0001', lambda c: c['outputs'][0].update(text=['time budget of 0 s spent\n']))
    assert [line.split()[1] for line in _stale(saved)] == ['aaaa0001']

def test_a_lost_figure_is_stale(saved):
    _edit(saved, 'aaaa0002', lambda c: c.update(outputs=[]))
    assert [line.split()[1] for line in _stale(saved)] == ['aaaa0002']

def test_volatile_cells_compare_kinds_only(saved):
    _edit(saved, 'aaaa0003', lambda c: c['outputs'][0].update(text=['a different sentence\n']))
    assert _stale(saved) == []
    _edit(saved, 'aaaa0003', lambda c: c.update(outputs=[]))
    assert [line.split()[1] for line in _stale(saved)] == ['aaaa0003']

def test_masking():
    assert ro.words('loss 4.25, 1,024 tokens at 1.2e-05 in /tmp/tmpab12/x.json') == \
        ro.words('loss 3.9, 2,048 tokens at 3e-4 in /tmp/tmpzz99/x.json')
    assert ro.words('loss 4.25') != ro.words('perplexity 4.25')

def test_markdown_outputs_are_compared_by_their_text():
    plain = ['<IPython.core.display.Markdown object>']
    table = lambda header: [dict(output_type='execute_result', metadata={}, execution_count=None,
                                 data={'text/markdown': [header], 'text/plain': plain})]
    assert ro.signature(table('| hours for 26B tokens |')) == ro.signature(table('| hours for 27B tokens |'))
    assert ro.signature(table('| hours for 26B tokens |')) != ro.signature(table('| hours for 22 hours |'))

def test_stderr_is_not_compared():
    "A library's warning prints once per process (the tests run several chapters in one); stdout still counts."
    figure = dict(output_type='display_data', metadata={}, data={'image/png': 'iVBOR', 'text/plain': ['<Figure>']})
    warning = dict(output_type='stream', name='stderr', text=["Font 'default' does not have a glyph for '\\u2212'\n"])
    printed = dict(output_type='stream', name='stdout', text=['validation loss 4.25\n'])
    assert ro.signature([warning, figure]) == ro.signature([figure])
    assert ro.signature([printed, figure]) != ro.signature([figure])
