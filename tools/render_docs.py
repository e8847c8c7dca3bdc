"""Render the docs site offline and check it, without Quarto (which `nbdev_docs` needs and these machines lack).

Each page (`nbs/*.ipynb` not starting with `_`) goes through nbdev's own doc processing, the processors
`nbdev_docs` runs before Quarto (`nbdev.processors.FilterDefaults`: frontmatter from the H1, `#| hide` and
`#| export` handling, `show_doc` cells executed...). Then the part Quarto would do is emulated: the title block
from the frontmatter, Quarto cell options (`echo`, `output`, `include`) applied and removed, `.ipynb` links
pointed at the pages' `output-file`. nbconvert writes standalone HTML from the stored outputs (nothing is
executed but what nbdev itself executes), with figures embedded, so the folder opens from file://.

`python tools/render_docs.py` writes `_docs_offline/`; `--check` also checks it and exits 1 on a problem:
- the site settings `nbdev_docs` reads (`nbs/_quarto.yml`, settings.ini, the generated nbdev.yml and sidebar);
- each notebook: nbdev's processing runs (it would fail `nbdev_docs` otherwise), no error outputs, figures drawn
  with a Korean font (`koreanize_matplotlib` imported before the first figure, no "Glyph ... missing" warning);
- each page: its H1 title, no `#|` directive left in its code, no markdown left as text, every <img> a valid image;
- in headless Chromium, when `chromium` is on PATH: every page opens with its title, every image loads
  (naturalWidth > 0) and Hangul is drawn by a real font, not the .notdef box; one screenshot per page.
"""
import base64, fcntl, io, json, os, re, select, shutil, subprocess, sys, tempfile, time, warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from html import escape
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / '_docs_offline'
KOREAN_FONTS = ('NanumGothic', 'NanumBarunGothic', 'Noto Sans CJK KR', 'Noto Sans KR', 'AppleGothic',
                'Apple SD Gothic Neo', 'Malgun Gothic')
_re_quarto_opt = re.compile(r'^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_re_directive_line = re.compile(r'(?m)^\s*#\|')
_re_glyph_missing = re.compile(r'Glyph \d+ .*missing from (?:current )?font')
_re_korean_font = re.compile(r'^\s*(?:import koreanize_matplotlib|from koreanize_matplotlib )|'
                             r'(?:font\.family|fontfamily|rc\(\s*.font).*(?:' + '|'.join(KOREAN_FONTS) + ')', re.M)
_re_raw_markdown = re.compile(r'(?m)^#{1,6} \S|\]\([^)\s]*\)\{')  # a heading or a pandoc link that stayed text

@dataclass
class Page:
    "One docs page: its notebook, the HTML file Quarto would write, and what the checks found."
    src: Path
    out_file: str = ''
    title: str = ''
    description: str = ''
    n_images: int = 0
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)

def _config(root: Path = ROOT):
    "nbdev's settings of the project at `root` (nbdev's `get_config(path=)` looks from the working directory)."
    from nbdev.config import get_config
    cwd = os.getcwd()
    try: os.chdir(root); return get_config(path=Path(root).resolve())
    finally: os.chdir(cwd)

def page_notebooks(nbs: Path = ROOT / 'nbs') -> list[Path]:
    "The notebooks `nbdev_docs` renders as pages: index first, then the chapters."
    return sorted((p for p in nbs.glob('*.ipynb') if not p.name.startswith(('_', '.'))),
                  key=lambda p: (p.name != 'index.ipynb', p.name))

