"""The book's shape: a chapter per subject at the scale of chapters 00–03, exported cells a reader can take in at once,
and one language rule for figure labels."""
import ast, json, re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(p for p in (ROOT / 'nbs').glob('[0-9]*.ipynb'))
MAX_CELLS, MAX_CHARS = 45, 35_000  # chapters 00–03 hold 12–31 cells and 4–20k characters
# chapters over the guide, each with its own limit and the reason it stays one chapter
OVER_GUIDE = {'06_train_mps': (45, 40_000, 'the training step and its loop are one subject, and their exported code '
                                           'alone (the step, its collaborators, the Trainer, kollm_train) is ~24k')}
MAX_EXPORTED_LINES = 60
HANGUL = re.compile('[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]')
LABEL_CALLS = {'set_title', 'set_xlabel', 'set_ylabel', 'suptitle', 'title', 'xlabel', 'ylabel', 'set'}
LABEL_KEYWORDS = {'label', 'title', 'xlabel', 'ylabel'}
DATA_MARK = '# hangul: data'  # a label that shows Korean text itself (a sample, a token) says so on its line


def cells(nb: Path) -> list[dict]: return json.loads(nb.read_text(encoding='utf-8'))['cells']


def source(cell: dict) -> str: return ''.join(cell['source'])


def test_found_chapters(): assert len(CHAPTERS) >= 12


@pytest.mark.parametrize('nb', CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_one_subject_long(nb):
    cs = cells(nb)
    chars = sum(len(source(c)) for c in cs)
    most_cells, most_chars, _ = OVER_GUIDE.get(nb.stem, (MAX_CELLS, MAX_CHARS, ''))
    assert len(cs) <= most_cells and chars <= most_chars, \
        f'{nb.name}: {len(cs)} cells and {chars:,} characters (guide: ≤ {most_cells} and ≤ {most_chars:,}): split it'


@pytest.mark.parametrize('nb', CHAPTERS, ids=lambda p: p.stem)
def test_exported_cells_are_short(nb):
    long = [(i, source(c).count('\n') + 1) for i, c in enumerate(cells(nb))
            if c['cell_type'] == 'code' and re.match(r'#\s*\|\s*export', source(c))
            and source(c).count('\n') + 1 > MAX_EXPORTED_LINES]
    assert not long, f'{nb.name}: exported cells over {MAX_EXPORTED_LINES} lines (cell, lines): {long}'


def hangul_labels(code: str) -> list[str]:
    "Figure labels in `code` (titles, axis labels, legend labels) that hold Hangul, unless their line is marked as data."
    try: tree = ast.parse('\n'.join('' if l.lstrip().startswith(('%', '!')) else l for l in code.split('\n')))
    except SyntaxError: return []
    lines, found = code.split('\n'), []
    def strings(node): return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call): continue
        name = getattr(node.func, 'attr', getattr(node.func, 'id', ''))
        args = node.args if name in LABEL_CALLS and name != 'set' else []
        args += [k.value for k in node.keywords if k.arg in LABEL_KEYWORDS]
        for a in args:
            if DATA_MARK in lines[a.lineno - 1]: continue
            found += [s for s in strings(a) if HANGUL.search(s)]
    return found


def test_label_check_finds_hangul_labels():
    assert hangul_labels("ax.set_title('학습 곡선'); ax.plot(x, y, label=f'{n} 스텝')") == ['학습 곡선', ' 스텝']
    assert hangul_labels("ax.set(xlabel='step', title='loss')\nax.set_title('loss')") == []
    assert hangul_labels("ax.set_yticks(ys, ['가', '나']); ax.set_title(word)  # hangul: data") == []


@pytest.mark.parametrize('nb', CHAPTERS + [ROOT / 'nbs' / 'index.ipynb'], ids=lambda p: p.stem)
def test_figure_labels_are_english(nb):
    "One rule everywhere: titles, axis labels and legends in English; Hangul only where a figure shows Korean text."
    found = {i: hangul_labels(source(c)) for i, c in enumerate(cells(nb)) if c['cell_type'] == 'code'}
    found = {i: labels for i, labels in found.items() if labels}
    assert not found, f'{nb.name}: Hangul in figure labels (cell: labels); mark a line `{DATA_MARK}` if it shows text: {found}'
