"""Every console script, run as a user runs it: a subprocess on the Korean law text konlpy ships, at tiny sizes.

One prepared corpus, tokenizer, token shards and trained run are shared by the whole module (`run`); each test
checks an exit status and something the command must have produced (files, or a number in what it printed).
"""
import json, math, os, re, runpy, shutil, subprocess, sys
from configparser import ConfigParser
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from fastcore.script import anno_parser

from kollm.sources import embedded_corpus
from kollm.config import load_train_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ['kollm_smoke', 'kollm_prepare', 'kollm_tokenizer', 'kollm_tokenize', 'kollm_train', 'kollm_plan',
           'kollm_eval', 'kollm_generate', 'kollm_export', 'kollm_import', 'kollm_demo', 'kollm_doctor',
           'kollm_lm_eval', 'kollm_sft', 'kollm_chat', 'kollm_serve']
VOCAB = 1000
TINY = ['model.hidden_size=32', 'model.num_layers=1', 'model.num_heads=2', 'model.num_kv_heads=1',
        'model.intermediate_size=64', 'model.max_seq_length=64']  # a model that trains in a second
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1',
       'TQDM_DISABLE': '1', 'OMP_NUM_THREADS': '2'}  # nothing is downloaded: a test that tried would fail

def script(name: str) -> str:
    "The console script installed beside this Python (the venv's bin/), else the one on PATH."
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else shutil.which(name) or name