# ---------------------------------------------------------------- nbdev's processing and the Quarto emulation
def nbdev_process(src: Path) -> tuple[dict, list, list]:
    "Notebook `src` after nbdev's doc processors (as `nbdev_docs` runs them), with problems and nbdev's warnings."
    from execnb.nbio import read_nb, nb2dict
    from nbdev.processors import FilterDefaults, exec_show_docs
    problems, notes = [], []
    os.environ['IN_TEST'] = '1'  # as nbdev.serve_drv does while processing
    cwd = os.getcwd(); os.chdir(ROOT)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            try: nb = read_nb(src); FilterDefaults()(nb)
            except Exception as e:
                lines = str(e).splitlines() + ['']
                problems.append(f'nbdev_docs would fail on the cell starting {lines[1]!r}: '
                                f'{type(e.__cause__).__name__}: {e.__cause__} (nbdev runs every cell that holds an '
                                'import, out of context: keep imports in cells of their own)')
                class WithoutShowDocs(FilterDefaults):
                    def base_procs(self): return [p for p in super().base_procs() if p is not exec_show_docs]
                nb = read_nb(src); WithoutShowDocs()(nb)
        notes += [f'nbdev: {str(w.message).splitlines()[0]} (cell starting {str(w.message).splitlines()[2]!r})'
                  for w in caught if 'imports and other code' in str(w.message)]
    finally:
        os.chdir(cwd); os.environ.pop('IN_TEST', None)
    return nb2dict(nb), problems, notes

def frontmatter(nb: dict) -> dict:
    "The YAML frontmatter nbdev's FrontmatterProc put in the first raw cell."
    import yaml
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'raw' and src.lstrip().startswith('---'):
            return yaml.safe_load(src.strip().strip('-')) or {}
    return {}

def output_file(nb: dict, src: Path) -> str:
    "The file Quarto writes for this page: the frontmatter's `output-file`, else the notebook's name."
    return frontmatter(nb).get('output-file') or src.with_suffix('.html').name

_re_attr_link = re.compile(r'^([ \t]*)\[([^\]]+)\]\(([^)\s]+)\)\{([^}]*)\}[ \t]*$', flags=re.M)

def _pandoc_md(md: str, doc_url: str) -> str:
    "Markdown with pandoc's link attributes (show_doc's `[source](url){target=...}` line) as HTML, doc links relative."
    md = _re_attr_link.sub(lambda m: f'{m[1]}<div><a href="{m[3]}" {m[4]}>{m[2]}</a></div>', md)  # a block: kept whole
    return md.replace(doc_url, '')

def quarto_cells(nb: dict, links: dict[str, str], doc_url: str) -> dict:
    "What Quarto would show of processed `nb`: a title block, cell options applied and their `#|` lines removed."
    import nbformat
    fm = frontmatter(nb)
    head = f"# {fm.get('title', '')}" + (f"\n\n> {fm['description']}" if fm.get('description') else '')
    cells = [nbformat.v4.new_markdown_cell(head)]
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'raw': continue
        if c['cell_type'] == 'markdown':
            src = re.sub(r'\]\(([\w-]+\.ipynb)(#[^)]*)?\)', lambda m: f"]({links.get(m[1], m[1])}{m[2] or ''})", src)
            cells.append(nbformat.v4.new_markdown_cell(_pandoc_md(src, doc_url)))
            continue
        lines = src.splitlines()
        opts = {}
        while lines and _re_quarto_opt.match(lines[0]):
            k, v = _re_quarto_opt.match(lines.pop(0)).groups(); opts[k] = v.strip('"\'').lower()
        if opts.get('include') == 'false': continue
        cell = nbformat.v4.new_code_cell('\n'.join(lines), outputs=[nbformat.from_dict(o) for o in c.get('outputs', [])])
        for o in cell.outputs:
            if 'text/markdown' in o.get('data', {}):
                o.data['text/markdown'] = _pandoc_md(''.join(o.data['text/markdown']), doc_url)
        if opts.get('echo') == 'false': cell.metadata.tags = ['remove_input']
        if opts.get('output') == 'false': cell.outputs = []
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells, metadata=nb.get('metadata', {}))

def to_html(qnb, title: str, nav: str) -> str:
    "Standalone HTML (nbconvert's lab template) of `qnb`, figures embedded, with `nav` at the top of the body."
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    exporter = HTMLExporter(template_name='lab', embed_images=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={'remove_input'}), enabled=True)
    html, _ = exporter.from_notebook_node(qnb, resources={'metadata': {'name': title}})
    return re.sub(r'(<body[^>]*>)', lambda m: m[1] + nav, html, count=1)

