"""`prepare`'s promises that chapter 05e_pipeline states and these tests keep: the Slurm executor's options, outputs
that are one unit, an interrupted run and one killed with SIGKILL that resume, a run that keeps nothing, a local
Ray cluster writing the same files, and `--help`.
"""
import importlib.util, os, random, signal, subprocess, sys, time
from pathlib import Path

import pytest
from fastcore.script import anno_parser
from fastcore.test import test_eq as expect_eq, test_fail as expect_fail

from kollm.dumps import READERS
from kollm.sources import iter_files, read_text
from kollm.pipeline import PREPARE_OUTPUTS, balance_files, kollm_prepare, make_executors, prepare, prepare_stages

FIXTURES = Path(__file__).resolve().parents[1] / 'nbs' / 'fixtures' / 'sources'
WORDS = '한국어 문장 압축 파일 끝 줄 문서 자료 기록 바다 산 강 도시 마을 사람 시간 오늘 내일 학교 책 노래'.split()


def test_slurm_executor_gets_its_options(tmp_path):
    "Slurm cannot run here (no sbatch): its executors are built by the same function, with the options passed on."
    slurm_work = tmp_path
    first, last = make_executors(prepare_stages([FIXTURES / 'plain-utf8.txt'], slurm_work / 'out', slurm_work),
                                 slurm_work, 'slurm', tasks=64, time='4:00:00', partition='cpu', cpus_per_task=2)
    expect_eq((first.tasks, first.partition, first.time, first.cpus_per_task, last.tasks, last.depends), 
            (64, 'cpu', '4:00:00', 2, 1, first))
    expect_fail(lambda: make_executors(([], []), slurm_work, 'spark'), contains="one of local, slurm, ray")
    expect_fail(lambda: make_executors(([], []), slurm_work, 'local', partition='cpu'), contains="partition")


def test_outputs_are_one_unit(tmp_path):
    "Interrupted: the previous outputs untouched; a leftover temporary folder cleared; a foreign folder refused."
    runs = tmp_path
    small = [FIXTURES / n for n in ('plain-utf8.txt', 'modu-written-NWRW.json', 'aihub-dialogue.json')]
    prepare(small, runs / 'clean', workers=0, progress=False)
    before = {n: (runs / 'clean' / n).read_bytes() for n in PREPARE_OUTPUTS}
    def interrupted_reader(path, source, report):
        yield from read_text(path, source, report)
        raise KeyboardInterrupt
    READERS['interrupted'] = interrupted_reader
    expect_fail(lambda: prepare(small, runs / 'clean', formats={str(small[0]): 'interrupted'}, workers=0, progress=False),
              exc=KeyboardInterrupt)
    del READERS['interrupted']
    expect_eq({n: (runs / 'clean' / n).read_bytes() for n in PREPARE_OUTPUTS}, before)  # the previous run, untouched
    (runs / '.tmp-clean').mkdir()
    (runs / '.tmp-clean' / 'train.txt').write_text('half a run killed with SIGKILL')
    prepare(small, runs / 'clean', workers=0, progress=False)
    expect_eq({n: (runs / 'clean' / n).read_bytes() for n in PREPARE_OUTPUTS}, before)
    expect_eq(sorted(p.name for p in runs.iterdir()), ['clean'])  # no temporary folder left beside it
    (runs / 'clean' / 'notes.md').write_text('my notes')
    expect_fail(lambda: prepare(small, runs / 'clean', workers=0, progress=False), contains='holds notes.md')


@pytest.fixture(scope='module')
def four_parts(tmp_path_factory):
    "Four files of random sentences, and the outputs an undisturbed run in four tasks writes from them."
    resume, rng = tmp_path_factory.mktemp('resume'), random.Random(5)
    (resume / 'raw').mkdir()
    for i in range(4):
        lines = [' '.join(rng.choice(WORDS) for _ in range(12)) + '다.' for _ in range(200)]
        (resume / 'raw' / f'part{i}.txt').write_text('\n'.join(lines) + '\n', encoding='utf-8')
    prepare([resume / 'raw'], resume / 'whole', tasks=4, workers=0, progress=False)
    return resume / 'raw', {n: (resume / 'whole' / n).read_bytes() for n in PREPARE_OUTPUTS}


