"""Render `nbs/index.ipynb` to `README.md` without Quarto (which `nbdev_readme` needs and these machines lack).

Markdown cells are copied, visible code cells become ```python blocks followed by their text output, cells marked
`#| hide` are left out, and links to chapters point into `nbs/`. `python tools/readme.py` writes README.md;
`tests/test_repo.py` fails when README.md is out of date.
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _directives(src: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r'^#\|\s*([\w-]+)', src, flags=re.M)}

def _strip_directives(src: str) -> str:
    return '\n'.join(l for l in src.splitlines() if not re.match(r'^#\|', l)).strip('\n')

def _output_text(out: dict) -> str:
    if out.get('output_type') == 'stream': return ''.join(out['text'])
    data = out.get('data', {})
    if 'text/markdown' in data: return ''.join(data['text/markdown'])
    return ''.join(data.get('text/plain', ''))

def render(nb_path: Path = ROOT / 'nbs' / 'index.ipynb') -> str:
    "README text for the notebook at `nb_path`."
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        src = ''.join(cell['source'])
        if cell['cell_type'] == 'markdown':
            parts.append(re.sub(r'\]\((\d\d[a-z]?_[\w-]+\.ipynb(?:#[\w-]+)?)\)', r'](nbs/\1)', src))
        elif cell['cell_type'] == 'code' and not _directives(src) & {'hide', 'default_exp'}:
            parts.append(f"```python\n{_strip_directives(src)}\n```")
            text = ''.join(_output_text(o) for o in cell.get('outputs', [])).strip('\n')
            if text: parts.append(f"```\n{text}\n```")
    return '<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file. -->\n\n' \
           + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    (ROOT / 'README.md').write_text(render(), encoding='utf-8')
    print(f"wrote {ROOT / 'README.md'}", file=sys.stderr)