def _nav(pages: list[Page], current: Page) -> str:
    items = ' · '.join(f'<b>{escape(p.title)}</b>' if p is current else f'<a href="{p.out_file}">{escape(p.title)}</a>'
                       for p in pages)
    return (f'<nav class="offline-nav" style="padding:.6em 1.5em;border-bottom:1px solid #ddd;font-size:.9em">'
            f'{items}<br><small>Offline rendering by tools/render_docs.py; the site itself is built by nbdev_docs '
            'with Quarto.</small></nav>')

def _process_job(src: str):
    nb, problems, notes = nbdev_process(Path(src))
    return src, nb, problems, notes

def render(out: Path = OUT, nbs: Path = ROOT / 'nbs', workers: int = 1, log=lambda *a: None) -> list[Page]:
    "Render every page of `nbs` into `out` (emptied first); the pages with the problems found while rendering."
    cfg = _config()
    doc_url = f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip('/') + '/'
    srcs = page_notebooks(nbs)
    # like nbdev's proc_nbs: in spawned processes, so the chapters' code runs apart from the caller (and pytest)
    t = time.time()
    with ProcessPoolExecutor(max(1, workers), mp_context=get_context('spawn')) as pool:
        done = list(pool.map(_process_job, map(str, srcs)))
    log(f"nbdev's processing of {len(srcs)} notebooks: {time.time() - t:.1f}s")
    pages, processed = [], {}
    for src, nb, problems, notes in done:
        src = Path(src); fm = frontmatter(nb)
        pages.append(Page(src, output_file(nb, src), str(fm.get('title', '')), str(fm.get('description', '')),
                          problems=problems, notes=notes))
        processed[src] = nb
    links = {p.src.name: p.out_file for p in pages}
    t = time.time()
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    if (nbs / 'images').is_dir(): shutil.copytree(nbs / 'images', out / 'images')  # pictures the pages link to
    for page in pages:
        qnb = quarto_cells(processed[page.src], links, doc_url)
        page.n_images = sum(1 for c in qnb.cells if c.cell_type == 'code' for o in c.get('outputs', [])
                            if {'image/png', 'image/jpeg', 'image/svg+xml'} & set(o.get('data', {})))
        (out / page.out_file).write_text(to_html(qnb, page.title, _nav(pages, page)), encoding='utf-8')
    log(f'HTML of {len(pages)} pages: {time.time() - t:.1f}s')
    return pages

# ---------------------------------------------------------------- static checks
def check_notebook(src: Path) -> list[str]:
    "Problems in the stored outputs of notebook `src`: error outputs, figures drawn without a Korean font."
    nb = json.loads(src.read_text(encoding='utf-8'))
    problems, korean_font_at, first_figure_at = [], None, None
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'code': continue
        if korean_font_at is None and _re_korean_font.search(''.join(c['source'])): korean_font_at = i
        for o in c.get('outputs', []):
            text = ''.join(o.get('text', '')) + ''.join(o.get('data', {}).get('text/plain', ''))
            if o['output_type'] == 'error': problems.append(f"cell {i}: stored error output {o.get('ename')}: {o.get('evalue')}")
            if _re_glyph_missing.search(text):
                problems.append(f'cell {i}: a figure was drawn without a Korean font: {_re_glyph_missing.search(text)[0]}')
            if first_figure_at is None and {'image/png', 'image/svg+xml'} & set(o.get('data', {})): first_figure_at = i
    if first_figure_at is not None and (korean_font_at is None or korean_font_at > first_figure_at):
        problems.append(f'cell {first_figure_at} draws a figure, but no `import koreanize_matplotlib` (or a Korean '
                        'font) comes before it: Hangul in its labels would be boxes')
    return problems

