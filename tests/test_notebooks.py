"""Run every notebook through nbdev's own test runner, one pytest test per notebook.

Cells flagged with a `tst_flags` flag (`notest`, `slow`) are skipped; set KOLLM_TEST_FLAGS="slow" to run the slow ones.
"""
import os
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook  # aliased: pytest would collect a bare `test_nb`

CFG = get_config()
NOTEBOOKS = sorted(p for p in Path(CFG.nbs_path).glob('*.ipynb') if not p.name.startswith('_'))

def test_found_notebooks():
    assert len(NOTEBOOKS) >= 6, NOTEBOOKS

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: p.name)
def test_notebook(nb):
    ok, _ = run_notebook(nb.absolute(), skip_flags=CFG.tst_flags.split(),
                         force_flags=os.environ.get('KOLLM_TEST_FLAGS', '').split(), basepath=CFG.config_path)
    assert ok, f'{nb.name} failed; its traceback is printed above'
