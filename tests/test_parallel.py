"""Warm and cold trained at once, as two processes: when that happens, that it gives what one process gives, and
that a stop request reaches both."""
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import types

import pytest
import torch

import abp
from conftest import run_main, skip_rendering, stop_after, strip_times, tiny_argv


@pytest.mark.parametrize('threads, dev, main_file, n_modes, want', [
    (2, 'cpu', 'abp', 2, True), (16, 'cpu', 'abp', 2, True),
    (1, 'cpu', 'abp', 2, False),           # one thread: nothing to share
    (8, 'cuda', 'abp', 2, False),          # a GPU trains one mode at a time
    (8, 'cpu', 'other', 2, False),         # abp imported by another script, which spawning would re-run
    (8, 'cpu', None, 2, False),            # an interactive session has no main script
    (8, 'cpu', 'abp', 1, False)])          # one mode: nothing to run beside it
def test_when_the_modes_run_in_parallel(monkeypatch, tmp_path, threads, dev, main_file, n_modes, want):
    """Two modes of `python abp.py` on a CPU with two or more threads train in parallel; never for a program that
    imported abp, on a GPU, with one thread or for one mode."""
    monkeypatch.setattr(torch, 'get_num_threads', lambda: threads)
    monkeypatch.setattr(abp, 'device', dev)
    main = types.ModuleType('__main__')
    if main_file:
        main.__file__ = abp.__file__ if main_file == 'abp' else str(tmp_path / 'grader.py')
    monkeypatch.setitem(sys.modules, '__main__', main)
    assert abp.use_parallel(n_modes) is want


class InlineProcess:
    """A multiprocessing Process whose target runs in this process when it starts."""

    def __init__(self, target, args, daemon=None):
        self.target, self.args, self.pid = target, args, None

    def start(self):
        self.target(*self.args)

    def is_alive(self):
        return False

    def join(self):
        pass


def test_a_parallel_run_reads_back_what_each_mode_trained(tiny_run, img_dir, tmp_path, monkeypatch):
    """run_parallel with its workers run inline (the code path of a parallel run, without the processes):
    the metrics, the snapshots, the Langevin traces and the GIFs drawn from the states read back from the
    workers' checkpoints are tiny_run's, byte for byte; metrics.json says parallel."""
    monkeypatch.setattr(abp, 'use_parallel', lambda n_modes: n_modes == 2)
    monkeypatch.setattr(multiprocessing, 'get_context', lambda method: types.SimpleNamespace(
        Process=InlineProcess, Pipe=multiprocessing.Pipe))
    skip_rendering(monkeypatch, gifs=False)
    out = tmp_path / 'par'
    abp.main(tiny_argv(img_dir, out))
    seq, par = (json.loads((d / 'metrics.json').read_text()) for d in (tiny_run, out))
    assert (seq['parallel'], par['parallel']) == (False, True)
    assert strip_times({**seq, 'parallel': None}) == strip_times({**par, 'parallel': None})
    files = [f'{m}/{e:04d}_{k}.png' for m in ('warm', 'cold') for e in (3, 4, 6)
             for k in ('recon', 'sampled', 'interp')]
    files += [f'{m}/langevin_trace.json' for m in ('warm', 'cold')]
    files += [f'{k}_{m}.gif' for k in ('training', 'latent_walk') for m in ('warm', 'cold')]
    assert [f for f in files if (out / f).read_bytes() != (tiny_run / f).read_bytes()] == []


def test_sigterm_stops_both_processes_which_trained_as_one_process_does(img_dir, tmp_path, monkeypatch, capsys,
                                                                         fast_figures):
    """SIGTERM to the parent of a parallel run (a real signal to this process, two real processes) is passed
    on: both modes stop between epochs with a checkpoint, the run exits 130 with one line naming both modes
    and --resume, no traceback. Each checkpoint (codes, generator, Adam, RNG, curve) is what one process,
    stopped at the same epoch, writes: one thread each, the modes' processes train as the sequential run."""
    out, returned = tmp_path / 'par', threading.Event()
    logs = [out / mode / 'output.log' for mode in ('warm', 'cold')]

    def terminate_once_both_train():
        deadline = time.time() + 120
        while time.time() < deadline and not returned.is_set() and \
                not all(log.exists() and 'start:' in log.read_text() for log in logs):
            time.sleep(0.05)
        if signal.getsignal(signal.SIGTERM) is abp.StopFlag.request:     # only while abp.main handles it
            os.kill(os.getpid(), signal.SIGTERM)
        if not returned.wait(60):                   # the signal never reached them: end them, and the test fails
            for p in multiprocessing.active_children():
                p.kill()

    # endless, and slow to learn: at the default lr the guard ends a 16-px run of 4 images near epoch 100
    argv = ['--n_epochs', '100000', '--n_plot', '100000', '--n_log', '100000', '--lr', '1e-4']
    with monkeypatch.context() as mp:
        mp.setattr(abp, 'use_parallel', lambda n_modes: n_modes == 2)
        sender = threading.Thread(target=terminate_once_both_train, daemon=True)
        sender.start()
        code, err = run_main(tiny_argv(img_dir, out, *argv), capsys)
        returned.set()
        sender.join()
    assert code == 130, err
    assert 'Traceback' not in '\n'.join(err)
    assert 'of warm' in err[-1] and 'of cold' in err[-1] and '--resume' in err[-1], err
    for mode in ('warm', 'cold'):
        par = torch.load(out / mode / 'checkpoint.pt', weights_only=False)
        assert par['epoch'] >= 1
        stop_after(monkeypatch, (mode, par['epoch']))
        code, _ = run_main(tiny_argv(img_dir, tmp_path / 'seq', *argv, '--start', mode), capsys)
        seq = torch.load(tmp_path / 'seq' / mode / 'checkpoint.pt', weights_only=False)
        assert code == 130 and seq['epoch'] == par['epoch']
        assert torch.equal(seq['z'], par['z']) and torch.equal(seq['rng'], par['rng']), mode
        assert seq['stats'] == par['stats'], mode
        for k, v in seq['model'].items():
            assert torch.equal(v, par['model'][k]), (mode, k)
        for p, moments in seq['optimizer']['state'].items():
            for k, v in moments.items():
                assert torch.equal(v, par['optimizer']['state'][p][k]), (mode, p, k)