def _image_problem(src: str, page_dir: Path) -> str | None:
    from PIL import Image
    if src.startswith('data:'):
        head, _, payload = src.partition(',')
        data = base64.b64decode(payload) if ';base64' in head else payload.encode()
    elif re.match(r'^[a-z]+://', src): return f'{src[:60]} is remote: it does not load offline'
    elif not (page_dir / src).is_file(): return f'{src} is missing beside the page'
    else: data = (page_dir / src).read_bytes()
    if data.lstrip().startswith((b'<svg', b'<?xml')):
        import xml.etree.ElementTree as ET
        try: ET.fromstring(data); return None
        except ET.ParseError as e: return f'invalid SVG: {e}'
    try:
        with Image.open(io.BytesIO(data)) as im: im.verify()
        with Image.open(io.BytesIO(data)) as im: im.load(); w, h = im.size
    except Exception as e: return f'{src[:40]}... is not a valid image: {e}'
    return None if w and h else f'{src[:40]}... is an empty image'

def check_html(page: Page, out: Path = OUT) -> list[str]:
    "Problems in the rendered page: missing H1 title, `#|` directives in code, invalid or missing images."
    from bs4 import BeautifulSoup
    soup = BeautifulSoup((out / page.out_file).read_text(encoding='utf-8'), 'html.parser')
    problems = []
    h1s = [h.get_text().replace('¶', '').strip() for h in soup.find_all('h1')]
    if not page.title: problems.append('no title in the frontmatter: the notebook needs an H1 title cell')
    elif page.title not in h1s: problems.append(f'no <h1> with the title {page.title!r} (H1s: {h1s})')
    if not (soup.title and soup.title.get_text().strip()): problems.append('empty <title>')
    for area in soup.select('.jp-CodeCell .jp-InputArea pre'):
        if _re_directive_line.search(area.get_text()):
            problems.append(f'a cell directive leaks into the page: {area.get_text().strip()[:80]!r}')
    for text in soup.select_one('body').find_all(string=_re_raw_markdown):
        if not text.find_parent(['pre', 'code', 'style', 'script']):
            problems.append(f'markdown left unrendered: {text.strip()[:80]!r}')
    imgs = soup.find_all('img')
    problems += [p for img in imgs if (p := _image_problem(img.get('src', ''), out / Path(page.out_file).parent))]
    if len(imgs) < page.n_images: problems.append(f'{page.n_images} figures in the notebook, {len(imgs)} <img> on the page')
    return problems

def _nbdev_yml(cfg) -> str:
    from nbdev.quarto import _nbdev_yml
    vals = {k: cfg[k] for k in ['title', 'description', 'branch', 'git_url', 'doc_host', 'doc_baseurl']}
    return _nbdev_yml.format(doc_path=cfg.doc_path.name, **vals)

def _quarto_renders(path: str, patterns: list[str]) -> bool:
    "Whether Quarto's `project: render:` list takes `path` (relative to the project): globs, `!` exclusions."
    from fnmatch import fnmatch
    taken = False
    for pat in patterns:
        neg = pat.startswith('!'); pat = pat.lstrip('!')
        hit = path.startswith(pat) if pat.endswith('/') else fnmatch(path, pat) or fnmatch(Path(path).name, pat)
        if hit: taken = not neg
    return taken

