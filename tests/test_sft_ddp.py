"""`kollm_sft` under torchrun (issue 29): two CPU processes (Gloo) take one process's steps, resume bit for bit, only
the first process writes (a base without the chat pieces grown by it alone), and its refusal stops the other.

The base is a tiny pretrained run on the embedded Korean law text (the fixtures' `trained_run`, built once and
cached); the data are generated number conversations (`number_records`). One process with micro-batches of 4 rows
and two processes with micro-batches of 2 (2 micro-batches a step in both) see the same global batches of 8 rows,
whose halves hold different numbers of trained tokens, so a mean of the processes' means would be another step
(chapter 12a, `SFTModel`). The two-process runs go through `torch.distributed.run` and `kollm_sft`'s own command
line, inside a small driver that records, per process, every file it opened for writing, renamed, made or removed
under the run folder (Python's audit hooks). About 50 s on two busy CPU cores.
"""
import json, os, shutil, subprocess, sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'nbs'))  # the chapters' fixtures
from fixtures.korean_run import korean_data, trained_run  # noqa: E402
from kollm.config import TrainConfig, load_train_config  # noqa: E402
from kollm.model import KoLLM, KoLLMConfig  # noqa: E402
from kollm.run import load_checkpoint_model, read_metrics, write_weights  # noqa: E402
from kollm.runtime import atomic_path  # noqa: E402
from kollm.sft import QUESTIONS, ChatLoader, PackedRows, korean_number, number_records, sft, sft_rows  # noqa: E402
from kollm.tokens import SPECIAL_IDS  # noqa: E402

ENV = {**os.environ, 'TQDM_DISABLE': '1', 'OMP_NUM_THREADS': '1'}
STEPS = 4
# both runs: AdamW, fp32, no dropout (each process draws its own masks), a checkpoint and a validation every 2 steps
SETTINGS = [f'max_steps={STEPS}', 'lr=3e-3', 'min_lr=3e-4', 'warmup_steps=1', 'save_steps=2', 'eval_steps=2',
            'eval_batches=2', 'log_steps=1', 'keep_checkpoints=3', 'seq_len=64', 'device=cpu', 'precision=fp32',
            'seed=0', 'compile=false', 'model.dropout=0.0', 'grad_accum=2']
GLOBAL_BATCH = 8  # rows per step: 2 micro-batches of 4 in one process, of 2 in each of two
TOLERANCE = 1e-5  # float32, two processes against one: the same sums in another order

DRIVER = '''"kollm_sft's command line, recording the run folder's writes of this process in $SFT_WRITES.RANK (JSON)."
import atexit, json, os, sys
out = os.path.realpath(sys.argv[sys.argv.index('--out') + 1])
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
EVENTS = {'os.rename', 'os.mkdir', 'os.remove', 'os.rmdir', 'shutil.rmtree', 'shutil.move', 'os.truncate'}
writes = []

def inside(path) -> bool:
    return isinstance(path, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(path)).startswith(out)

def audit(event, args):
    if event == 'open' and inside(args[0]):
        mode, flags = args[1], args[2]
        if (mode and any(c in mode for c in 'wax+')) or (mode is None and flags & WRITE):
            writes.append([event, str(args[0])])
    elif event in EVENTS and inside(args[0]):  # a rename is recorded by what it makes (write_atomic's last act)
        writes.append([event, str(args[1] if event in ('os.rename', 'shutil.move') else args[0])])

def save():
    with open(f"{os.environ['SFT_WRITES']}.{os.environ['RANK']}", 'w') as f: json.dump(writes, f)

atexit.register(save)
sys.addaudithook(audit)
from kollm.sft import kollm_sft
kollm_sft()
'''


@pytest.fixture(scope='module')
def base(tmp_path_factory) -> dict:
    "A 4-step tiny pretrained run (cached across sessions), the number conversations, and the driver script."
    data = korean_data()
    _, result = trained_run(TrainConfig(
        model=dict(vocab_size=data.vocab_size, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                   intermediate_size=64, max_seq_length=64, dropout=0.0),
        tokens_dir=str(data.tokens), tokenizer=str(data.tokenizer), seq_len=64, batch_size=4, max_steps=4, lr=3e-3,
        min_lr=3e-4, warmup_steps=1, device='cpu', precision='fp32', save_steps=4, eval_steps=4, eval_batches=1,
        seed=0))
    d = tmp_path_factory.mktemp('sft_ddp')
    (d / 'numbers.jsonl').write_text('\n'.join(json.dumps(r, ensure_ascii=False) for r in
                                               number_records(range(1, 300))), encoding='utf-8')
    (d / 'driver.py').write_text(DRIVER, encoding='utf-8')
    return dict(dir=d, ckpt=result['checkpoint'], data=d / 'numbers.jsonl')


