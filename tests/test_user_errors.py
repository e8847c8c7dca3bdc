"""A user's mistakes, as issue 26 found them, against every console script but kollm_train and kollm_demo.

Each mistake must end in one line on stderr, `kollm_x: error: …`, exit status 2, and nothing the command did not
write touched. Most run in-process (the console script's function, as `call_parse` calls it); a few run as the real
installed console scripts in a subprocess. The table of bad inputs is `BAD_INPUTS` below: (script, what the user
passes, what the line must say), run by `test_bad_input`:

| script | bad input | the line says |
|---|---|---|
| kollm_eval | --json nodir/x.json | the folder … does not exist (checked before the evaluation) |
| kollm_eval | --ckpt RUN (a run folder) / a missing path | … holds checkpoints (step-0000001): pass --ckpt …/step-0000001 (the newest) / no such checkpoint folder |
| kollm_eval | --text utf16.txt / whitespace-only / missing | is not UTF-8 text …; it looks like UTF-16 / holds nothing to score / no such file |
| kollm_eval, kollm_generate | a tokenizer with fewer pieces than the model | … pieces, fewer than the model's … ids |
| kollm_generate | --top_p 0, --top_p 1.5, --temperature nan / -1, --top_k -1, --repetition_penalty 0, --max_new_tokens 0 | <flag> must be <range>, got <value> |
| kollm_tokenizer | --inputs binary.bin / missing; --model an existing file | not UTF-8 text …; binary / no such file / exists: … never replaces a tokenizer |
| kollm_tokenize | --inputs a/train.txt,b/train.txt; a UTF-16 file | two files of split train / not UTF-8 text |
| kollm_plan | --tokens_per_second -5, --mfu 0, --mfu 2, --memory_gb 0, --seq_len 0, --effective_batch 0, --peak_tflops -1, --tokens -1, --optimizer x, --model nothing | --<flag> must be …, got … |
| kollm_export | --out RUN, --out CKPT (with --overwrite), --out a file, --out foreign files, --overwrite of a non-GGUF --gguf_path | overlaps … which the export reads from / is a file / holds files kollm_export did not write / not a GGUF file |
| kollm_import | --out an existing run | holds files kollm_import did not write … nothing was changed |
| kollm_prepare | --executor_options 'x', --inputs '' / a missing path | is not JSON / names no file or folder / no such file or folder |
| kollm_prepare | a sub-folder it cannot list; a binary .txt (exit status = files with problems, the run goes on) | problem: DIR: the folder could not be listed (Permission denied) … / it looks like binary data, not text: skipped |
| kollm_prepare | a second prepare on a locked work folder; --out_dir holding foreign files | is in use by process N / holds notes.md: prepare replaces its output folder as a whole |
| kollm_doctor | --device nothing | --device nothing: … |
| kollm_lm_eval | no --tasks | needs --ckpt DIR and --tasks NAMES |

Permissions cannot be tested by chmod here (the tests run as root, which ignores permission bits): an unreadable
folder is simulated by making `os.scandir` raise `PermissionError` for it.
"""
import errno, io, json, math, os, shutil, subprocess, sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict
from pathlib import Path
from unittest import mock

import pytest
import torch

from kollm.model import KoLLM, KoLLMConfig
from kollm.runtime import DEBUG_ENV, FolderLock, UserError
from kollm.sources import embedded_corpus
from kollm.pipeline import kollm_prepare
from kollm.tokens import train_tokenizer, kollm_tokenizer, kollm_tokenize
from kollm.config import TrainConfig
from kollm.run import save_checkpoint
from kollm.plan import kollm_plan
from kollm.eval import kollm_eval, kollm_generate
from kollm.generate import generate_ids
from kollm.export import export_hf, kollm_export, kollm_import
from kollm.doctor import kollm_doctor
from kollm.benchmarks import kollm_lm_eval

VOCAB = 1000
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'TQDM_DISABLE': '1', 'OMP_NUM_THREADS': '1',
       DEBUG_ENV: ''}
SCRIPTS = dict(kollm_prepare=kollm_prepare, kollm_tokenizer=kollm_tokenizer, kollm_tokenize=kollm_tokenize,
               kollm_plan=kollm_plan, kollm_eval=kollm_eval, kollm_generate=kollm_generate,
               kollm_export=kollm_export, kollm_import=kollm_import, kollm_doctor=kollm_doctor,
               kollm_lm_eval=kollm_lm_eval)


def snapshot(folder: Path) -> dict:
    "Every file under `folder` with its bytes: what a command must leave as it was."
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


