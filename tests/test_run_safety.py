"""`kollm_train` and its run folder, tried as a careful user would (issue 26: rows 2, 3, 7, 9, 12, 13, 14, 15).

Tiny runs (1 layer, 4 steps) on token shards made here from the law text konlpy ships. Each test fails on the
trainer before issue 26 (a second run mixed into the first, a bare `SafetensorError`, a Python traceback, ...).

Bad inputs tried → the one line `kollm_train` prints on stderr (exit status 2), `OUT` being the run folder:

| what the user does | what `kollm_train` prints |
|---|---|
| `kollm_train` again on `OUT` (a finished run), no `--resume` | `OUT holds another run (checkpoints/step-0000002 and 2 more): pass --resume to continue it, --restart to move it aside and start over, or choose a new out_dir` |
| `--restart` on `OUT` (exit 0) | `--restart: the earlier run in OUT was moved to OUT-before-20261207-231501; starting over` |
| `out_dir` a folder holding `thesis.tex`, `figures/` | `OUT holds files kollm_train did not write (figures, thesis.tex); nothing was changed: choose a new or empty out_dir (a typo?), or move those files out` |
| a second `kollm_train --resume` while one runs | `the run folder OUT is in use by process 12345: wait for it to end (or stop it), or choose another folder` |
| `--resume`, newest `model.safetensors` cut short (exit 0) | warning `checkpoint OUT/checkpoints/step-0000004 is damaged: OUT/checkpoints/step-0000004/model.safetensors has 500 bytes, its record says 27,968; using an older one`, then `resumed from OUT/checkpoints/step-0000002 at step 2` |
| `--resume`, every `state.pt` empty | `no checkpoint in OUT/checkpoints is intact (each is named in a warning above): copy an intact one back, or run with --restart instead of --resume to start over` |
| a full disk while a checkpoint is written | `no space left on the device writing OUT/checkpoints/step-0000002: free some space and run the command again` |
| a Muon run resumed with `optimizer=adamw` | `OUT/checkpoints/step-0000002 was saved by an optimizer=muon run and this one asks for optimizer=adamw: resume with optimizer=muon, or start a new run (another out_dir) with init_from=OUT/checkpoints/step-0000002 to change optimizers` |
| `--resume --average 5`, 2 checkpoints (exit 0) | `averaged the last 2 checkpoints (--average 5, but the run has 2) into OUT/averaged: step-0000002, step-0000004` |
| `--average -1` | `--average is how many checkpoints to average (0: none), got -1` |
| `--resume --restart` | `--resume continues the run in out_dir and --restart starts over: pick one` |
| `--max_minutes -5` | `cpu_tiny: max_minutes must be a finite number in [0, inf), got -5` |
| `--pause_after -1` | `--pause_after is minutes ≥ 0 (0: no pause), got -1` |
| `--config bad.yaml` holding `42` | `bad.yaml: a training file is a mapping with `model:` and `training:` sections; this one holds a number (42)` |
| … holding a list | `bad.yaml: a training file is a mapping with `model:` and `training:` sections; this one holds a list (['lr', 3])` |
| … holding `hello world` | `bad.yaml: a training file is a mapping with `model:` and `training:` sections; this one holds a line of text (hello world)` |
| … holding `training: 5` | `bad.yaml: `training:` must be a mapping of training fields, got 5` |
| … holding `model: 5` | `bad.yaml: model must be a preset name, a YAML path or a mapping of model fields, got 5` |
| … with an unclosed `[` | `bad.yaml: line 4: not valid YAML (expected ',' or ']', but got '<stream end>')` |
| … with byte 0xff | `bad.yaml is not UTF-8 text (byte 21); it looks like binary data or an unknown encoding. Convert it first, e.g. iconv -f CP949 -t UTF-8 bad.yaml > bad.utf8.yaml` |
| `--overrides warmup_steps=abc` | `cpu_tiny: warmup_steps must be an integer ≥ 0, got 'abc'` |
| `lr=abc` / `lr=.inf` / `lr=-1` | `cpu_tiny: lr must be a finite number in [0, inf), got 'abc'` / `got inf` / `got -1` |
| `lr=0` with cpu_tiny's Muon (AdamW takes lr=0: a frozen run) | `cpu_tiny: optimizer=muon needs lr > 0 (Muon's own rate is set relative to it), got 0` |
| `min_lr=-1e-4` / `min_lr=1` | `cpu_tiny: min_lr must be a finite number in [0, inf), got '-1e-4'` / `cpu_tiny: need min_lr ≤ lr, got 1.0 and 0.002` |
| `max_steps=0`, `batch_size=2.5`, `keep_checkpoints=0` | `cpu_tiny: max_steps must be an integer ≥ 1, got 0` (and likewise) |
| `beta2=1`, `eps=0`, `grad_clip=.nan` | `cpu_tiny: beta2 must be a finite number in [0, 1), got 1` (and likewise) |
| `compile=maybe` | `cpu_tiny: compile must be true or false, got 'maybe'` |
| `model.dropout=1` / `model.hidden_size=abc` | `cpu_tiny: dropout must be in [0, 1), got 1` / `cpu_tiny: hidden_size must be a positive integer, got 'abc'` |
| `optimizer=sgd` | `cpu_tiny: optimizer must be adamw or muon, got 'sgd'` |
| `model=nosuch.yaml` | `cpu_tiny: no model config at nosuch.yaml` |
| `lr` / `lr=[1` | `override 'lr' is not key=value` / `override 'lr=[1': '[1' is not a YAML value` |

Each line is printed as `kollm_train: error: <message>`; `KOLLM_DEBUG=1` shows the traceback instead.
"""
import errno, json, os, shutil, signal, subprocess, sys, time, warnings
from pathlib import Path
from unittest import mock