def cli(name: str, *args, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    "Run a console script; with `check`, fail with its output unless it exits 0."
    done = subprocess.run([script(name), *map(str, args)], capture_output=True, text=True, env=ENV, timeout=timeout)
    if check: assert done.returncode == 0, f"{name} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done

def started(name: str, *args) -> subprocess.Popen:
    "A console script started in the background (read it with `finished`)."
    return subprocess.Popen([script(name), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)

def finished(proc: subprocess.Popen, timeout: float = 300) -> str:
    "What a background script printed, once it has exited 0."
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"{proc.args[0]} exited {proc.returncode}\n{out}\n{err}"
    return out

def number(pattern: str, text: str) -> float:
    "The number the regex `pattern` captures in `text` (commas removed), or a failure that shows the text."
    m = re.search(pattern, text)
    assert m, f"no {pattern!r} in:\n{text}"
    return float(m.group(1).replace(',', ''))

def train_args(d: Path, *extra) -> list:
    "`kollm_train` on the shared shards with the tiny model, for 4 steps with a checkpoint every 2."
    return ['--config', 'cpu_tiny', '--quiet', '--overrides', f"tokens_dir={d / 'tokens'}",
            f"tokenizer={d / 'tok.model'}", f"out_dir={d / 'run'}", f'model.vocab_size={VOCAB}', *TINY, 'seq_len=64',
            'batch_size=4', 'max_steps=4', 'warmup_steps=1', 'save_steps=2', 'eval_steps=2', 'eval_batches=1',
            'log_steps=1', 'device=cpu', 'precision=fp32', 'seed=0',
            'compile=false', *extra]  # cpu_tiny compiles; 4 steps would spend their time compiling (06 tests it)

@pytest.fixture(scope='module')
def background(tmp_path_factory) -> dict:
    "The commands that need nothing prepared, started at once so they run beside the pipeline."
    d = tmp_path_factory.mktemp('background')
    model = d / 'model.yaml'  # the smallest decoder: the demo sets its vocabulary, window and dropout
    model.write_text('model:\n  hidden_size: 32\n  num_layers: 1\n  num_heads: 2\n  num_kv_heads: 1\n'
                     '  intermediate_size: 64\n', encoding='utf-8')
    return dict(dir=d, smoke=started('kollm_smoke', '--steps', 3),
                plan=started('kollm_plan', '--model', 'tiny', '--seq_len', 256, '--memory_gb', 4,
                             '--effective_batch', 16),
                demo=started('kollm_demo', '--out', d / 'demo', '--steps', 4, '--minutes', 0, '--vocab_size', VOCAB,
                             '--preset', model, '--quiet'),
                doctor=started('kollm_doctor', '--device', 'cpu', '--no_compile', '--quiet'))

@pytest.fixture(scope='module')
def run(tmp_path_factory, background) -> dict:
    "The embedded corpus prepared, a tokenizer, token shards and a 4-step run, made once by the console scripts."
    d = tmp_path_factory.mktemp('cli')
    out = {'dir': d}
    out['prepare'] = cli('kollm_prepare', ','.join(map(str, embedded_corpus())), '--out_dir', d / 'data',
                         '--valid_fraction', 0.2, '--workers', 0, '--quiet')
    out['tokenizer'] = cli('kollm_tokenizer', '--inputs', d / 'data' / 'train.txt', '--model', d / 'tok.model',
                           '--valid', d / 'data' / 'valid.txt', '--vocab_size', VOCAB, '--threads', 1, '--quiet')
    out['tokenize'] = cli('kollm_tokenize', '--inputs', f"{d / 'data' / 'train.txt'},{d / 'data' / 'valid.txt'}",
                          '--tokenizer', d / 'tok.model', '--out_dir', d / 'tokens', '--threads', 1, '--quiet')
    out['train'] = cli('kollm_train', *train_args(d), '--average', 2)
    out['ckpt'] = d / 'run' / 'checkpoints' / 'step-0000004'
    return out

# ---------------------------------------------------------------- the pipeline, step by step
def test_prepare(run):
    "The report's counts are the files' own: documents kept = documents written, read = kept + dropped, per source."
    from collections import Counter
    from kollm.tokens import iter_documents
    d = run['dir'] / 'data'
    report = json.loads((d / 'report.json').read_text(encoding='utf-8'))
    total = Counter()
    for counts in report['sources'].values(): total.update(counts)
    written = {s: sum(1 for _ in iter_documents(d / f'{s}.txt')) for s in ('train', 'valid')}
    assert (total['train_docs'], total['valid_docs']) == (written['train'], written['valid']), (total, written)
    assert total['kept_docs'] == written['train'] + written['valid'] > 0, total
    assert total['read_docs'] == total['kept_docs'] + sum(n for k, n in total.items() if k.startswith('drop:')), total
    assert (report['files_with_problems'], report['problems']) == (0, []), report
    assert 0.1 < written['valid'] / (written['train'] + written['valid']) < 0.3, written  # --valid_fraction 0.2

def test_tokenizer(run):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(run['dir'] / 'tok.model'))
    assert (sp.vocab_size(), sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (VOCAB, 0, 1, 2, 3)
    printed = run['tokenizer'].stdout
    assert number(r'([\d.]+) char', printed) > 1, printed  # Korean characters per token on valid

def test_tokenize(run):
    for split in ('train', 'valid'):
        meta = json.loads((run['dir'] / 'tokens' / f'{split}.json').read_text())
        printed = number(rf'{split}: ([\d,]+) documents', run['tokenize'].stdout)
        assert meta['documents'] == printed > 0, (meta['documents'], printed)
        assert number(rf'{split}: [\d,]+ documents, ([\d,]+) tokens', run['tokenize'].stdout) == meta['tokens']

def test_train(run):
    printed, d = run['train'].stdout, run['dir'] / 'run'
    assert math.isfinite(number(r'step 4: validation loss ([\d.]+)', printed)), printed
    assert sorted(p.name for p in (d / 'checkpoints').iterdir()) == ['step-0000002', 'step-0000004']
    assert (d / 'averaged' / 'model.safetensors').is_file() and 'averaged the last 2' in printed
    steps = [json.loads(l)['step'] for l in (d / 'metrics.jsonl').read_text().splitlines() if 'loss' in json.loads(l)]
    assert steps == [1, 2, 3, 4], steps

def test_train_resume_of_a_finished_run(run):
    done = cli('kollm_train', *train_args(run['dir']), '--resume', check=False)
    assert done.returncode == 0, done.stderr
    assert 'step 4' in done.stdout, done.stdout

FAKE_CLOCK = """import sys, itertools
import kollm.train as kt
ticks = itertools.count()
real_train = kt.train
def train(cfg, *args, **kwargs):  # every reading of the clock is 10 ms later: the budget buys the same steps anywhere
    return real_train(cfg, *args, clock=lambda: next(ticks) * 0.01, **kwargs)
kt.train = train
sys.exit(kt.kollm_train())
"""

def test_train_time_budget(run, tmp_path):
    "`--max_minutes`: the schedule is fitted to the budget, so the run ends annealed and evaluated, not cut off."
    d = run['dir'] / 'run-budget'
    args = [a for a in train_args(run['dir'], f'out_dir={d}', 'schedule=wsd', 'save_steps=100000',
                                  'eval_steps=100000') if a != 'max_steps=4']  # cpu_tiny's own 2,000 steps stand
    minutes = 0.05  # 3 s of a fake clock that ticks 10 ms a reading, whatever the machine's speed
    runner = tmp_path / 'kollm_train_fake_clock.py'  # a script file: call_parse reads sys.argv only from a module
    runner.write_text(FAKE_CLOCK, encoding='utf-8')
    done = subprocess.run([sys.executable, str(runner), *map(str, args), '--max_minutes', str(minutes)],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f'the time budget of {minutes} min is spent' in done.stdout, done.stdout
    saved = load_train_config(str(d / 'config.yaml'))
    assert (saved.max_minutes, saved.max_steps) == (minutes, 10**9), saved  # the budget lifted the config's step limit
    rows = [json.loads(l) for l in (d / 'metrics.jsonl').read_text().splitlines()]
    steps, evals = [r for r in rows if 'lr' in r], [r for r in rows if 'val_loss' in r]
    last = steps[-1]
    assert 10 < last['step'] == last['horizon'] < 10**9, last
    assert 2.5 < last['seconds'] <= 60 * minutes, last  # the fake seconds: used, not overrun
    tiny = load_train_config('cpu_tiny')
    assert last['lr'] < tiny.min_lr + 0.25 * (tiny.lr - tiny.min_lr), steps[-5:]  # well into the cooldown
    assert evals[-1]['step'] == last['step'], evals  # and evaluated at its end
    assert [c.name for c in (d / 'checkpoints').iterdir()] == [f"step-{last['step']:07d}"]

def test_plan(background):
    printed = finished(background['plan'])
    assert number(r'tiny: ([\d.]+)M parameters', printed) > 1, printed
    assert number(r'micro-batch (\d+) ×', printed) >= 1, printed
    assert number(r'total\s+([\d.]+) GiB', printed) < 4, printed
    assert number(r'([\d,.]+) hours', printed) > 0, printed

def evaluate(ckpt, out: Path) -> tuple[str, dict]:
    "`kollm_eval` of a checkpoint on the shared valid split: what it printed and the JSON it wrote."
    printed = cli('kollm_eval', '--ckpt', ckpt, '--text', out.parent / 'data' / 'valid.txt', '--json', out,
                  '--device', 'cpu', '--precision', 'fp32', '--quiet').stdout
    return printed, json.loads(out.read_text())

@pytest.fixture(scope='module')
def evaluated(run) -> tuple[str, dict]:
    return evaluate(run['ckpt'], run['dir'] / 'eval.json')

def test_eval(evaluated):
    printed, result = evaluated
    assert result['documents'] > 0 and math.isfinite(result['ppl']), result
    assert number(r'perplexity ([\d.]+)', printed) == pytest.approx(result['ppl'], abs=0.01), printed

def test_generate(run):
    printed = cli('kollm_generate', '--ckpt', run['ckpt'], '--prompt', '대한민국', '--max_new_tokens', 8, '--seed', 0,
                  '--device', 'cpu', '--precision', 'fp32').stdout
    assert printed.startswith('대한민국') and len(printed.strip()) > len('대한민국'), printed

def test_generate_refuses_a_prompt_longer_than_the_context(run):
    done = cli('kollm_generate', '--ckpt', run['ckpt'], '--prompt', ' '.join(['대한민국'] * 64), '--device', 'cpu',
               check=False)
    assert done.returncode != 0, done.stdout
    assert "context is 64: shorten it" in done.stderr and 'Traceback' not in done.stderr, done.stderr

@pytest.fixture(scope='module')
def exported(run) -> Path:
    d = run['dir']
    printed = cli('kollm_export', '--ckpt', run['ckpt'], '--out', d / 'hf', '--gguf', '--quiet').stdout
    assert f"wrote {d / 'hf'}" in printed and f"wrote {d / 'hf.gguf'}" in printed, printed
    return d / 'hf'

def test_export(exported):
    files = {f.name for f in exported.iterdir()}
    assert {'config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer.model'} <= files, files
    assert json.loads((exported / 'config.json').read_text())['vocab_size'] == VOCAB
    assert exported.with_name('hf.gguf').stat().st_size > 0

def test_import_then_eval_and_train(run, exported, evaluated):
    "The import evaluates like the original, and `kollm_train --resume` continues pretraining it (no KeyError)."
    d = run['dir']
    printed = cli('kollm_import', '--hf_dir', exported, '--out', d / 'imported').stdout
    ckpt = d / 'imported' / 'checkpoints' / 'step-0000000'
    assert f'wrote {ckpt}' in printed and f"kollm_train --config {ckpt / 'config.yaml'}" in printed, printed
    imported = evaluate(ckpt, d / 'imported.json')[1]
    assert imported['nll'] == pytest.approx(evaluated[1]['nll'], abs=1e-6), (imported, evaluated[1])
    trained = cli('kollm_train', '--config', ckpt / 'config.yaml', '--resume', '--quiet', '--overrides',
                  f"tokens_dir={d / 'tokens'}", 'max_steps=1', 'batch_size=2', 'eval_batches=1', 'device=cpu',
                  'precision=fp32').stdout
    assert math.isfinite(number(r'step 1: validation loss ([\d.]+)', trained)), trained
    assert (d / 'imported' / 'checkpoints' / 'step-0000001' / 'state.pt').is_file()

def test_lm_eval(run, exported):
    "`kollm_lm_eval` scores the checkpoint and its export alike on a task written on disk (no download)."
    from kollm.benchmarks import write_choice_task
    d = run['dir']
    docs = [dict(context='대한민국의 주권은', choices=['국민에게 있다', '국회에게 있다'], label=0),
            dict(context='모든 국민은 법 앞에', choices=['불평등하다', '평등하다'], label=1),
            dict(context='국회는', choices=['법률을 제정한다', '판결을 선고한다'], label=0)]
    tasks = write_choice_task(d / 'tasks', 'kollm_cli_quiz', docs)
    printed = cli('kollm_lm_eval', '--ckpt', run['ckpt'], '--tasks', 'kollm_cli_quiz', '--include_path', tasks,
                  '--device', 'cpu', '--json', d / 'lm_eval.json').stdout
    table = {r['metric']: r for r in json.loads((d / 'lm_eval.json').read_text(encoding='utf-8'))['table']}
    assert sorted(table) == ['acc', 'acc_norm'] and table['acc']['n'] == 3, table
    assert table['acc']['value'] * 3 == pytest.approx(round(table['acc']['value'] * 3)), table  # 0, 1, 2 or 3 right
    acc = number(r'kollm_cli_quiz\s+acc\s+([\d.]+)', printed)
    assert acc == pytest.approx(table['acc']['value'], abs=1e-4), printed
    again = cli('kollm_lm_eval', '--ckpt', exported, '--tasks', 'kollm_cli_quiz', '--include_path', tasks,
                '--device', 'cpu').stdout
    assert again == printed, (again, printed)  # the export scores as the checkpoint, exported on the fly, does

# ---------------------------------------------------------------- the standalone commands
def test_smoke(background):
    printed = finished(background['smoke'])
    assert number(r'tiny: ([\d.]+)M parameters', printed) > 1, printed
    assert math.isfinite(number(r'loss ([\d.]+) →', printed)) and 'generated:' in printed, printed

def test_demo(background):
    printed, out = finished(background['demo']), background['dir'] / 'demo'
    summary = json.loads((out / 'summary.json').read_text(encoding='utf-8'))
    assert summary['steps'] == 4 and math.isfinite(summary['val_bpb']), summary
    assert number(r'perplexity ([\d.]+)', printed) == pytest.approx(summary['val_ppl'], abs=0.1), printed
    assert (out / 'loss.png').stat().st_size > 0 and summary['samples'], summary

def test_doctor(background):
    printed = finished(background['doctor'])  # exit status 0: every check passed
    passed, total = map(int, re.search(r'(\d+) of (\d+) checks passed', printed).groups())
    assert passed == total >= 13 and 'FAIL' not in printed, printed

# ---------------------------------------------------------------- --help
def test_the_console_scripts_are_these():
    "settings.ini's console scripts, the installed entry points and this file's list are the same."
    ini = ConfigParser()
    ini.read(ROOT / 'settings.ini')
    declared = sorted(s.split('=')[0] for s in ini['DEFAULT']['console_scripts'].split())
    installed = sorted(ep.name for ep in entry_points(group='console_scripts') if ep.name.startswith('kollm_'))
    assert declared == installed == sorted(SCRIPTS), (declared, installed)

@pytest.mark.parametrize('name', SCRIPTS)
def test_help_documents_every_flag(name, monkeypatch, capsys):
    "`--help` exits 0 and shows every flag of the function behind the script, each with a description."
    monkeypatch.setattr(sys, 'argv', [name, '--help'])  # the installed script file itself, run in this process
    with pytest.raises(SystemExit) as exited: runpy.run_path(script(name), run_name='__main__')
    printed = capsys.readouterr().out
    assert exited.value.code == 0 and f'usage: {name}' in printed, (exited.value.code, printed)
    func, = [ep.load() for ep in entry_points(group='console_scripts') if ep.name == name]
    parser = anno_parser(getattr(func, '__wrapped__', func))
    actions = [a for a in parser._actions if a.dest not in ('help', 'pdb', 'xtra')]  # fastcore adds the last two
    assert actions, name
    undocumented = [a.dest for a in actions if not (a.help or '').strip()]
    assert not undocumented, f"{name}: flags without a description: {undocumented}"
    missing = [a.dest for a in actions if (a.option_strings[0] if a.option_strings else a.dest) not in printed]
    assert not missing, f"{name} --help does not show {missing}:\n{printed}"


def test_sft_with_muon_resumes_bit_exact(run, tmp_path):
    "Instruction tuning with Muon on the pipeline's run: 4 steps straight equal the run resumed from its step-2 checkpoint."
    import torch
    from safetensors.torch import load_file
    from kollm.sft import number_records, sft
    data = tmp_path / 'numbers.jsonl'
    data.write_text('\n'.join(json.dumps(r, ensure_ascii=False) for r in number_records(range(1, 200))),
                    encoding='utf-8')
    said = []
    def tune(out, resume=False):
        return sft(run['ckpt'], [data], out, resume=resume, progress=False, log=said.append, overrides=[
            'optimizer=muon', 'lr=0.01', 'min_lr=0.001', 'max_steps=4', 'batch_size=4', 'seq_len=64', 'warmup_steps=1',
            'save_steps=2', 'eval_steps=2', 'eval_batches=1', 'keep_checkpoints=3', 'device=cpu', 'precision=fp32',
            'seed=0'])
    tune(tmp_path / 'straight')
    tune(tmp_path / 'again')
    last = Path('checkpoints') / 'step-0000004'
    shutil.rmtree(tmp_path / 'again' / last)  # as if the session had died after its step-2 checkpoint
    said.clear()
    tune(tmp_path / 'again', resume=True)
    assert any('step-0000002' in line for line in said), said  # it did resume, not start over
    straight, resumed = (load_file(tmp_path / d / last / 'model.safetensors') for d in ('straight', 'again'))
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight), 'a resumed Muon SFT run differs'


def test_sft_leaves_a_users_config_yaml_alone(run, tmp_path):
    "A new --out holding the user's own config.yaml is refused untouched, as kollm_train refuses one (05g)."
    from kollm.runtime import UserError
    from kollm.sft import number_records, sft
    data = tmp_path / 'numbers.jsonl'
    data.write_text('\n'.join(json.dumps(r, ensure_ascii=False) for r in number_records(range(1, 50))),
                    encoding='utf-8')
    out = tmp_path / 'sft'
    out.mkdir()
    (out / 'config.yaml').write_text('training:\n  lr: 0.001  # my notes\n', encoding='utf-8')
    with pytest.raises(UserError, match=r'did not write \(config.yaml\)'):
        sft(run['ckpt'], [data], out, progress=False, log=lambda *_: None, overrides=['max_steps=1', 'device=cpu'])
    assert sorted(p.name for p in out.iterdir()) == ['config.yaml']
    assert (out / 'config.yaml').read_text(encoding='utf-8') == 'training:\n  lr: 0.001  # my notes\n'