def torchrun(base: dict, out: Path, *flags, check: bool = True) -> tuple[subprocess.CompletedProcess, list[list]]:
    "`kollm_sft` in two torchrun processes, 2 rows a micro-batch; what it printed, and each rank's writes."
    writes = base['dir'] / f'writes-{out.name}'
    args = ['--ckpt', base['ckpt'], '--data', base['data'], '--out', out, '--steps', STEPS, '--lr', 3e-3, '--quiet',
            *flags, '--overrides', ' '.join([*SETTINGS, f'batch_size={GLOBAL_BATCH // 4}'])]
    done = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           str(base['dir'] / 'driver.py'), *map(str, args)],
                          capture_output=True, text=True, env={**ENV, 'SFT_WRITES': str(writes)}, timeout=300)
    if check: assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, [json.loads(Path(f'{writes}.{rank}').read_text()) for rank in range(2)]


@pytest.fixture(scope='module')
def runs(base) -> dict:
    "The same tuning in one process (micro-batches of 4) and in two (of 2 rows each)."
    said = []
    one = sft(base['ckpt'], [base['data']], base['dir'] / 'one', progress=False, log=said.append,
              overrides=[*SETTINGS, f'batch_size={GLOBAL_BATCH // 2}'])
    two, writes = torchrun(base, base['dir'] / 'two')
    return dict(one=one, said=said, two=two, writes=writes)


def rows(run: Path, kind: str) -> list[dict]:
    "A run's metrics lines that have `kind` (loss: the steps; val_loss: the evaluations)."
    return [r for r in read_metrics(run) if r.get(kind) is not None]


def first_batch(run: Path) -> tuple[torch.Tensor, torch.Tensor]:
    "The global batch of the run's first step, rebuilt from its data as `sft` builds it."
    cfg = load_train_config(str(run / 'config.yaml'))
    train_rows, _, _ = sft_rows(cfg, cfg.tokens_dir.split(','), [], 0.05)
    return next(iter(ChatLoader(PackedRows(train_rows), GLOBAL_BATCH, seed=cfg.seed, num_workers=0)))


def test_two_processes_take_the_one_process_steps(base, runs):
    "Each step's loss and gradient norm, each validation loss and the final weights agree within 1e-5 (float32)."
    one, two = base['dir'] / 'one', base['dir'] / 'two'
    steps = {k: [(r['step'], r['loss'], r['grad_norm']) for r in rows(d, 'loss')] for k, d in (('one', one),
                                                                                             ('two', two))}
    assert [s for s, _, _ in steps['two']] == list(range(1, STEPS + 1)), steps
    for (_, loss1, norm1), (_, loss2, norm2) in zip(steps['one'], steps['two']):
        assert abs(loss1 - loss2) < TOLERANCE and abs(norm1 - norm2) < TOLERANCE * norm1, steps
    val = {k: [(r['step'], r['val_loss']) for r in rows(d, 'val_loss')] for k, d in (('one', one), ('two', two))}
    assert [s for s, _ in val['two']] == [0, 2, 4] and all(abs(a[1] - b[1]) < TOLERANCE for a, b in zip(*val.values()))
    last = Path('checkpoints') / f'step-{STEPS:07d}' / 'model.safetensors'
    a, b = load_file(one / last), load_file(two / last)
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < TOLERANCE, f'the two-process weights differ from one process by up to {worst}'
    assert runs['two'].stdout.count(f'tuned to step {STEPS}') == 1, runs['two'].stdout  # rank 0 alone reports


def test_the_check_would_see_a_mean_of_the_processes_means(base, runs):
    "The first step's halves hold different trained tokens: the mean of their gradients is another gradient."
    x, y = first_batch(base['dir'] / 'one')
    trained = [(half != -100).sum().item() for half in y.chunk(2)]
    assert trained[0] != trained[1], trained
    model = load_checkpoint_model(load_train_config(str(base['dir'] / 'one' / 'config.yaml')).init_from).train()
    def gradient(xs, ys) -> tuple[float, torch.Tensor]:
        model.zero_grad()
        loss = model(xs, labels=ys)[1]
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])
    loss, whole = gradient(x, y)  # the step on the global batch: its per-token mean
    halves = [gradient(xs, ys)[1] for xs, ys in zip(x.chunk(2), y.chunk(2))]
    first = rows(base['dir'] / 'two', 'loss')[0]  # what the two processes logged for that step
    assert abs(first['loss'] - loss) < TOLERANCE and abs(first['grad_norm'] - whole.norm().item()) < TOLERANCE
    gap = ((sum(halves) / 2 - whole).norm() / whole.norm()).item()
    assert gap > 100 * TOLERANCE, (gap, trained)  # 2% here: the tolerance tells them apart