def test_an_interrupted_prepare_resumes_its_unfinished_tasks(four_parts, tmp_path):
    "Ctrl-C in the third task's reader, after tasks 0 and 1 completed: the rerun reads only tasks 2 and 3's files."
    raw, whole = four_parts
    raw_files = list(iter_files([raw]))
    shares = [[raw_files[i].name for i in share] for share in balance_files([f.stat().st_size for f in raw_files], 4)]
    plain_text_reader, files_read = READERS['text'], []
    def interrupted_at_part2(path, source, report, **kw):
        for i, doc in enumerate(plain_text_reader(path, source, report, **kw)):
            if Path(path).name in shares[2] and i == 100: raise KeyboardInterrupt
            yield doc
    def counting_reader(path, source, report, **kw):
        files_read.append(Path(path).name)
        yield from plain_text_reader(path, source, report, **kw)
    try:
        READERS['text'] = interrupted_at_part2
        expect_fail(lambda: prepare([raw], tmp_path / 'out', tasks=4, workers=0, progress=False), exc=KeyboardInterrupt)
        completions = tmp_path / '.work-out' / 'logs' / 'clean' / 'completions'
        expect_eq(sorted(p.name for p in completions.iterdir()), ['00000', '00001'])
        READERS['text'] = counting_reader
        prepare([raw], tmp_path / 'out', tasks=4, workers=0, progress=False)
    finally: READERS['text'] = plain_text_reader
    expect_eq(files_read, shares[2] + shares[3])  # tasks 0 and 1 were not run again
    expect_eq({n: (tmp_path / 'out' / n).read_bytes() for n in PREPARE_OUTPUTS}, whole)
    expect_eq(sorted(p.name for p in tmp_path.iterdir()), ['out'])  # the work folder went with success


def test_a_killed_prepare_resumes(four_parts, tmp_path):
    "`kollm_prepare` in its own process, killed with SIGKILL once its first task completed, then run again."
    raw, whole = four_parts
    script = Path(sys.executable).with_name('kollm_prepare')  # the console script, as a user runs it
    command = [str(script), str(raw), '--out_dir', str(tmp_path / 'killed'), '--tasks', '4', '--workers', '2',
               '--quiet']
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    completions = tmp_path / '.work-killed' / 'logs' / 'clean' / 'completions'
    while run.poll() is None and not (completions.exists() and any(completions.iterdir())): time.sleep(0.01)
    os.killpg(run.pid, signal.SIGKILL)  # the run and its worker processes, as a power cut would
    run.wait()
    expect_eq(subprocess.run(command).returncode, 0)
    expect_eq({n: (tmp_path / 'killed' / n).read_bytes() for n in PREPARE_OUTPUTS}, whole)


def test_a_run_that_keeps_nothing_names_every_problem(tmp_path):
    "The one error of a run: no document kept, with every file's problem and every drop reason in the message."
    expect_fail(lambda: prepare([FIXTURES / 'kowiki-truncated-archive.xml.bz2'], tmp_path, workers=0, progress=False),
                contains='kowiki-truncated-archive.xml.bz2: the XML breaks off')
    expect_fail(lambda: prepare([FIXTURES / 'docs-content.jsonl'], tmp_path, workers=0, progress=False),
                contains='3 × missing_text')


def test_workers_change_nothing(tmp_path):
    "Two processes write the same files as one, forked (Linux) or spawned (macOS, Windows)."
    inputs = [p for p in FIXTURES.iterdir() if p.name not in ('docs-content.jsonl', 'kowiki-truncated-archive.xml.bz2')]
    one, two, three = tmp_path / 'one', tmp_path / 'two', tmp_path / 'three'
    prepare(inputs, one, workers=0, progress=False)
    prepare(inputs, two, workers=2, tasks=5, progress=False)
    prepare(inputs, three, workers=2, start_method='spawn', progress=False)
    for split in PREPARE_OUTPUTS:
        expect_eq((one / split).read_text(), (two / split).read_text())
        expect_eq((one / split).read_text(), (three / split).read_text())


@pytest.mark.skipif('slow' not in os.environ.get('KOLLM_TEST_FLAGS', '') or importlib.util.find_spec('ray') is None,
                    reason="starting Ray takes a while: KOLLM_TEST_FLAGS=slow, with ray installed")
def test_ray_writes_the_same_files(tmp_path):
    "The same run on a local Ray cluster of 2 CPUs writes what a run in this process writes."
    inputs = [p for p in FIXTURES.iterdir() if p.name not in ('docs-content.jsonl', 'kowiki-truncated-archive.xml.bz2')]
    one = tmp_path / 'one'
    prepare(inputs, one, workers=0, progress=False)
    ray = importlib.import_module('ray')  # optional, so not imported above: a local Ray cluster of 2 CPUs
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    four = tmp_path / 'four'
    try: prepare(inputs, four, executor='ray', tasks=3, workers=2, progress=False)
    finally: ray.shutdown()
    for split in PREPARE_OUTPUTS: expect_eq((one / split).read_text(), (four / split).read_text())


def test_help_lists_the_executor_options():
    helped = anno_parser(kollm_prepare.__wrapped__, 'kollm_prepare').format_help()  # what `--help` prints
    for flag in ('--executor', '--tasks', '--workers', '--logging_dir', '--partition', '--time', '--executor_options'):
        assert flag in helped, flag
