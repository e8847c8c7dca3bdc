"""`kollm_demo` never removes or overwrites what it did not write; one demo writes a folder at a time.

Each refusal happens before any step runs, so these tests take seconds.
"""
import os, subprocess, sys
from pathlib import Path

import pytest
from kollm.demo import run_demo
from kollm.runtime import FolderLock, UserError

def _tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}

def _users_folder(tmp_path) -> Path:
    out = tmp_path / 'out'
    (out / 'data').mkdir(parents=True)
    (out / 'data' / 'train.txt').write_text('사용자가 직접 모은 글\n', encoding='utf-8')  # a demo output's name
    (out / 'notes.md').write_text('my notes\n', encoding='utf-8')
    return out

def test_demo_refuses_a_folder_with_foreign_files(tmp_path):
    out = _users_folder(tmp_path)
    before = _tree(out)
    with pytest.raises(UserError, match='did not write'):
        run_demo(out=out, steps=10, minutes=0, progress=False, log=lambda m: None)
    assert _tree(out) == before

def test_demo_refuses_a_corpus_inside_its_folder(tmp_path):
    out = _users_folder(tmp_path)
    before = _tree(out)
    with pytest.raises(UserError, match='inside the demo'):
        run_demo(corpus=str(out / 'data'), out=out, steps=10, minutes=0, progress=False, log=lambda m: None)
    assert _tree(out) == before

def test_demo_refuses_a_folder_another_demo_holds(tmp_path):
    out = tmp_path / 'out'
    with FolderLock(out, 'demo folder'):
        with pytest.raises(UserError, match=f'in use by process {os.getpid()}'):
            run_demo(out=out, steps=10, minutes=0, progress=False, log=lambda m: None)
    assert set(_tree(out)) == {'.lock'}  # the test's own lock file: the demo wrote nothing

def test_kollm_demo_says_it_in_one_line(tmp_path):
    out = _users_folder(tmp_path)
    before = _tree(out)
    script = Path(sys.executable).with_name('kollm_demo')  # the console script pip installed
    done = subprocess.run([str(script), '--out', str(out), '--quiet'], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, 'KOLLM_DEBUG': ''}, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('kollm_demo: error:') and 'notes.md' in lines[0], done.stderr
    assert _tree(out) == before