import pytest
import torch

from kollm.sources import embedded_corpus
from kollm.run import list_checkpoints, load_checkpoint_model, read_metrics
from kollm.tokens import tokenize_text, train_tokenizer
from kollm.train import kollm_train

TINY = ['model.hidden_size=32', 'model.num_layers=1', 'model.num_heads=2', 'model.num_kv_heads=1',
        'model.intermediate_size=64', 'model.max_seq_length=64']
RECORD = 'record.json'  # each checkpoint's record of its files
ENV = {**os.environ, 'TQDM_DISABLE': '1', 'OMP_NUM_THREADS': '1'}


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    "A 1,000-piece tokenizer and train/valid shards of the embedded corpus."
    d = tmp_path_factory.mktemp('data')
    docs = [f.read_text(encoding='utf-8').strip() for f in embedded_corpus()]
    (d / 'train.txt').write_text('\n\n'.join(docs[1:]) + '\n', encoding='utf-8')
    (d / 'valid.txt').write_text(docs[0] + '\n', encoding='utf-8')
    train_tokenizer([d / 'train.txt'], d / 'tok.model', vocab_size=1000, progress=False)
    for split in ('train', 'valid'): tokenize_text(d / f'{split}.txt', d / 'tok.model', d / 'tokens', progress=False)
    return d


def overrides(data: Path, out: Path, *extra) -> list[str]:
    "A 4-step run of the tiny model into `out`, with a checkpoint every 2 steps."
    return [f"tokens_dir={data / 'tokens'}", f"tokenizer={data / 'tok.model'}", f'out_dir={out}', 'model.vocab_size=1000',
            *TINY, 'seq_len=32', 'batch_size=2', 'grad_accum=1', 'max_steps=4', 'warmup_steps=1', 'save_steps=2',
            'eval_steps=2', 'eval_batches=1', 'log_steps=1', 'device=cpu', 'precision=fp32', 'seed=0',
            'compile=false', *extra]


def warned(err: str) -> list[str]:
    "The warnings a console script printed, one line each (`kollm_train: warning: …`)."
    return [line for line in err.splitlines() if line.startswith('kollm_train: warning: ')]


def train_cli(capsys, *args, **flags) -> tuple[int, str, str]:
    "`kollm_train` called in this process as its console script runs it: (exit status, stdout, stderr)."
    capsys.readouterr()
    try:
        kollm_train(overrides=list(args), config=flags.pop('config', 'cpu_tiny'), quiet=True, **flags)
        code = 0
    except SystemExit as e: code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder: Path) -> dict:
    "Every file under `folder` but the lock file (the trainer's own): its bytes and modification time."
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob('*')) if p.is_file() and p.name != '.lock'}