def test_only_the_first_process_writes(base, runs):
    "Rank 1 opened no file for writing, made, renamed or removed nothing in the run folder; rank 0 wrote all of it."
    first, other = runs['writes']
    assert other == [], other[:5]
    written = {(Path(p).relative_to(base['dir'] / 'two').parts or ('.',))[0] for _, p in first}  # '.': the folder
    assert {'sft.json', 'tokenizer.model', 'checkpoints', 'metrics.jsonl', 'config.yaml'} <= written, written


def test_two_process_resume_is_bit_exact(base, runs):
    "4 steps straight = the run killed after its step-2 checkpoint and resumed, weights and losses bit for bit."
    again = base['dir'] / 'again'
    shutil.copytree(base['dir'] / 'two', again)
    last = Path('checkpoints') / f'step-{STEPS:07d}'
    shutil.rmtree(again / last)  # as if the session had died after its step-2 checkpoint
    done, (_, other) = torchrun(base, again, '--resume')
    assert f"resumed from {again / 'checkpoints' / 'step-0000002'} at step 2" in done.stdout, done.stdout
    assert other == [], other[:5]
    straight, resumed = (load_file(d / last / 'model.safetensors') for d in (base['dir'] / 'two', again))
    assert straight.keys() == resumed.keys()
    assert [k for k in straight if not torch.equal(straight[k], resumed[k])] == []
    losses = lambda d: [(r['step'], r['loss'], r['grad_norm']) for r in rows(d, 'loss')]
    assert losses(again) == losses(base['dir'] / 'two'), (losses(again), losses(base['dir'] / 'two'))


def test_a_refusal_stops_every_process(base):
    "Rank 0 refuses a folder of someone else's files; the other process learns it instead of waiting forever."
    out = base['dir'] / 'thesis'
    out.mkdir()
    (out / 'thesis.tex').write_text('\\documentclass{article}', encoding='utf-8')
    done, (_, other) = torchrun(base, out, check=False)
    assert done.returncode != 0 and 'holds files kollm_sft did not write' in done.stderr, done.stderr[-3000:]
    assert f'rank 0 could not prepare the run folder {out}' in done.stderr, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ['.lock', 'thesis.tex'] and other == []  # as one process leaves it


def old_base(folder: Path) -> Path:
    "A checkpoint whose tokenizer predates the chat pieces (as test_chat.py makes one): `sft` grows it into base/."
    import sentencepiece as spm
    lines = [q.format(n=n) + ' ' + korean_number(n) for n in range(1, 300) for q in QUESTIONS]
    (folder / 'text.txt').write_text('\n'.join(lines), encoding='utf-8')
    spm.SentencePieceTrainer.train(input=str(folder / 'text.txt'), model_prefix=str(folder / 'old'), vocab_size=400,
                                   model_type='bpe', byte_fallback=True, split_digits=True,
                                   normalization_rule_name='identity', minloglevel=2, **SPECIAL_IDS)
    model_cfg = KoLLMConfig(vocab_size=400, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                            intermediate_size=64, max_seq_length=64, dropout=0.0)
    torch.manual_seed(0)
    cfg = TrainConfig(model=asdict(model_cfg), tokenizer=str(folder / 'old.model'), device='cpu')
    with atomic_path(folder / 'ckpt', folder=True) as tmp: write_weights(tmp, KoLLM(model_cfg), cfg.to_yaml())
    return folder / 'ckpt'


def test_a_base_without_chat_pieces_is_grown_by_rank_0_alone(base, tmp_path):
    "Rank 0 writes the grown tokenizer and base/, rank 1 waits and reads them: one process's steps; rank 1 wrote none."
    old = dict(base, ckpt=old_base(tmp_path))
    sft(old['ckpt'], [base['data']], tmp_path / 'one', progress=False, log=lambda message: None,
        overrides=[*SETTINGS, f'batch_size={GLOBAL_BATCH // 2}'])
    _, (first, other) = torchrun(old, tmp_path / 'two')
    assert other == [] and any(Path(p).name == 'base' for _, p in first), (other[:5], first)
    assert load_train_config(str(tmp_path / 'two' / 'config.yaml')).init_from == str(tmp_path / 'two' / 'base')
    last = Path('checkpoints') / f'step-{STEPS:07d}' / 'model.safetensors'
    a, b = load_file(tmp_path / 'one' / last), load_file(tmp_path / 'two' / last)
    assert a['embed.weight'].shape[0] == 404  # the 4 chat pieces' rows added
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < TOLERANCE, f'the two-process weights differ from one process by up to {worst}'
