"""The repository is consistent with its source of truth: the notebooks."""
import importlib.util, re, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _copy_project(dst: Path):
    shutil.copy(ROOT / 'settings.ini', dst)
    shutil.copytree(ROOT / 'nbs', dst / 'nbs', symlinks=True)
    shutil.copytree(ROOT / 'kollm', dst / 'kollm', ignore=shutil.ignore_patterns('__pycache__'))

def _tree(path: Path) -> dict:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob('*'))
            if p.is_file() and '__pycache__' not in p.parts and '.ipynb_checkpoints' not in p.parts}

def _nbdev(cmd: str, cwd: Path):
    exe = Path(sys.executable).with_name(cmd)
    subprocess.run([str(exe) if exe.exists() else cmd], cwd=cwd, check=True, capture_output=True)

def test_package_matches_notebooks(tmp_path):
    "`nbdev_export` would not change kollm/: the package was exported from the current notebooks."
    _copy_project(tmp_path)
    _nbdev('nbdev_export', tmp_path)
    exported, committed = _tree(tmp_path / 'kollm'), _tree(ROOT / 'kollm')
    changed = sorted(k for k in exported.keys() | committed.keys() if exported.get(k) != committed.get(k))
    assert not changed, f"run nbdev_export and commit: these files differ from the notebooks' export: {changed}"

def test_notebooks_are_clean(tmp_path):
    "`nbdev_clean` would not change nbs/: no stray metadata, execution counts or widget state."
    _copy_project(tmp_path)
    _nbdev('nbdev_clean', tmp_path)
    cleaned, committed = _tree(tmp_path / 'nbs'), _tree(ROOT / 'nbs')
    changed = sorted(k for k in cleaned if cleaned[k] != committed.get(k))
    assert not changed, f"run nbdev_clean and commit: {changed}"

def test_readme_matches_index():
    "README.md is the rendering of nbs/index.ipynb."
    spec = importlib.util.spec_from_file_location('readme', ROOT / 'tools' / 'readme.py')
    readme = importlib.util.module_from_spec(spec); spec.loader.exec_module(readme)
    assert (ROOT / 'README.md').read_text(encoding='utf-8') == readme.render(), "run `python tools/readme.py` and commit"

def test_presets_ship_with_package():
    "The preset YAML files are package data, so `pip install kollm` (not only -e) carries them."
    setup = (ROOT / 'settings.ini').read_text()
    assert 'package_data = configs/*.yaml' in setup
    assert sorted(p.name for p in (ROOT / 'kollm' / 'configs').glob('model_*.yaml')) == \
        ['model_large.yaml', 'model_medium.yaml', 'model_small.yaml', 'model_tiny.yaml']

def test_torch_floor_is_the_one_checked():
    "settings.ini's `torch>=` floor is `MIN_TORCH`, the version `check_torch_version` enforces (chapter 00)."
    from configparser import ConfigParser
    from kollm.rope import MIN_TORCH
    ini = ConfigParser()
    ini.read(ROOT / 'settings.ini')
    floors = [r for r in ini['DEFAULT']['requirements'].split() if r.startswith('torch')]
    assert floors == [f'torch>={MIN_TORCH}'], (floors, MIN_TORCH)

SHARED = re.compile(r'\.\./shared\b|\bshared/data\b')  # the project's corpus, in a folder beside the repository

def test_nothing_reads_the_projects_corpus():
    "No chapter, test or fixture refers to the corpus beside the repository: a clone has only the embedded one."
    files = [*ROOT.glob('nbs/*.ipynb'), *(ROOT / 'nbs' / 'fixtures').rglob('*.py'), *ROOT.glob('tests/*.py'),
             *ROOT.glob('kollm/*.py')]
    assert len(files) > 20, files
    mentions = [f'{p.relative_to(ROOT)}:{i}' for p in files if p.name != Path(__file__).name
                for i, line in enumerate(p.read_text(encoding='utf-8').splitlines(), 1) if SHARED.search(line)]
    assert not mentions, f"only bench/ may read the project's corpus beside the repository: {mentions}"
    assert SHARED.search((ROOT / 'bench' / 'README.md').read_text(encoding='utf-8')), 'bench/README says what it reads'