def one_line(err: str) -> str:
    "The single error line a user error must print."
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith('kollm_train: error: '), err
    return lines[0]


@pytest.fixture
def run(data, tmp_path, capsys) -> Path:
    "A finished 4-step run (checkpoints at steps 2 and 4) in its own folder."
    out = tmp_path / 'run'
    code, _, err = train_cli(capsys, *overrides(data, out))
    assert code == 0, err
    return out


# row 2: a second run without --resume
def test_rerun_without_resume_is_refused(data, run, capsys):
    before = snapshot(run)
    code, _, err = train_cli(capsys, *overrides(data, run, 'max_steps=6'))
    assert code == 2 and 'pass --resume to continue it' in one_line(err) and 'new out_dir' in err, err
    assert snapshot(run) == before  # nothing rewritten, not even config.yaml


def test_restart_moves_the_earlier_run_aside(data, run, capsys):
    before = {k: v[0] for k, v in snapshot(run).items()}
    code, out, err = train_cli(capsys, *overrides(data, run, 'max_steps=2', 'seed=1'), restart=True)
    assert code == 0, err
    aside = [p for p in run.parent.iterdir() if p.name.startswith('run-before-')]
    assert len(aside) == 1 and f'moved to {aside[0]}' in out, out
    assert {k: v[0] for k, v in snapshot(aside[0]).items()} == before  # moved whole, byte for byte
    assert [p.name for p in list_checkpoints(run)] == ['step-0000002']
    assert [r['step'] for r in read_metrics(run)] == sorted(r['step'] for r in read_metrics(run))


def test_foreign_files_are_untouched(data, tmp_path, capsys):
    mine = tmp_path / 'thesis'
    (mine / 'figures').mkdir(parents=True)
    (mine / 'thesis.tex').write_text('여섯 달의 작업', encoding='utf-8')
    (mine / 'figures' / 'loss.png').write_bytes(bytes(range(256)))
    (mine / 'config.yaml').write_text('# my own notes\n', encoding='utf-8')
    before = snapshot(mine)
    code, _, err = train_cli(capsys, *overrides(data, mine))
    assert code == 2 and 'holds files kollm_train did not write (config.yaml, figures, thesis.tex)' in one_line(err), err
    assert snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == ['config.yaml', 'figures', 'thesis.tex']


def test_a_users_own_config_yaml_is_theirs_and_kollms_own_is_rewritten(data, tmp_path, capsys):
    "A config.yaml alone in a new out_dir: the user's (say, the file given to --config) is refused untouched; one a "
    "kollm run wrote before dying at its start is the run's own, and the new run writes over it."
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'config.yaml').write_text('model:\n  hidden_size: 32  # my settings, kept nowhere else\n', encoding='utf-8')
    before = snapshot(out)
    code, _, err = train_cli(capsys, *overrides(data, out, 'max_steps=1'))
    assert code == 2 and 'did not write (config.yaml)' in one_line(err), err
    assert snapshot(out) == before
    from kollm.run import RUN_CONFIG_HEAD
    (out / 'config.yaml').write_text(RUN_CONFIG_HEAD + 'model: {}\n', encoding='utf-8')  # a start that died early
    code, _, err = train_cli(capsys, *overrides(data, out, 'max_steps=1'))
    assert code == 0 and list_checkpoints(out), err
    assert (out / 'config.yaml').read_text(encoding='utf-8').startswith(RUN_CONFIG_HEAD + 'model:\n  vocab_size')


def test_a_workspace_holding_the_runs_shards_is_used_and_its_other_files_kept(data, tmp_path, capsys):
    ws = tmp_path / 'workspace'  # as the demo lays it out: text, tokenizer and shards beside the run
    shutil.copytree(data / 'tokens', ws / 'tokens')
    shutil.copy(data / 'tok.model', ws / 'tokenizer.model')
    (ws / 'notes.md').write_text('말뭉치 메모', encoding='utf-8')
    before = snapshot(ws)
    code, _, err = train_cli(capsys, *overrides(data, ws, f"tokens_dir={ws / 'tokens'}", f"tokenizer={ws / 'tokenizer.model'}"))
    assert code == 0, err
    assert {k: v for k, v in snapshot(ws).items() if k in before} == before and list_checkpoints(ws)


