"""--parallel: warm and cold trained at once, as two processes, give what one process gives."""
import json
import signal
import subprocess
import sys
import time
from argparse import Namespace

import pytest
import torch

import abp
from conftest import ROOT, tiny_argv
from test_robustness import strip_times


def outputs(out):
    """Every figure, GIF and Langevin trace of a run: {relative path: bytes}."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob('*'))
            if p.suffix in ('.png', '.jpg', '.gif') or p.name == 'langevin_trace.json'}


def test_parallel_run_equals_the_sequential_run(tiny_run, img_dir, tmp_path):
    """With one thread per process, the two-process run's metrics, traces and every figure are those of
    tiny_run (the same flags, one mode after the other in this process), byte for byte."""
    out = tmp_path / 'par'
    abp.main(tiny_argv(img_dir, out, '--parallel', '--threads', '1'))
    seq, par = (json.loads((d / 'metrics.json').read_text()) for d in (tiny_run, out))
    assert (seq['parallel'], par['parallel']) == (False, True)
    assert strip_times({**seq, 'parallel': None}) == strip_times({**par, 'parallel': None})
    want, got = outputs(tiny_run), outputs(out)
    assert len(want) > 20 and want.keys() == got.keys()
    assert [k for k in want if want[k] != got[k]] == []


@pytest.mark.parametrize('threads, dev, script, flag, want', [
    (2, 'cpu', True, None, True), (1, 'cpu', True, None, False), (8, 'cuda', True, None, False),
    (8, 'cpu', False, None, False), (1, 'cpu', False, True, True), (8, 'cpu', True, False, False)])
def test_when_the_modes_run_in_parallel(monkeypatch, threads, dev, script, flag, want):
    """Unset, --parallel is on for two modes of `python abp.py` on a CPU with two or more threads (never for
    a caller that imported abp: its script would be re-run by the spawned processes); the flag overrides it."""
    monkeypatch.setattr(torch, 'get_num_threads', lambda: threads)
    monkeypatch.setattr(abp, 'device', dev)
    monkeypatch.setattr(abp, 'launched_as_script', lambda: script)
    assert abp.use_parallel(Namespace(parallel=flag), 2) is want
    assert abp.use_parallel(Namespace(parallel=flag), 1) is False       # one mode: nothing to run beside it


def test_an_importer_is_not_the_script():
    """Under pytest, abp is imported: the default never spawns processes here."""
    assert abp.launched_as_script() is False


def test_sigterm_stops_both_processes_with_checkpoints_then_resume_finishes(img_dir, tmp_path):
    """SIGTERM to the parent of a --parallel run is passed on: both modes stop between epochs with a
    checkpoint, the run exits 130 with one hint per mode and no traceback, and --resume completes both."""
    out = tmp_path / 'out'
    argv = tiny_argv(img_dir, out, '--parallel', '--threads', '1', '--n_epochs', '100000', '--n_plot', '100000',
                     '--n_log', '2')
    p = subprocess.Popen([sys.executable, str(ROOT / 'abp.py'), *argv], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    logs = [out / mode / 'output.log' for mode in ('warm', 'cold')]
    deadline = time.time() + 180
    while time.time() < deadline and not all(log.exists() and 'epoch     2' in log.read_text() for log in logs):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130
    last = err.strip().splitlines()[-1]
    assert 'Traceback' not in err and 'of warm' in last and 'of cold' in last and '--resume' in last
    epochs = {mode: torch.load(out / mode / 'checkpoint.pt', weights_only=False)['epoch'] for mode in ('warm', 'cold')}
    assert min(epochs.values()) >= 2
    n = max(epochs.values()) + 2
    done = subprocess.run([sys.executable, str(ROOT / 'abp.py'), *tiny_argv(img_dir, out, '--parallel', '--threads',
                                                                           '1', '--n_epochs', str(n), '--resume')],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    m = json.loads((out / 'metrics.json').read_text())
    assert m['parallel'] and m['warm']['epochs'] == m['cold']['epochs'] == n
