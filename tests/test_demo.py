"""`kollm_demo` never removes or overwrites what it did not write; one demo writes a folder at a time (each refusal
happens before any step runs). Then what chapters 09 and 09a state beyond their lesson, on a demo of a one-layer model
run once for the module: corpus and sizing edge cases, the step record's reruns, a second run that reuses everything,
a killed run that resumes bit for bit, and samples that go on past the first document.
"""
import json, os, shutil, subprocess, sys
from pathlib import Path

import pytest
import torch
from fastcore.test import test_fail as expect_fail
from safetensors.torch import load_file

from kollm.demo import Manifest, continue_documents, longest_copy, run_demo
from kollm.demo_sizing import auto_valid_fraction, corpus_files, demo_config, demo_steps
from kollm.eval import load_for_inference
from kollm.generate import generate_text
from kollm.run import list_checkpoints, load_train_config
from kollm.runtime import FolderLock, UserError, input_key, write_atomic

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


# ---------------------------------------------------------------- what chapters 09 and 09a state, checked here

def test_corpus_files_and_valid_share(tmp_path):
    files = corpus_files()
    assert len(files) == 11 and sum(len(f.read_text(encoding='utf-8')) for f in files) > 60_000
    assert corpus_files(f'{files[0]},{files[1]}') == files[:2]
    expect_fail(lambda: corpus_files(str(tmp_path / 'no' / 'such' / 'folder')), contains='no such file or folder')
    big = tmp_path / 'big.txt'
    with open(big, 'wb') as f: f.truncate(1_000_000_000)  # a sparse 1 GB file: only its size is read
    assert auto_valid_fraction([big]) == 0.001


def test_demo_config_follows_cpu_tiny():
    cfg = demo_config('runs/demo', vocab_size=2000, steps=40)
    assert cfg.model_config().hidden_size == 256
    assert load_train_config('cpu_tiny').model_config().num_layers == cfg.model_config().num_layers
    assert demo_steps(100, 4, 2048) == 10  # at least 10


def test_manifest_reruns_a_step_whose_inputs_or_outputs_changed(tmp_path):
    calls = []
    def make_greeting():
        calls.append(1); write_atomic(tmp_path / 'greeting.txt', '안녕하세요'); return dict(chars=5)
    run = lambda key, fresh=False: Manifest(tmp_path, fresh).run('greet', input_key(['greet', key]), ['greeting.txt'],
                                                                 make_greeting, log=lambda m: None)
    run(1); run(1)  # the second session reuses the first's
    run(2)  # another input
    (tmp_path / 'greeting.txt').unlink()
    run(2)  # a lost output
    run(2, fresh=True)
    assert len(calls) == 4


@pytest.fixture(scope='module')
def small_demo(tmp_path_factory):
    "A demo of a one-layer model for 6 steps, a checkpoint at each (the last three kept): seconds, not minutes."
    d = tmp_path_factory.mktemp('small-demo')
    model = d / 'model.yaml'
    model.write_text('model:\n  hidden_size: 32\n  num_layers: 1\n  num_heads: 2\n  num_kv_heads: 1\n'
                     '  intermediate_size: 64\n', encoding='utf-8')
    out = d / 'demo'
    summary = run_demo(out=out, minutes=30, steps=6, vocab_size=1000, preset=str(model), progress=False,
                       log=lambda m: None)
    return dict(out=out, model=model, summary=summary)


def test_summary_accounts_for_every_document_and_copy(small_demo):
    s, out = small_demo['summary'], small_demo['out']
    assert s['documents']['read'] == s['documents']['kept'] + sum(s['dropped'].values())
    train_text = (out / 'data' / 'train.txt').read_text(encoding='utf-8')
    for x in s['samples']:
        assert len(longest_copy(x['text'], train_text)) == len(x['copied'])
        assert x['copied'] in train_text and x['copied'] in x['text']


def test_a_sample_goes_on_past_the_first_document(small_demo):
    "A sample's first document is what `generate_text` writes from the same prompt and seed."
    out = small_demo['out']
    model, sp, _ = load_for_inference(list_checkpoints(out / 'run')[-1], out / 'tokenizer.model', 'cpu', 'fp32')
    sample = continue_documents(model, sp, ['대한민국은'], 60, seed=1)[0]
    first_document = '대한민국은' + generate_text(model, sp, '대한민국은', 60, seed=1)
    assert sample.startswith(first_document), (sample, first_document)


def _files_of(folder):  # a rewritten file is a new file (atomic writes rename one in): a new inode, a new time
    return {p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob('*')
            if p.is_file()}


def test_a_second_run_reuses_and_a_killed_one_resumes(small_demo):
    out, short = small_demo['out'], small_demo['summary']
    again_run = lambda log: run_demo(out=out, minutes=30, steps=6, vocab_size=1000, preset=str(small_demo['model']),
                                     progress=False, log=log)
    before = _files_of(out)
    again = again_run(lambda m: None)
    assert again['reused'] == ['prepare', 'tokenizer', 'tokenize', 'train', 'eval', 'generate', 'plot']
    assert (again['val_ppl'], again['samples']) == (short['val_ppl'], short['samples'])
    after = _files_of(out)
    assert sorted(f for f in after if before.get(f) != after[f]) == ['.lock', 'summary.json']  # nothing else rewritten
    # killed between two checkpoints: the last is missing and the training record unfinished
    last = out / 'run' / 'checkpoints' / 'step-0000006'
    finished = load_file(last / 'model.safetensors')
    shutil.rmtree(last)
    book = json.loads((out / 'demo.json').read_text())
    book['steps']['train']['done'] = False
    (out / 'demo.json').write_text(json.dumps(book))
    log = []
    again_run(log.append)
    assert log[3].startswith('train: resuming within its budget of'), log
    assert log[4] == f'resumed from {out}/run/checkpoints/step-0000005 at step 5', log
    resumed = load_file(last / 'model.safetensors')
    assert [k for k in finished if not torch.equal(finished[k], resumed[k])] == []
