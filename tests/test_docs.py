"""The docs site renders offline and reads right: `tools/render_docs.py`'s checks, in headless Chromium where installed.

`nbdev_docs` needs Quarto, which CI lacks; these tests run nbdev's own doc processing and nbconvert instead
(see tools/render_docs.py). The Chromium tests are skipped where `chromium` is not on PATH.
"""
import base64, json, os, re, shutil, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
import render_docs as rd  # noqa: E402

PAGES = rd.page_notebooks()
needs_chromium = pytest.mark.skipif(not shutil.which('chromium'), reason='chromium is not on PATH, so the pages are not '
                                    'opened in a browser (Debian: apt-get install chromium fonts-nanum)')

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The offline site, rendered once: its folder and its pages by notebook name."
    out = tmp_path_factory.mktemp('docs_offline')
    return out, {p.src.name: p for p in rd.render(out, workers=2)}  # nbdev imports each chapter: two at once

def test_site_settings():
    "What `nbdev_docs` reads is in order: nbs/_quarto.yml, settings.ini, the nbdev.yml and sidebar it generates."
    problems = rd.check_site_config()
    assert not problems, "\n".join(problems)

@pytest.mark.parametrize('nb', PAGES, ids=lambda p: p.name)
def test_page(site, nb):
    "nbdev processes the notebook; its page has its title, no directives, valid figures drawn with a Korean font."
    out, pages = site
    problems = pages[nb.name].problems + rd.check_notebook(nb) + rd.check_html(pages[nb.name], out)
    assert not problems, f'{nb.name}:\n' + '\n'.join(problems)

# ---------------------------------------------------------------- the checks fail on broken copies
def _page_with_figure(site):
    out, pages = site
    return next(p for p in pages.values() if p.n_images), out

def test_html_check_catches_broken_pages(site, tmp_path):
    page, out = _page_with_figure(site)
    html = (out / page.out_file).read_text(encoding='utf-8')
    assert rd.check_html(page, out) == []
    broken = {
        'no <h1> with the title': re.sub(r'<h1\b', '<h2', html),
        'directive leaks': re.sub(r'(<div class="jp-Cell jp-CodeCell jp-Notebook-cell"[^>]*>.*?<pre>)', r'\1#| hide\n', html, count=1, flags=re.S),
        'not a valid image': re.sub(r'(<img [^>]*src=")data:image/png;base64,[A-Za-z0-9+/=]+', r'\1data:image/png;base64,' +
                                    base64.b64encode(b'\x89PNG\r\n\x1a\nnot a png').decode(), html, count=1),
        'missing beside the page': re.sub(r'(<img [^>]*src=")data:image/png;base64,[A-Za-z0-9+/=]+', r'\1fig.png', html, count=1),
        'figures in the notebook': re.sub(r'<img [^>]*>', '', html),
        'markdown left unrendered': re.sub(r'<h2 id=[^>]*>', '<p>## ', html, count=1)}
    for expected, text in broken.items():
        (tmp_path / page.out_file).write_text(text, encoding='utf-8')
        problems = rd.check_html(page, tmp_path)
        assert any(expected in p for p in problems), (expected, problems)

def test_notebook_check_catches_figures_without_korean_font(tmp_path):
    src = next(p for p in PAGES if 'import koreanize_matplotlib' in p.read_text() and 'image/png' in p.read_text())
    assert rd.check_notebook(src) == []
    nb = json.loads(src.read_text())
    for c in nb['cells']: c['source'] = [l for l in ''.join(c['source']).splitlines(True) if 'koreanize_matplotlib' not in l]
    (tmp_path / src.name).write_text(json.dumps(nb))
    assert any('no `import koreanize_matplotlib`' in p for p in rd.check_notebook(tmp_path / src.name))
    nb = json.loads(src.read_text())
    code = next(c for c in nb['cells'] if c['cell_type'] == 'code')
    code['outputs'].append({'output_type': 'stream', 'name': 'stderr', 'text': [
        "UserWarning: Glyph 54617 (\\N{HANGUL SYLLABLE HAG}) missing from font(s) DejaVu Sans.\n"]})
    (tmp_path / src.name).write_text(json.dumps(nb))
    assert any('drawn without a Korean font' in p for p in rd.check_notebook(tmp_path / src.name))

def test_processing_catches_what_fails_nbdev_docs(tmp_path):
    "A cell mixing an import with code that needs earlier cells: nbdev_docs runs it alone, and it fails."
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell('# A chapter\n\n> What it teaches.'),
        nbformat.v4.new_code_cell('#| export\ndef double(x): return 2 * x'),
        nbformat.v4.new_code_cell('x = 21'),
        nbformat.v4.new_code_cell('import math\nmath.sqrt(double(x))')])
    nbformat.write(nb, tmp_path / '09_broken.ipynb')
    processed, problems, notes = rd.nbdev_process(tmp_path / '09_broken.ipynb')
    assert any('nbdev_docs would fail' in p and 'NameError' in p for p in problems), problems
    assert rd.frontmatter(processed)['title'] == 'A chapter'  # rendered anyway, without show_doc

def test_site_check_catches_broken_settings(tmp_path):
    for f in ['settings.ini', '_quarto.yml', '.gitignore']: shutil.copy(ROOT / f, tmp_path)
    shutil.copytree(ROOT / 'nbs', tmp_path / 'nbs', symlinks=True, ignore=shutil.ignore_patterns('runs', '.ipynb_checkpoints'))
    q = (tmp_path / '_quarto.yml').read_text()
    (tmp_path / '_quarto.yml').write_text(q.replace('metadata-files: [nbdev.yml, sidebar.yml]', 'metadata-files: [nbdev.yml]')
                                          .replace("'!fixtures/'", "'!fixtures/', '!01_*'"))
    problems = rd.check_site_config(tmp_path)
    assert any("lacks ['sidebar.yml']" in p for p in problems), problems
    assert any('render does not take the page 01_rmsnorm.ipynb' in p for p in problems), problems
    (tmp_path / '_quarto.yml').write_text('project: [unclosed')
    assert any('not valid YAML' in p for p in rd.check_site_config(tmp_path))

# ---------------------------------------------------------------- headless Chromium
@needs_chromium
def test_pages_in_chromium(site, tmp_path):
    "Every page opens with its title, its images load and Hangul is drawn by a real font; one screenshot per page."
    out, pages = site
    shots = Path(os.environ.get('KOLLM_DOCS_SCREENSHOTS', tmp_path / 'screenshots'))
    found = rd.browser_check(list(pages.values()), out, shots)
    problems = [f'{page}: {p}' for page, (_, probs) in found.items() for p in probs]
    assert not problems, '\n'.join(problems)
    assert sorted(p.name for p in shots.glob('*.png')) == sorted(Path(p.out_file).with_suffix('.png').name for p in pages.values())

@needs_chromium
@pytest.mark.skipif(not Path('/usr/share/fonts/truetype/dejavu').is_dir(), reason='needs the DejaVu fonts (no Hangul)')
def test_chromium_check_fails_without_korean_font(site, tmp_path):
    "With every Korean font hidden from Chromium, Hangul becomes .notdef boxes and the check says so."
    out, pages = site
    page = pages['index.ipynb']
    (found, problems), = rd.browser_check([page], out, env=rd.no_korean_fonts_env(tmp_path)).values()
    assert any('Hangul is not drawn by a real font' in p for p in problems), (problems, found)
