"""The script as a user runs it: a tiny synthetic folder, the real course images, bad folders."""
import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

import abp
from conftest import ROOT, run_main, tiny_argv


def test_main_writes_every_output(tiny_run, img_dir):
    """Every file a run promises: per-mode snapshots on the n_plot schedule, the middle and the end,
    curves, log, checkpoint, metrics; the comparison figures and GIFs; output/metrics.json's fields."""
    out = tiny_run
    for mode in ('warm', 'cold'):
        d = out / mode
        for e in (3, 4, 6):                        # every n_plot = 4, the middle (3) and the last
            for kind in ('recon', 'sampled', 'interp'):
                assert (d / f'{e:04d}_{kind}.png').stat().st_size > 0, (mode, e, kind)
        assert not any((d / f'{e:04d}_recon.png').exists() for e in (1, 2, 5))
        for f in ('stat.png', 'stat.pdf', 'output.log', 'checkpoint.pt', 'metrics.json', 'langevin_trace.json'):
            assert (d / f).stat().st_size > 0, (mode, f)
    # matplotlib's figures (not rendered here: test_seventy_images_... renders them) were built to the end
    for f in ('compare_recon.jpg', 'compare_samples.jpg', 'interp_warm.jpg', 'interp_cold.jpg', 'compare_loss.png',
              'latent_map_warm.png', 'latent_map_cold.png'):
        assert (out / f).is_file(), f
    assert 'could not draw' not in (out.parent / 'stderr.txt').read_text()
    # the pictures drawn without matplotlib, as the tiny run's flags shape them: 4 images of 16 px, 4x4 panel
    with Image.open(out / 'warm' / '0006_recon.png') as im:
        assert im.size == (2 + 4 * 18, 2 + 18)
    with Image.open(out / 'warm' / '0006_sampled.png') as im:
        assert im.size == (2 + 6 * 18, 2 + 6 * 18)
    with Image.open(out / 'cold' / '0006_interp.png') as im:
        assert im.size == (2 + 4 * 18, 2 + 4 * 18)
    for mode in ('warm', 'cold'):
        with Image.open(out / f'training_{mode}.gif') as im:     # a frame per epoch 1..6, the recon strip + title
            assert im.n_frames == 6 and im.size == (2 + 4 * 18, 2 + 18 + 16), (mode, im.n_frames, im.size)
        with Image.open(out / f'latent_walk_{mode}.gif') as im:  # g(z) beside the minimap, 48 steps
            assert im.n_frames == 48 and im.size == (32, 16), (mode, im.n_frames, im.size)
    m = json.loads((out / 'metrics.json').read_text())
    assert m['n_images'] == 4 and m['total_seconds'] > 0 and m['parallel'] is False
    model = abp.Model(abp.parse_args(tiny_argv(img_dir, out)))
    assert m['n_params'] == sum(p.numel() for p in model.parameters())
    for mode in ('warm', 'cold'):
        r = m[mode]
        for k in ('recon_psnr_db', 'sample_nn_psnr_db_median', 'seconds', 'seconds_per_epoch'):
            assert isinstance(r[k], float), k
        assert 1 <= r['sample_coverage'] <= 4 and r['epochs'] == 6
        assert len(r['z_mean']) == 2 and len(r['z_std']) == 2
    assert 'recon_psnr_db' in m['pca']


def test_checkpoint_holds_everything_to_remake_figures(tiny_run, img_dir, tmp_path):
    """The warm checkpoint alone rebuilds the model and redraws the last interpolation panel, byte for byte."""
    ck = torch.load(tiny_run / 'warm' / 'checkpoint.pt', weights_only=False)
    for k in ('model', 'optimizer', 'scheduler', 'z', 'z_eval', 'epoch', 'stats', 'args', 'chain', 'rng'):
        assert k in ck, k
    assert ck['epoch'] == 6 and ck['z'].shape == (4, 2) and ck['chain']['mode'] == 'warm'
    args = abp.parse_args(tiny_argv(img_dir, tmp_path / 'out'))
    model = abp.Model(args).to(abp.device)
    model.load_state_dict(ck['model'])
    abp.save_interp(model, args, abp.interp_half_width(ck['z']), abp.device, tmp_path / 'again.png')
    assert (tmp_path / 'again.png').read_bytes() == (tiny_run / 'warm' / '0006_interp.png').read_bytes()


def bad_folder(tmp_path, case):
    folder = tmp_path / 'imgs'
    if case != 'missing':
        folder.mkdir()
    if case == 'no_images':
        (folder / 'notes.txt').write_text('not an image')
        (folder / 'broken.jpg').write_bytes(b'not a jpeg at all')
    return folder


def test_bad_folder_is_one_line_error_from_the_shell(tmp_path):
    """`python abp.py` in a fresh interpreter: exit status 1 and one line naming the folder, no traceback."""
    folder = bad_folder(tmp_path, 'missing')
    r = subprocess.run([sys.executable, str(ROOT / 'abp.py'), '--img_dir', str(folder), '--out_dir',
                        str(tmp_path / 'out'), '--n_epochs', '2'], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(folder) in lines[0] and 'Traceback' not in r.stderr


@pytest.mark.parametrize('case', ['missing', 'empty', 'no_images'])
def test_bad_folder_is_one_line_error(tmp_path, case, capsys):
    """The same through abp.main in this process, for each kind of bad folder (warnings aside)."""
    folder = bad_folder(tmp_path, case)
    code, err = run_main(['--img_dir', str(folder), '--out_dir', str(tmp_path / 'out'), '--n_epochs', '2'], capsys)
    assert code == 1
    lines = [l for l in err if not l.startswith('warning:')]
    assert len(lines) == 1, err
    assert str(folder) in lines[0]


@pytest.mark.slow
def test_real_images_loss_goes_down(real_dir, tmp_path, fast_figures):
    """A few epochs on the 11 course images at 16 px, the default chains: the loss falls."""
    out = tmp_path / 'out'
    abp.main(['--img_dir', str(real_dir), '--out_dir', str(out), '--start', 'warm', '--img_size', '16',
              '--n_epochs', '20', '--n_stats', '5', '--n_plot', '20'])
    m = json.loads((out / 'warm' / 'metrics.json').read_text())
    assert len(m['images']) == 11
    ck = torch.load(out / 'warm' / 'checkpoint.pt', weights_only=False)
    loss = ck['stats']['loss']
    assert loss[-1] < 0.8 * loss[0], loss


def test_a_one_mode_run_writes_only_into_its_own_folder(tiny_run, img_dir, tmp_path, fast_figures):
    """--start warm into a folder that holds a run of both modes: the top-level metrics.json and comparison
    figures are left byte for byte, the cold run is untouched, and everything the warm run makes (its
    figures, its summary) is in out/warm/."""
    import shutil
    out = tmp_path / 'out'
    shutil.copytree(tiny_run, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file() and 'warm' not in p.parts}
    abp.main(tiny_argv(img_dir, out, '--start', 'warm', '--n_epochs', '3', '--lr', '1e-3'))
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file() and 'warm' not in p.parts}
    assert after == before
    summary = json.loads((out / 'warm' / 'summary.json').read_text())
    assert [k for k in summary if k in ('warm', 'cold')] == ['warm'] and summary['args']['lr'] == 1e-3
    assert summary['warm']['epochs'] == 3 and summary['n_images'] == 4
    for f in ('compare_recon.jpg', 'interp_warm.jpg', 'latent_map_warm.png', 'latent_walk_warm.gif'):
        assert (out / 'warm' / f).exists(), f