def check_site_config(root: Path = ROOT) -> list[str]:
    "Problems with what `nbdev_docs` reads: nbs/_quarto.yml, settings.ini, the nbdev.yml and sidebar it writes."
    import contextlib, yaml
    from nbdev.quarto import nbdev_sidebar
    cfg, problems = _config(root), []
    nbs = cfg.nbs_path
    for key in ['doc_path', 'nbs_path', 'title', 'description', 'branch', 'git_url', 'doc_host', 'doc_baseurl', 'readme_nb']:
        if not cfg.get(key): problems.append(f'settings.ini: `{key}` is missing')
    if not (nbs / cfg.get('readme_nb', 'index.ipynb')).exists(): problems.append('settings.ini: readme_nb does not exist')
    qy = nbs / '_quarto.yml'
    if not qy.exists(): return problems + [f'{qy.relative_to(root)} is missing (or a broken link): nbdev_docs would write '
                                           "nbdev's default one and ignore the project's"]
    try: q = yaml.safe_load(qy.read_text())
    except yaml.YAMLError as e: return problems + [f'{qy.relative_to(root)} is not valid YAML: {e}']
    project, html = q.get('project') or {}, (q.get('format') or {}).get('html') or {}
    if project.get('type') != 'website': problems.append('_quarto.yml: project type is not `website`')
    if project.get('output-dir', cfg.doc_path.name) != cfg.doc_path.name:
        problems.append(f"_quarto.yml: output-dir {project['output-dir']!r} is not settings.ini's doc_path "
                        f"{cfg.doc_path.name!r}: nbdev_docs moves `_proc/{cfg.doc_path.name}`")
    missing_meta = {'nbdev.yml', 'sidebar.yml'} - set(q.get('metadata-files') or [])
    if missing_meta: problems.append(f'_quarto.yml: metadata-files lacks {sorted(missing_meta)} (title, output-dir, sidebar)')
    if html.get('css') and not (nbs / html['css']).exists(): problems.append(f"_quarto.yml: css {html['css']} is not in nbs/")
    if not (q.get('website') or {}).get('sidebar'): problems.append('_quarto.yml: website has no sidebar')
    renders = project.get('render')
    if renders:
        pages = [p.name for p in page_notebooks(nbs)]
        problems += [f'_quarto.yml: render does not take the page {p}' for p in pages if not _quarto_renders(p, renders)]
        others = [p.relative_to(nbs).as_posix() for p in nbs.rglob('*') if p.suffix in ('.ipynb', '.qmd', '.md')
                  and p.name not in pages and not any(s.startswith(('_', '.')) for s in p.relative_to(nbs).parts)]
        problems += [f'_quarto.yml: render would make a page of {p}' for p in others if _quarto_renders(p, renders)]
    try: ny = yaml.safe_load(_nbdev_yml(cfg))
    except yaml.YAMLError as e: problems.append(f'the nbdev.yml that settings.ini generates is not valid YAML: {e}')
    else:
        problems += [f'nbdev.yml: {k} {ny["website"].get(k)!r} is not a URL (settings.ini: doc_host, doc_baseurl, git_url)'
                     for k in ('site-url', 'repo-url') if not str(ny['website'].get(k)).startswith('http')]
    if str(cfg.get('custom_sidebar', 'False')).lower() not in ('true', 'false'):
        problems.append('settings.ini: custom_sidebar is not True/False')
    elif str(cfg.get('custom_sidebar')).lower() == 'false':
        buf, cwd = io.StringIO(), os.getcwd()
        try:  # nbdev_sidebar reads the settings of the working directory
            os.chdir(root)
            with contextlib.redirect_stdout(buf): nbdev_sidebar.__wrapped__(path=str(nbs), printit=True)
        finally: os.chdir(cwd)
        contents = yaml.safe_load(buf.getvalue())['website']['sidebar']['contents']
        if contents != [p.name for p in page_notebooks(nbs)]:
            problems.append(f'the sidebar nbdev generates is {contents}, not the pages {[p.name for p in page_notebooks(nbs)]}')
    ignored = (root / '.gitignore').read_text().split() if (root / '.gitignore').exists() else []
    for path in [f'{cfg.doc_path.name}/', '_proc/', 'nbs/nbdev.yml', 'nbs/sidebar.yml', f'{OUT.name}/']:
        if path not in ignored: problems.append(f'.gitignore lacks {path} (written by nbdev_docs or this tool)')
    return problems

