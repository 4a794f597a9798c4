import contextlib
import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import abp  # noqa: E402

# The tests' tensors are tiny: one thread is as fast as several and does not slow to a crawl when other
# work shares the cores (two threads on a busy 2-core machine made a 16-px epoch ~30x slower).
torch.set_num_threads(1)


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: trains on the real course images (runs by default; '
                                       'deselect with -m "not slow")')


def make_images(folder, n=4, size=40, seed=0):
    """n small RGB images of coloured discs on plain backgrounds: a stand-in for a real data set."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        bg, fg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        cy, cx, r = rng.integers(size // 4, 3 * size // 4, 2).tolist() + [size // 4]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img = np.where(disc[..., None], fg, bg).astype(np.uint8)
        Image.fromarray(img).save(folder / f'img_{i}.png')
    return folder


@pytest.fixture(scope='session')
def img_dir(tmp_path_factory):
    """One folder of 4 synthetic images for the whole session: tests read it, none writes to it."""
    return make_images(tmp_path_factory.mktemp('imgs'))


@pytest.fixture
def real_dir():
    """The course images: in data/, where README puts them, or in the folder ABP_DATA names."""
    path = Path(os.environ.get('ABP_DATA') or ROOT / 'data')
    if not (path.is_dir() and abp.list_images(path)):
        pytest.skip(f'no images in {path}: put the 11 course images there (data/README.md) or set ABP_DATA')
    return path


def tiny_argv(img_dir, out_dir, *extra):
    """Flags for a run that takes seconds: 16-px images, few epochs."""
    return ['--img_dir', str(img_dir), '--out_dir', str(out_dir), '--img_size', '16', '--n_epochs', '6',
            '--n_plot', '4', '--n_log', '3', '--n_stats', '2', '--langevin_num_steps', '3',
            '--cold_langevin_num_steps', '3', '--ninterp', '4', *extra]


@pytest.fixture(scope='session')
def tiny_run(img_dir, tmp_path_factory):
    """One finished `abp.main(tiny_argv(...))` (warm and cold; images and GIFs drawn, matplotlib's figures built
    but not rendered, as with fast_figures; what it printed to stderr in stderr.txt beside it), shared by the tests that only read its outputs; they must not write
    into it (copy it first)."""
    out, err = tmp_path_factory.mktemp('tiny_run') / 'out', io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
        skip_rendering(mp, gifs=False)
        abp.main(tiny_argv(img_dir, out))
    (out.parent / 'stderr.txt').write_text(err.getvalue())        # e.g. a figure's "could not draw" warning
    return out


def _stub_savefig(self, fname, *args, format=None, **kwargs):
    """Figure.savefig without drawing: a 1x1 PNG (or a stub PDF) where the figure would go."""
    if format is None:
        format = Path(os.fspath(fname)).suffix[1:].lower() if isinstance(fname, (str, os.PathLike)) else 'png'
    if format == 'pdf':
        data = b'%PDF-1.4\n% figure not rendered in the tests\n%%EOF\n'
    else:
        buf = io.BytesIO()
        Image.new('RGB', (1, 1), (255, 255, 255)).save(buf, format='PNG')
        data = buf.getvalue()
    if hasattr(fname, 'write'):
        fname.write(data)
    else:
        Path(os.fspath(fname)).write_bytes(data)


@pytest.fixture
def fast_figures(monkeypatch):
    """Matplotlib figures are built but not rendered (rendering is most of a tiny run's time): savefig
    writes a 1x1 PNG or a stub PDF, tight_layout does nothing, and a GIF keeps its first frame only. For
    tests about training, not pictures; the drawing code up to savefig still runs, and
    test_seventy_images_... and the occlusion test render every figure for real."""
    skip_rendering(monkeypatch)


def _first_frame_gif(frames, path, ms_per_frame):
    with abp.atomic_path(path) as tmp:
        frames[0].save(tmp, format='GIF')


def skip_rendering(monkeypatch, gifs=True):
    """What fast_figures does, with any MonkeyPatch (e.g. pytest.MonkeyPatch.context() in a wider fixture);
    gifs=False leaves the GIFs whole."""
    from matplotlib.figure import Figure
    monkeypatch.setattr(Figure, 'savefig', _stub_savefig)
    monkeypatch.setattr(Figure, 'tight_layout', lambda self, *a, **k: None)
    if gifs:
        monkeypatch.setattr(abp, 'save_gif', _first_frame_gif)


def run_main(argv, capsys):
    """abp.main(argv) in this process, as the shell would see it: (exit status, stderr lines). A string
    passed to sys.exit is what Python prints to stderr before exiting with status 1."""
    code = 0
    try:
        abp.main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    if isinstance(code, str):
        err, code = err + code + '\n', 1
    return (0 if code is None else code), err.strip().splitlines()


def strip_times(m):
    """metrics without wall-clock fields (they differ between any two runs) and without the flags."""
    if isinstance(m, dict):
        return {k: strip_times(v) for k, v in m.items() if 'seconds' not in k and k != 'args'}
    return m


def stop_after(monkeypatch, *at):
    """Make abp.train stop as Ctrl-C does (StopFlag.requested, set from train's hook) after each (mode, epoch)
    in `at`, once each; returns the set of stops still to come."""
    real, pending = abp.train, set(at)

    def train(state, data, chain, args, exp_dir, logger, hook=None):
        def stop(st, loss, psnr_db):
            if hook:
                hook(st, loss, psnr_db)
            if (chain.mode, st.epoch) in pending:
                pending.discard((chain.mode, st.epoch))
                abp.StopFlag.requested = True
        return real(state, data, chain, args, exp_dir, logger, stop)

    monkeypatch.setattr(abp, 'train', train)
    return pending


def spy_langevin(monkeypatch):
    """Wrap abp.langevin; returns a list that gets, per call, the chain's mode, the Langevin steps it really took
    (counted in its trace) and the step size s it used."""
    real, calls = abp.langevin, []

    def spy(gen, z, x, chain, s, mask=None, trace=None):
        trace = [] if trace is None else trace
        before = len(trace)
        out = real(gen, z, x, chain, s, mask, trace)
        calls.append({'mode': chain.mode, 'steps': len(trace) - before, 'step_size': s, 'n': len(z)})
        return out

    monkeypatch.setattr(abp, 'langevin', spy)
    return calls
