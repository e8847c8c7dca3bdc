"Checks of chapter 04b's runtime helpers that the chapter's lessons do not need: debugging, warnings, a killed lock holder."
import subprocess
import sys
import warnings

import pytest

from kollm.runtime import DEBUG_ENV, FolderLock, UserError, one_line_errors, read_text


def test_debug_env_keeps_the_traceback(tmp_path, monkeypatch):
    (tmp_path / 'cp949.txt').write_bytes('대한민국 헌법'.encode('cp949'))
    monkeypatch.setenv(DEBUG_ENV, '1')
    with pytest.raises(UserError): one_line_errors(read_text)(tmp_path / 'cp949.txt')


def test_a_warning_is_one_line(capsys, monkeypatch):
    def warns(): warnings.warn('checkpoint step-0000004 is damaged: using an older one')
    monkeypatch.setenv(DEBUG_ENV, '')
    one_line_errors(warns)()
    assert capsys.readouterr().err == 'warns: warning: checkpoint step-0000004 is damaged: using an older one\n'


def test_a_killed_lock_holder_does_not_block_the_next_writer(tmp_path):
    run = tmp_path / 'run'
    holder = subprocess.Popen([sys.executable, '-c', 'import sys, time; from kollm.runtime import FolderLock\n'
                               'with FolderLock(sys.argv[1]): print("locked", flush=True); time.sleep(60)', str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        with pytest.raises(UserError, match=f'process {holder.pid}'): FolderLock(run).__enter__()
    finally:
        holder.kill(); holder.wait()  # SIGKILL: no clean-up ran, and the kernel dropped the lock
    with FolderLock(run): pass