def test_rotation_removes_only_this_runs_checkpoints(data, run, capsys):
    other = run / 'checkpoints' / 'step-0000001'  # another run's checkpoint, older than all of this run's
    shutil.copytree(run / 'checkpoints' / 'step-0000002', other)
    record = json.loads((other / RECORD).read_text())
    (other / RECORD).write_text(json.dumps({**record, 'run': 'someone-else'}))
    planted = snapshot(other)
    code, _, err = train_cli(capsys, *overrides(data, run, 'max_steps=8', 'keep_checkpoints=1'), resume=True)
    assert code == 0, err
    assert [p.name for p in list_checkpoints(run)] == ['step-0000001', 'step-0000008']
    assert snapshot(other) == planted


# row 3: two writers
def test_second_writer_is_refused_at_once_and_a_killed_holder_is_not(data, tmp_path, capsys):
    out = tmp_path / 'shared'
    exe = Path(sys.executable).with_name('kollm_train')
    holder = subprocess.Popen([str(exe if exe.exists() else 'kollm_train'), '--config', 'cpu_tiny', '--quiet',
                               '--overrides', *overrides(data, out, 'max_steps=100000')],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and holder.poll() is None and not list_checkpoints(out): time.sleep(0.1)
        assert holder.poll() is None and list_checkpoints(out), holder.stderr.read().decode()[-2000:]
        t = time.perf_counter()
        code, _, err = train_cli(capsys, *overrides(data, out, 'max_steps=2'), resume=True)
        assert code == 2 and f'in use by process {holder.pid}' in one_line(err), err
        assert time.perf_counter() - t < 30  # refused at once, not after loading data or waiting
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    code, out_text, err = train_cli(capsys, *overrides(data, out, 'max_steps=2'), resume=True)
    assert code == 0 and 'resumed from' in out_text, err  # the killed holder's lock went with it


def test_under_torchrun_a_refusal_stops_every_rank(data, run, tmp_path):
    "Rank 0 alone checks and locks the folder; the other rank learns its verdict instead of waiting for it forever."
    exe = Path(sys.executable).with_name('kollm_train')
    t = time.perf_counter()
    done = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           str(exe if exe.exists() else shutil.which('kollm_train')), '--config', 'cpu_tiny', '--quiet',
                           '--overrides', *overrides(data, run, 'max_steps=6')],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode != 0 and 'holds another run' in done.stderr, done.stderr[-3000:]
    assert f'rank 0 could not use the run folder {run}' in done.stderr, done.stderr[-3000:]
    assert not (run / 'checkpoints' / 'step-0000006').exists() and time.perf_counter() - t < 200


# row 7: damaged checkpoints
@pytest.mark.parametrize('damage', ['cut weights', 'empty state'])
def test_damaged_newest_checkpoint_falls_back(data, run, capsys, damage):
    newest = run / 'checkpoints' / 'step-0000004'
    if damage == 'cut weights':
        with open(newest / 'model.safetensors', 'r+b') as f: f.truncate(500)
    else: (newest / 'state.pt').write_bytes(b'')
    bad = newest / ('model.safetensors' if damage == 'cut weights' else 'state.pt')
    if damage == 'cut weights':
        with pytest.warns(UserWarning, match='model.safetensors has 500 bytes'):
            model = load_checkpoint_model(newest)  # eval, generate and export: the intact one before it
        assert model.cfg.num_layers == 1
    code, out, err = train_cli(capsys, *overrides(data, run, 'max_steps=6'), resume=True)
    assert code == 0, err
    assert any(str(bad) in line for line in warned(err)), err  # a one-line warning naming the damaged file
    assert f"resumed from {run / 'checkpoints' / 'step-0000002'} at step 2" in out, out


def test_rotation_keeps_the_checkpoint_just_saved_below_a_damaged_newer_one(data, run, capsys):
    with open(run / 'checkpoints' / 'step-0000004' / 'model.safetensors', 'r+b') as f: f.truncate(500)
    code, out, err = train_cli(capsys, *overrides(data, run, 'max_steps=3', 'save_steps=3', 'keep_checkpoints=1'),
                               resume=True)
    assert any('step-0000004' in line for line in warned(err)), err
    assert code == 0 and f"checkpoint {run / 'checkpoints' / 'step-0000003'}" in out, err + out
    assert [p.name for p in list_checkpoints(run)] == ['step-0000003', 'step-0000004']  # 4 left as it was found