# ---------------------------------------------------------------- headless Chromium over the DevTools pipe
_PAGE_JS = r"""(() => {
  const hangul = /[\uac00-\ud7a3]/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let el = null;
  while (walker.nextNode()) { if (hangul.test(walker.currentNode.data)) { el = walker.currentNode.parentElement; break; } }
  // the fonts the page would draw Hangul in: prose, code, and the element holding its first Hangul text
  const families = [...new Set(['.jp-RenderedMarkdown p', '.jp-InputArea pre', '.jp-OutputArea pre']
    .map(q => document.querySelector(q)).concat([el, document.body]).filter(e => e).map(e => getComputedStyle(e).fontFamily))];
  const c = document.createElement('canvas'); c.width = 64; c.height = 64;
  const ctx = c.getContext('2d');
  const ink = (ch, family) => { ctx.clearRect(0, 0, 64, 64); ctx.font = `40px ${family}`; ctx.textBaseline = 'top';
    ctx.fillText(ch, 4, 4); return Array.from(ctx.getImageData(0, 0, 64, 64).data.filter((_, i) => i % 4 === 3)).join(','); };
  const fonts = families.map(family => {
    const notdef = ink('\u0378', family);   // an unassigned code point: the .notdef box that stands for a missing glyph
    const drawn = ['한', '국', '어', '학', '습', '모', '델'].map(ch => ink(ch, family));
    return {family, syllables: drawn.length, distinct: new Set(drawn).size,
            asNotdef: drawn.filter(s => s === notdef).length, blank: drawn.filter(s => !/[1-9]/.test(s)).length};
  });
  const imgs = Array.from(document.images);
  if (el) el.scrollIntoView({block: 'center'});
  return {title: document.title, h1: (document.querySelector('h1') || {}).textContent || '', fonts,
          images: imgs.length, brokenImages: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 60)),
          hangulChars: (document.body.innerText.match(/[\uac00-\ud7a3]/g) || []).length, hangulElement: !!el};
})()"""

