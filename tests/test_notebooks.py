"""Run every notebook through nbdev's own executor, one pytest test per notebook, and check its saved outputs.

Cells flagged with a `tst_flags` flag (`notest`, `slow`) are skipped; set KOLLM_TEST_FLAGS="slow" to run the slow ones.
The execution is `nbdev.test.test_nb`'s (tools/refresh_outputs.py's `execute` keeps the executed notebook, which nbdev
throws away), so the same run also checks that each executed cell's saved outputs are what it prints now: the same
kinds (text, table, figure, error) and the same words once numbers are masked. `python tools/refresh_outputs.py`
saves fresh ones.
"""
import importlib.util
from pathlib import Path

import pytest
from nbdev.config import get_config

CFG = get_config()
NOTEBOOKS = sorted(p for p in Path(CFG.nbs_path).glob('*.ipynb') if not p.name.startswith('_'))
_TOOL = Path(CFG.config_path) / 'tools' / 'refresh_outputs.py'
_spec = importlib.util.spec_from_file_location('refresh_outputs', _TOOL)
refresh_outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(refresh_outputs)

def test_found_notebooks():
    "Every chapter is collected: the numbered chapters from 00 to the last one, and the index."
    numbers = sorted({p.name[:2] for p in NOTEBOOKS if p.name[:2].isdigit()})
    assert numbers == [f'{i:02d}' for i in range(int(numbers[-1]) + 1)], numbers
    assert 'index.ipynb' in [p.name for p in NOTEBOOKS]
    assert len(NOTEBOOKS) == len(list(Path(CFG.nbs_path).glob('[0-9]*.ipynb'))) + 1, NOTEBOOKS

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: p.name)
def test_notebook(nb):
    ok, executed, ran = refresh_outputs.execute(nb)
    assert ok, f'{nb.name} failed; its traceback is printed above'
    stale = refresh_outputs.stale_cells(nb, executed, ran)
    assert not stale, (f"{nb.name}: saved outputs differ from what the code prints now (run `python "
                       f"tools/refresh_outputs.py nbs/{nb.name}`):\n" + '\n'.join(stale))