def one_line(script, **kw) -> str:
    "Run a console script in-process; it must exit 2 with one `name: error:` line and no traceback; that line."
    err = io.StringIO()
    with mock.patch.dict(os.environ, {DEBUG_ENV: ''}), redirect_stderr(err), redirect_stdout(io.StringIO()):
        with pytest.raises(SystemExit) as exited: script(**kw)
    text = err.getvalue()
    lines = [l for l in text.splitlines() if l.startswith(f'{script.__name__}: error: ')]
    assert exited.value.code == 2 and len(lines) == 1 and 'Traceback' not in text, text
    return lines[0]


def installed(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else shutil.which(name) or name


def shell_line(name: str, *args) -> str:
    "Run the installed console script; it must exit 2 with one line on stderr; that line."
    done = subprocess.run([installed(name), *map(str, args)], capture_output=True, text=True, env=ENV, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, f"exit {done.returncode}\n{done.stderr}"
    assert lines[0].startswith(f'{name}: error: '), lines
    return lines[0]


@pytest.fixture(scope='module')
def w(tmp_path_factory):
    "A tokenizer, a run with one tiny checkpoint, and bad input files."
    d = tmp_path_factory.mktemp('user-errors')
    tok = train_tokenizer(embedded_corpus(), d / 'tok.model', vocab_size=VOCAB, progress=False)
    cfg = KoLLMConfig(vocab_size=VOCAB, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                      max_seq_length=64)
    torch.manual_seed(0)
    run = d / 'run'
    ckpt = save_checkpoint(run, KoLLM(cfg), TrainConfig(model=asdict(cfg), tokenizer=str(tok), out_dir=str(run)),
                           dict(step=1))
    (run / 'metrics.jsonl').write_text('{"step": 1, "loss": 5.0}\n')
    wide = KoLLMConfig(**{**asdict(cfg), 'vocab_size': VOCAB + 64})  # a model with more ids than the tokenizer has
    wide_ckpt = save_checkpoint(d / 'wide', KoLLM(wide), TrainConfig(model=asdict(wide), tokenizer=str(tok),
                                                                   out_dir=str(d / 'wide')), dict(step=1))
    text = d / 'valid.txt'
    text.write_text('대한민국은 민주공화국이다.\n\n모든 국민은 법 앞에 평등하다.\n', encoding='utf-8')
    (d / 'utf16.txt').write_bytes('대한민국은 민주공화국이다.\n'.encode('utf-16'))
    (d / 'binary.bin').write_bytes(bytes(range(256)) * 4)
    (d / 'blank.txt').write_text('   \n\n \t \n', encoding='utf-8')
    for sub in ('a', 'b'):
        (d / sub).mkdir()
        shutil.copy(text, d / sub / 'train.txt')
    (d / 'a-file').write_text('mine')
    (d / 'foreign').mkdir()
    (d / 'foreign' / 'notes.md').write_text('the user\'s notes')
    return dict(d=d, tok=tok, run=run, ckpt=ckpt, wide=wide_ckpt, text=text)


def bad_inputs(w) -> list:
    d, ckpt, tok = w['d'], w['ckpt'], w['tok']
    ev = dict(ckpt=str(ckpt), text=str(w['text']), device='cpu', precision='fp32', quiet=True)
    gen = dict(ckpt=str(ckpt), prompt='대한민국', max_new_tokens=4, device='cpu', precision='fp32')
    return [
        ('kollm_eval', dict(ev, json=str(d / 'nodir' / 'x.json')), f"the folder {d / 'nodir'} does not exist"),
        ('kollm_eval', dict(ev, ckpt=str(w['run'])), f"pass --ckpt {ckpt} (the newest)"),
        ('kollm_eval', dict(ev, ckpt=str(d / 'typo')), 'no such checkpoint folder'),
        ('kollm_eval', dict(ev, text=str(d / 'utf16.txt')), 'utf16.txt is not UTF-8 text; it looks like UTF-16'),
        ('kollm_eval', dict(ev, text=str(d / 'blank.txt')), 'holds nothing to score'),
        ('kollm_eval', dict(ev, text=str(d / 'missing.txt')), 'no such file or folder'),
        ('kollm_eval', dict(ev, ckpt=str(w['wide'])), f'has {VOCAB:,} pieces, fewer than the model'),
        ('kollm_generate', dict(gen, ckpt=str(w['wide'])), f'has {VOCAB:,} pieces, fewer than the model'),
        ('kollm_generate', dict(gen, top_p=0.0), 'top_p must be in (0, 1]'),
        ('kollm_generate', dict(gen, top_p=1.5), 'top_p must be in (0, 1]'),
        ('kollm_generate', dict(gen, temperature=math.nan), 'temperature must be a finite number ≥ 0'),
        ('kollm_generate', dict(gen, temperature=-1.0), 'temperature must be a finite number ≥ 0'),
        ('kollm_generate', dict(gen, top_k=-1), 'top_k must be an integer ≥ 0'),
        ('kollm_generate', dict(gen, repetition_penalty=0.0), 'repetition_penalty must be a finite number > 0'),
        ('kollm_generate', dict(gen, max_new_tokens=0), 'max_new_tokens must be an integer ≥ 1'),
        ('kollm_generate', dict(prompt='x'), 'needs --ckpt'),
        ('kollm_tokenizer', dict(inputs=str(d / 'binary.bin'), model=str(d / 'new.model'), quiet=True),
         'binary.bin is not UTF-8 text; it looks like binary'),
        ('kollm_tokenizer', dict(inputs=str(d / 'missing.txt'), model=str(d / 'new.model')), 'no such file'),
        ('kollm_tokenizer', dict(inputs=str(w['text']), model=str(tok)), 'never replaces a tokenizer'),
        ('kollm_tokenize', dict(inputs=f"{d / 'a' / 'train.txt'},{d / 'b' / 'train.txt'}", tokenizer=str(tok),
                                out_dir=str(d / 'tokens-ab'), quiet=True), 'two files of split train'),
        ('kollm_tokenize', dict(inputs=str(d / 'utf16.txt'), tokenizer=str(tok), out_dir=str(d / 'tokens-16'),
                                quiet=True), 'utf16.txt is not UTF-8 text'),
        ('kollm_tokenize', dict(inputs=str(w['text']), tokenizer=str(d / 'no.model'), out_dir=str(d / 'tokens-x'),
                                quiet=True), 'no tokenizer at'),
        ('kollm_plan', dict(tokens_per_second=-5.0), '--tokens_per_second must be a number ≥ 0'),
        ('kollm_plan', dict(mfu=0.0), '--mfu must be a fraction in (0, 1]'),
        ('kollm_plan', dict(mfu=2.0), '--mfu must be a fraction in (0, 1]'),
        ('kollm_plan', dict(memory_gb=0.0), '--memory_gb must be'),
        ('kollm_plan', dict(seq_len=0), '--seq_len must be an integer ≥ 1'),
        ('kollm_plan', dict(effective_batch=0), '--effective_batch must be'),
        ('kollm_plan', dict(peak_tflops=-1.0), '--peak_tflops must be a number > 0'),
        ('kollm_plan', dict(tokens=-1.0), '--tokens must be a number ≥ 0'),
        ('kollm_plan', dict(optimizer='adam'), '--optimizer must be muon or adamw'),
        ('kollm_plan', dict(model='nothing'), '--model nothing:'),
        ('kollm_export', dict(ckpt=str(ckpt), out=str(w['run']), overwrite=True), 'which the export reads from'),
        ('kollm_export', dict(ckpt=str(ckpt), out=str(ckpt), overwrite=True), 'which the export reads from'),
        ('kollm_export', dict(ckpt=str(ckpt), out=str(ckpt / 'hf')), 'which the export reads from'),
        ('kollm_export', dict(ckpt=str(ckpt), out=str(d / 'a-file')), 'is a file'),
        ('kollm_export', dict(ckpt=str(ckpt), out=str(d / 'foreign'), overwrite=True), 'holds no kollm export'),
        ('kollm_export', dict(ckpt=str(ckpt), out=str(d / 'hf-new'), gguf=True, gguf_path=str(d / 'a-file'),
                              overwrite=True), 'is not a GGUF file'),
        ('kollm_export', dict(ckpt=str(w['run']), out=str(d / 'hf-new')), 'the newest'),
        ('kollm_export', dict(ckpt=str(ckpt)), 'needs --ckpt DIR and --out DIR'),
        ('kollm_import', dict(hf_dir=str(d / 'foreign'), out=str(d / 'imported')), 'has no config.json'),
        ('kollm_prepare', dict(inputs=str(w['text']), executor_options='x', quiet=True), 'is not JSON'),
        ('kollm_prepare', dict(inputs=',', quiet=True), 'names no file or folder'),
        ('kollm_prepare', dict(inputs=str(d / 'missing'), out_dir=str(d / 'p-missing'), quiet=True),
         'no such file or folder'),
        ('kollm_doctor', dict(device='nothing'), '--device nothing'),
        ('kollm_lm_eval', dict(ckpt=str(ckpt)), 'needs --ckpt DIR and --tasks NAMES'),
    ]


CASES = 46  # len(bad_inputs(...)): parametrised by index so the ids stay short


def test_the_table_is_whole(w): assert len(bad_inputs(w)) == CASES


@pytest.mark.parametrize('i', range(CASES))
def test_bad_input(w, i):
    name, kw, says = bad_inputs(w)[i]
    before = snapshot(w['d'])
    line = one_line(SCRIPTS[name], **kw)
    assert says in line, line
    assert snapshot(w['d']) == before, f"{name} changed files while refusing"


def test_real_console_scripts(w):
    "The installed scripts print the same single lines, as a shell user sees them."
    assert '--mfu must be a fraction in (0, 1], got 0.0' in shell_line('kollm_plan', '--mfu', '0')
    assert 'top_p must be in (0, 1] (1: all tokens), got 0.0' in shell_line('kollm_generate', '--ckpt', w['ckpt'], '--top_p', '0')
    before = snapshot(w['run'])
    line = shell_line('kollm_export', '--ckpt', w['ckpt'], '--out', w['run'], '--overwrite')
    assert 'which the export reads from' in line and snapshot(w['run']) == before
    assert 'does not exist' in shell_line('kollm_eval', '--ckpt', w['ckpt'], '--text', w['text'],
                                          '--json', w['d'] / 'nodir' / 'x.json')


def test_sampling_checks_in_the_python_api(w):
    model = KoLLM(KoLLMConfig(vocab_size=VOCAB, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                              intermediate_size=64, max_seq_length=64))
    for bad in (dict(top_p=0.0), dict(temperature=-1.0), dict(top_k=-1), dict(repetition_penalty=0.0)):
        with pytest.raises(UserError): generate_ids(model, [[2, 10]], 4, **bad)
    assert len(generate_ids(model, [[2, 10]], 4, temperature=0, eos_id=None)[0]) == 4


def test_export_replaces_only_an_earlier_export(w):
    "Row 5: `--overwrite` replaces the export it wrote, and refuses one where the user put files of their own."
    out = w['d'] / 'hf'
    export_hf(w['ckpt'], out)
    export_hf(w['ckpt'], out, overwrite=True)  # an earlier export: replaced
    (out / 'my-notes.txt').write_text('keep me')
    before = snapshot(out)
    assert 'my-notes.txt' in one_line(kollm_export, ckpt=str(w['ckpt']), out=str(out), overwrite=True)
    assert snapshot(out) == before


def hf_export(w) -> Path:
    "A Hugging Face export of the tiny checkpoint, made once."
    hf = w['d'] / 'hf-for-import'
    if not hf.exists(): export_hf(w['ckpt'], hf)
    return hf


def test_import_never_replaces_a_run(w):
    "Row 4: kollm_import --out an existing run leaves its tokenizer and checkpoints alone."
    hf = hf_export(w)
    shutil.copy(w['tok'], w['run'] / 'tokenizer.model')
    before = snapshot(w['run'])
    line = one_line(kollm_import, hf_dir=str(hf), out=str(w['run']))
    assert 'kollm_import did not write' in line and 'nothing was changed' in line, line
    assert snapshot(w['run']) == before


def test_gguf_disk_full(w, tmp_path):
    "Row 12: a full disk while the GGUF file is written says so, names the file, and leaves no part of it."
    import gguf
    def fill(self, progress=False):
        self.fout[0].write(b'\0' * 18912)
        raise OSError('64000 requested and 18912 written')  # what numpy's tofile says on a full disk
    full = shutil.disk_usage(tmp_path)._replace(free=4096)
    with mock.patch.object(gguf.GGUFWriter, 'write_tensors_to_file', fill), \
         mock.patch('shutil.disk_usage', return_value=full):
        line = one_line(kollm_export, ckpt=str(w['ckpt']), out=str(tmp_path / 'hf'), gguf=True, quiet=True)
    assert line.endswith(f"no space left on the device writing {tmp_path / 'hf.gguf'}: free some space and run the "
                         "command again"), line
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith('.gguf')]


def test_planted_intermediate_file_is_a_bad_record(tmp_path):
    "Row 6: a docs file holding a pickle (or junk) is counted as bad records; the pickle never runs."
    from kollm.sources import Report
    from kollm.pipeline import read_signed, signed_line
    import numpy as np, pickle
    marker = tmp_path / 'ran'
    class Payload:
        def __reduce__(self): return (Path.touch, (marker,))
    good = signed_line(dict(source='law', chars=12, digest=bytes(range(16)),
                            signature=(np.arange(128, dtype=np.uint32), [1, 2**64 - 1])), '대한민국 헌법 전문')
    docs = tmp_path / '000000.jsonl'
    docs.write_bytes(good.encode() + pickle.dumps(Payload()) + b'\n' + b'{"source": 1}\n' + b'[1, 2]\n')
    report = Report()
    records = list(read_signed(docs, report))
    assert len(records) == 1 and records[0][2] == '대한민국 헌법 전문' and records[0][4][1] == [1, 2**64 - 1]
    assert records[0][4][0].tolist() == list(range(128))
    assert report.counts['work files']['drop:bad_record'] >= 3 and str(docs) in report.problem_files()
    assert not marker.exists()


def test_prepare_lists_an_unreadable_folder_and_a_binary_file(w, tmp_path):
    "Rows 8 and 11: a sub-folder prepare cannot list, and a .txt that is binary, are problems; the run goes on."
    corpus = tmp_path / 'corpus'
    (corpus / 'locked').mkdir(parents=True)
    shutil.copy(embedded_corpus()[0], corpus / 'law.txt')
    (corpus / 'locked' / 'hidden.txt').write_text('대한민국은 민주공화국이다. ' * 20, encoding='utf-8')
    (corpus / 'image.txt').write_bytes(bytes(range(256)) * 4)
    real = os.scandir
    def scandir(path='.'):  # root ignores permission bits: the PermissionError a user gets, simulated
        if str(path).endswith('locked'): raise PermissionError(errno.EACCES, 'Permission denied', str(path))
        return real(path)
    with mock.patch('os.scandir', scandir), redirect_stdout(io.StringIO()) as out:
        status = kollm_prepare(inputs=str(corpus), out_dir=str(tmp_path / 'out'), workers=0, quiet=True)
    assert status == 2 and '2 file(s) had problems' in out.getvalue(), out.getvalue()
    assert f"problem: {corpus / 'locked'}: the folder could not be listed (Permission denied)" in out.getvalue()
    assert f"problem: {corpus / 'image.txt'}: it looks like binary data, not text: skipped" in out.getvalue()
    assert (tmp_path / 'out' / 'train.txt').stat().st_size > 0  # the law text went through


def test_prepare_locks_its_work_folder(w, tmp_path):
    "Deliver 2: a second prepare on the same work folder is refused at once, naming the first's process."
    work = tmp_path / '.work-out'
    with FolderLock(work, 'work folder'):
        line = one_line(kollm_prepare, inputs=str(w['text']), out_dir=str(tmp_path / 'out'), workers=0, quiet=True)
    assert f'is in use by process {os.getpid()}' in line, line
    assert not (tmp_path / 'out').exists()


# Deliver 6: each writing command pointed at a folder holding files it did not write leaves them as they were.

def test_prepare_leaves_foreign_files(w, tmp_path):
    out = tmp_path / 'out'
    shutil.copytree(w['d'] / 'foreign', out)
    line = one_line(kollm_prepare, inputs=str(w['text']), out_dir=str(out), workers=0, quiet=True)
    assert 'notes.md' in line and snapshot(out) == snapshot(w['d'] / 'foreign')


def test_tokenizer_leaves_foreign_files(w, tmp_path):
    folder = tmp_path / 'models'
    shutil.copytree(w['d'] / 'foreign', folder)
    shutil.copy(w['tok'], folder / 'tokenizer.model')  # a tokenizer some run depends on
    before = snapshot(folder)
    assert 'never replaces' in one_line(kollm_tokenizer, inputs=str(w['text']), model=str(folder / 'tokenizer.model'),
                                        quiet=True)
    assert snapshot(folder) == before


def test_tokenize_leaves_foreign_files(w, tmp_path):
    out = tmp_path / 'tokens'
    shutil.copytree(w['d'] / 'foreign', out)
    with redirect_stdout(io.StringIO()):
        kollm_tokenize(inputs=str(w['text']), tokenizer=str(w['tok']), out_dir=str(out), quiet=True)
    assert (out / 'notes.md').read_text() == "the user's notes" and (out / 'valid.json').exists()


def test_export_and_import_leave_foreign_files(w, tmp_path):
    out = tmp_path / 'hf'
    shutil.copytree(w['d'] / 'foreign', out)
    assert 'holds no kollm export' in one_line(kollm_export, ckpt=str(w['ckpt']), out=str(out), overwrite=True)
    run = tmp_path / 'run'
    shutil.copytree(w['d'] / 'foreign', run)
    assert 'notes.md' in one_line(kollm_import, hf_dir=str(hf_export(w)), out=str(run))
    assert snapshot(out) == snapshot(run) == snapshot(w['d'] / 'foreign')