class Chromium:
    "Headless Chromium driven over `--remote-debugging-pipe` (fds 3 and 4): no download, no extra package."
    def __init__(self, exe: str = 'chromium', env: dict | None = None, width: int = 1200, height: int = 900):
        self.tmp = tempfile.mkdtemp(prefix='render_docs_chromium_')
        to_chrome_r, self._w = os.pipe(); self._r, from_chrome_w = os.pipe()
        # chromium reads commands on fd 3 and answers on fd 4; its ends wait on fds >= 10 until bash moves them there
        hi_r, hi_w = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        os.close(to_chrome_r); os.close(from_chrome_w)
        args = ['--headless', '--no-sandbox', '--disable-gpu', '--remote-debugging-pipe', '--no-first-run',
                '--host-resolver-rules=MAP * ~NOTFOUND',  # offline: remote scripts (MathJax CDN) fail at once
                f'--user-data-dir={self.tmp}', f'--window-size={width},{height}', 'about:blank']
        self.proc = subprocess.Popen(  # bash puts the pipe ends on fds 3 and 4 of chromium
            ['bash', '-c', f'exec "$0" "$@" 3<&{hi_r} 4>&{hi_w} {hi_r}<&- {hi_w}>&-', exe, *args],
            pass_fds=(hi_r, hi_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        os.close(hi_r); os.close(hi_w)
        self._buf, self._id, self.width, self.height = b'', 0, width, height

    def _recv(self, timeout: float) -> dict:
        end = time.monotonic() + timeout
        while b'\0' not in self._buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]: raise TimeoutError('no answer from chromium')
            chunk = os.read(self._r, 1 << 20)
            if not chunk: raise RuntimeError('chromium closed the DevTools pipe')
            self._buf += chunk
        msg, self._buf = self._buf.split(b'\0', 1)
        return json.loads(msg)

    def send(self, method: str, session: str | None = None, timeout: float = 30, **params) -> dict:
        "Send a DevTools command and return its result."
        self._id += 1
        msg = {'id': self._id, 'method': method, 'params': params} | ({'sessionId': session} if session else {})
        os.write(self._w, json.dumps(msg).encode() + b'\0')
        while True:
            r = self._recv(timeout)
            if r.get('id') == self._id:
                if 'error' in r: raise RuntimeError(f"{method}: {r['error']}")
                return r['result']

    def wait_event(self, method: str, session: str, timeout: float = 30) -> dict:
        while True:
            r = self._recv(timeout)
            if r.get('method') == method and r.get('sessionId') == session: return r['params']

    def check_page(self, url: str, screenshot: Path | None = None) -> dict:
        "Open `url` in a new tab; what `_PAGE_JS` measures there, and the fonts Chromium drew its first Hangul with."
        target = self.send('Target.createTarget', url='about:blank')['targetId']
        s = self.send('Target.attachToTarget', targetId=target, flatten=True)['sessionId']
        try:
            for domain in ('Page', 'Runtime', 'DOM', 'CSS'): self.send(f'{domain}.enable', s)
            self.send('Emulation.setDeviceMetricsOverride', s, width=self.width, height=self.height,
                      deviceScaleFactor=1, mobile=False)
            nav = self.send('Page.navigate', s, url=url)
            if nav.get('errorText'): return {'error': nav['errorText']}
            self.wait_event('Page.loadEventFired', s)
            res = self.send('Runtime.evaluate', s, expression=_PAGE_JS, returnByValue=True)
            if 'exceptionDetails' in res: return {'error': str(res['exceptionDetails'])[:300]}
            found = res['result']['value']
            found['platformFonts'] = self._hangul_fonts(s) if found['hangulElement'] else []
            if screenshot:
                shot = self.send('Page.captureScreenshot', s, format='png')['data']
                screenshot.parent.mkdir(parents=True, exist_ok=True); screenshot.write_bytes(base64.b64decode(shot))
            return found
        finally: self.send('Target.closeTarget', targetId=target)

    def _hangul_fonts(self, s: str) -> list[str]:
        self.send('DOM.getDocument', s, depth=-1)
        obj = self.send('Runtime.evaluate', s, expression=r"""(() => { const w = document.createTreeWalker(document.body,
            NodeFilter.SHOW_TEXT); while (w.nextNode()) if (/[\uac00-\ud7a3]/.test(w.currentNode.data))
            return w.currentNode.parentElement; })()""")['result']['objectId']
        node = self.send('DOM.requestNode', s, objectId=obj)['nodeId']
        return [f"{f['familyName']} ({f['glyphCount']} glyphs)" for f in self.send('CSS.getPlatformFontsForNode', s, nodeId=node)['fonts']]

    def close(self):
        self.proc.terminate()
        try: self.proc.wait(10)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        os.close(self._r); os.close(self._w); shutil.rmtree(self.tmp, ignore_errors=True)
    def __enter__(self): return self
    def __exit__(self, *exc): self.close()

def browser_problems(found: dict, page: Page) -> list[str]:
    "Problems in what Chromium measured on `page`: not opened, wrong title, images not loaded, Hangul as boxes."
    if 'error' in found: return [f"chromium could not open the page: {found['error']}"]
    problems = []
    if page.title and page.title not in found['h1']: problems.append(f"chromium shows H1 {found['h1']!r}, not {page.title!r}")
    if not found['title'].strip(): problems.append('chromium shows an empty <title>')
    if found['brokenImages']: problems.append(f"images that do not load: {found['brokenImages']}")
    if found['images'] < page.n_images: problems.append(f"{found['images']} images loaded, {page.n_images} expected")
    for f in found['fonts']:
        if f['asNotdef'] or f['blank'] or f['distinct'] < f['syllables']:
            problems.append(f"Hangul is not drawn by a real font in {f['family']!r}: of {f['syllables']} syllables "
                            f"{f['asNotdef']} are the .notdef box, {f['blank']} blank, {f['distinct']} distinct drawings")
    return problems

def browser_check(pages: list[Page], out: Path = OUT, screenshots: Path | None = None, env: dict | None = None,
                  exe: str = 'chromium') -> dict[str, tuple[dict, list[str]]]:
    "What Chromium measured on each page and the problems in it, by output file; one screenshot per page."
    results = {}
    with Chromium(exe, env=env) as browser:
        for page in pages:
            shot = screenshots / Path(page.out_file).with_suffix('.png').name if screenshots else None
            found = browser.check_page((out / page.out_file).resolve().as_uri(), shot)
            results[page.out_file] = found, browser_problems(found, page)
    return results

def browser_summary(found: dict) -> str:
    "One line on what Chromium measured on a page."
    if 'error' in found: return f"chromium: {found['error']}"
    fonts = '; '.join(f"{f['distinct']}/{f['syllables']} distinct syllables in {f['family'].split(',')[0]}" for f in found['fonts'])
    return (f"chromium: {found['images']} images loaded, {found['hangulChars']} Hangul characters, {fonts}; first Hangul "
            f"drawn with {', '.join(found['platformFonts']) or '(no Hangul on the page)'}")

def no_korean_fonts_env(tmp: Path) -> dict:
    "Environment for Chromium with only the DejaVu fonts: a fontconfig file that hides every Korean font."
    conf = tmp / 'fonts-no-korean.conf'
    conf.write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
                    '<dir>/usr/share/fonts/truetype/dejavu</dir>'
                    f'<cachedir>{tmp}/fontcache</cachedir></fontconfig>')
    return {'FONTCONFIG_FILE': str(conf)}