def test_checkpoints_from_before_records_still_load_and_their_damage_is_found(data, run, capsys):
    for ckpt in list_checkpoints(run): (ckpt / RECORD).unlink()
    with open(run / 'checkpoints' / 'step-0000004' / 'state.pt', 'r+b') as f: f.truncate(300)
    code, out, err = train_cli(capsys, *overrides(data, run, 'max_steps=6'), resume=True)
    assert any('state.pt is cut short' in line for line in warned(err)), err
    assert code == 0 and 'at step 2' in out, err


def test_no_intact_checkpoint_is_one_error(data, run, capsys):
    for ckpt in list_checkpoints(run): (ckpt / 'state.pt').write_bytes(b'')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        code, _, err = train_cli(capsys, *overrides(data, run), resume=True)
    assert code == 2 and 'no checkpoint in' in one_line(err) and 'is intact' in err, err


def test_half_deleted_step_folders_are_cleaned_and_foreign_ones_kept(data, run, capsys):
    root = run / 'checkpoints'
    (root / 'step-0000006').mkdir()  # empty
    (root / 'step-0000008').mkdir()  # a deletion killed half-way: the config left, the weights gone
    shutil.copy(root / 'step-0000004' / 'config.yaml', root / 'step-0000008')
    (root / 'step-0000010').mkdir()  # the user's, whatever its name
    (root / 'step-0000010' / 'notes.txt').write_text('keep me')
    code, _, err = train_cli(capsys, *overrides(data, run), resume=True)
    assert code == 0, err
    assert sorted(p.name for p in root.iterdir()) == ['step-0000002', 'step-0000004', 'step-0000010']


# row 9: metrics of a dead session
def test_cut_metrics_line_is_trimmed_on_resume_without_checkpoint(data, tmp_path, capsys):
    out = tmp_path / 'early'
    out.mkdir()
    (out / 'metrics.jsonl').write_text('{"step": 0, "val_loss": 6.1}\n{"step": 1, "loss": 6.0}\n{"step": 2, "lo')
    code, _, err = train_cli(capsys, *overrides(data, out, 'max_steps=2'), resume=True)
    assert code == 0, err
    steps = [r['step'] for r in read_metrics(out)]
    assert steps == sorted(steps) and steps[0] == 0 and steps.count(0) == 1, steps  # the dead session's rows gone


def test_metrics_are_strict_json(data, tmp_path, capsys):
    out = tmp_path / 'nan'
    with pytest.raises(RuntimeError, match='non-finite losses in a row'):  # a bug or a recipe, not a user's typo
        train_cli(capsys, *overrides(data, out, 'lr=1e30', 'min_lr=1e30', 'warmup_steps=0', 'grad_clip=0',
                                     'max_nonfinite=2'))
    def refuse(token): raise ValueError(f'{token} is not JSON')
    rows = [json.loads(line, parse_constant=refuse) for line in (out / 'metrics.jsonl').read_text().splitlines()]
    assert any(None in r.values() for r in rows), rows  # the NaN gradient norm is there, as null


# row 12: a full disk while a checkpoint is written
def test_full_disk_during_a_checkpoint_is_one_line(data, tmp_path, capsys):
    def full(*a, **k): raise RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos 4160 vs 4048')
    usage = shutil.disk_usage(tmp_path)
    with mock.patch('kollm.run.torch.save', full), \
         mock.patch('kollm.runtime.shutil.disk_usage', lambda p: usage._replace(free=4096)):
        code, _, err = train_cli(capsys, *overrides(data, tmp_path / 'full'))
    line = one_line(err)
    assert code == 2 and f"no space left on the device writing {tmp_path / 'full' / 'checkpoints' / 'step-0000002'}" in line
    assert not list((tmp_path / 'full' / 'checkpoints').iterdir())  # nothing half-written