# ---------------------------------------------------------------- CLI
def check(out: Path = OUT, workers: int = 1, browser: str = 'auto', screenshots: Path | None = None,
          log=print) -> list[Page]:
    "Render into `out` and run every check; the pages (a 'site' pseudo-page first) with their problems."
    t = time.time()
    site = Page(ROOT / 'nbs' / '_quarto.yml', '(site settings)', '(site settings)', problems=check_site_config())
    pages = render(out, workers=workers, log=log)
    log(f'rendered {len(pages)} pages into {out} in {time.time() - t:.1f}s')
    for page in pages:
        page.problems += check_notebook(page.src) + check_html(page, out)
    if browser == 'yes' or (browser == 'auto' and shutil.which('chromium')):
        t = time.time()
        found = browser_check(pages, out, screenshots)
        log(f'chromium checked {len(pages)} pages in {time.time() - t:.1f}s' + (f'; screenshots in {screenshots}' if screenshots else ''))
        for p in pages:
            p.problems += found[p.out_file][1]; p.notes.append(browser_summary(found[p.out_file][0]))
    elif browser == 'auto': log('chromium is not on PATH: browser checks skipped')
    return [site] + pages

def main():
    "The command line: render, or with `--check` render and check."
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', type=Path, default=OUT, help='folder for the HTML pages (emptied first)')
    ap.add_argument('--check', action='store_true', help='check the settings, notebooks and pages; exit 1 on a problem')
    ap.add_argument('--browser', choices=['auto', 'yes', 'no'], default='auto',
                    help='with --check: open every page in headless chromium (auto: when it is on PATH)')
    ap.add_argument('--screenshots', type=Path, default=None, help='with the browser check: save one PNG per page here')
    ap.add_argument('--workers', type=int, default=1, help="processes for nbdev's processing (it imports each chapter)")
    ap.add_argument('--verbose', action='store_true', help="also print nbdev's warnings and chromium's measurements")
    a = ap.parse_args()
    if not a.check:
        t = time.time(); pages = render(a.out, workers=a.workers, log=print)
        print(f'rendered {len(pages)} pages into {a.out} in {time.time() - t:.1f}s')
        sys.exit(0)
    pages = check(a.out, a.workers, a.browser, a.screenshots)
    for p in pages:
        print(f"{'FAIL' if p.problems else 'ok  '} {p.out_file:<22} {p.src.name}")
        for prob in p.problems: print(f'       - {prob}')
        if a.verbose:
            for note in p.notes: print(f'       . {note}')
    failed = [p.out_file for p in pages if p.problems]
    print(f"{len(pages) - len(failed)}/{len(pages)} ok" + (f'; failed: {failed}' if failed else ''))
    sys.exit(1 if failed else 0)

if __name__ == '__main__':  # run the importable module, so that the worker processes find its functions by name
    sys.path.insert(0, str(Path(__file__).parent))
    import render_docs
    render_docs.main()