# rows 13 and 15: configs, overrides and flags
BAD_FILES = {
    'a YAML file holding 42': (b'42\n', 'is a mapping with `model:` and `training:` sections; this one holds a number'),
    'a YAML list': (b'- lr\n- 3\n', 'this one holds a list'),
    '`training: 5`': (b'training: 5\n', '`training:` must be a mapping of training fields, got 5'),
    '`hello world`': (b'hello world\n', 'this one holds a line of text (hello world)'),
    'an unclosed bracket (a YAML syntax error)': (b'training:\n  lr: 1e-3\n  max_steps: [2\n', 'line 4: not valid YAML'),
    'byte 0xff in the file': (b'training:\n  lr: 1e-3 \xff\n', 'is not UTF-8 text (byte 21)'),
}
BAD_OVERRIDES = {
    'warmup_steps=abc': 'warmup_steps must be an integer ≥ 0, got \'abc\'',
    'lr=abc': "lr must be a finite number in [0, inf), got 'abc'",
    'lr=.inf': 'lr must be a finite number in [0, inf), got inf',
    'lr=-1': 'lr must be a finite number in [0, inf), got -1',
    'lr=0': 'optimizer=muon needs lr > 0',
    'min_lr=-1e-4': "min_lr must be a finite number in [0, inf), got '-1e-4'",
    'max_steps=0': 'max_steps must be an integer ≥ 1, got 0',
    'batch_size=2.5': 'batch_size must be an integer ≥ 1, got 2.5',
    'beta2=1': 'beta2 must be a finite number in [0, 1), got 1',
    'grad_clip=.nan': 'grad_clip must be a finite number in [0, inf), got nan',
    'compile=maybe': "compile must be true or false, got 'maybe'",
    'model.dropout=1': 'dropout must be in [0, 1), got 1',
    'lr': "override 'lr' is not key=value",
}


@pytest.mark.parametrize('name', BAD_FILES)
def test_bad_config_file_is_one_line(data, tmp_path, capsys, name):
    content, message = BAD_FILES[name]
    (tmp_path / 'bad.yaml').write_bytes(content)
    code, _, err = train_cli(capsys, config=str(tmp_path / 'bad.yaml'))
    assert code == 2 and message in one_line(err) and str(tmp_path / 'bad.yaml') in err, err


@pytest.mark.parametrize('override', BAD_OVERRIDES)
def test_bad_override_is_one_line(data, tmp_path, capsys, override):
    code, _, err = train_cli(capsys, *overrides(data, tmp_path / 'o'), override)
    assert code == 2 and BAD_OVERRIDES[override] in one_line(err), err
    assert not (tmp_path / 'o').exists()  # refused before anything was written


BAD_FLAGS = {'--average -1': (dict(average=-1), 'how many checkpoints to average (0: none), got -1'),
             '--resume --restart': (dict(resume=True, restart=True), '--resume continues the run'),
             '--max_minutes -5': (dict(max_minutes=-5), 'max_minutes must be a finite number in [0, inf), got -5')}


@pytest.mark.parametrize('flags', BAD_FLAGS)
def test_bad_flag_is_one_line(data, tmp_path, capsys, flags):
    code, _, err = train_cli(capsys, *overrides(data, tmp_path / 'f'), **BAD_FLAGS[flags][0])
    assert code == 2 and BAD_FLAGS[flags][1] in one_line(err), err


# row 14: a Muon run resumed with AdamW
def test_muon_run_resumed_with_adamw_is_one_line(data, tmp_path, capsys):
    out = tmp_path / 'muon'
    code, _, err = train_cli(capsys, *overrides(data, out, 'max_steps=2', 'optimizer=muon'))
    assert code == 0, err
    code, _, err = train_cli(capsys, *overrides(data, out, 'max_steps=4', 'optimizer=adamw'), resume=True)
    assert code == 2 and 'was saved by an optimizer=muon run' in one_line(err) and 'resume with optimizer=muon' in err


# row 15: --average says what it averaged
def test_average_says_how_many_it_averaged(data, run, capsys):
    code, out, err = train_cli(capsys, *overrides(data, run), resume=True, average=5)
    assert code == 0, err
    assert 'averaged the last 2 checkpoints (--average 5, but the run has 2)' in out, out
    assert (run / 'averaged' / 'model.safetensors').is_file()
