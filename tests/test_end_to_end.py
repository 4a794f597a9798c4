"""The script as a user runs it: a tiny synthetic folder, the real course images, bad folders."""
import json
import subprocess
import sys

import pytest

import abp
from conftest import ROOT, tiny_argv


def test_main_writes_every_output(img_dir, tmp_path):
    out = tmp_path / 'out'
    abp.main(tiny_argv(img_dir, out))
    for mode in ('warm', 'cold'):
        d = out / mode
        for e in (2, 4, 6):
            for kind in ('recon', 'sampled', 'interp'):
                assert (d / f'{e:04d}_{kind}.png').stat().st_size > 0, (mode, e, kind)
        for f in ('stat.png', 'stat.pdf', 'output.log', 'checkpoint.pt', 'metrics.json', 'langevin_trace.json'):
            assert (d / f).stat().st_size > 0, (mode, f)
    for f in ('compare_recon.png', 'compare_samples.png', 'compare_interp.png', 'compare_loss.png'):
        assert (out / f).stat().st_size > 0, f
    m = json.loads((out / 'metrics.json').read_text())
    assert m['n_images'] == 4 and m['total_seconds'] > 0
    for mode in ('warm', 'cold'):
        r = m[mode]
        for k in ('recon_psnr_db', 'sample_nn_psnr_db_median', 'seconds', 'seconds_per_epoch'):
            assert isinstance(r[k], float), k
        assert 1 <= r['sample_coverage'] <= 4 and r['epochs'] == 6
        assert len(r['z_mean']) == 2 and len(r['z_std']) == 2
    assert 'recon_psnr_db' in m['pca']


def test_checkpoint_holds_everything_to_remake_figures(img_dir, tmp_path):
    import torch
    out = tmp_path / 'out'
    abp.main(tiny_argv(img_dir, out, '--start', 'warm'))
    ck = torch.load(out / 'warm' / 'checkpoint.pt', weights_only=False)
    for k in ('generator', 'optimizer', 'scheduler', 'z', 'epoch', 'args'):
        assert k in ck, k
    assert ck['epoch'] == 6 and ck['z'].shape == (4, 2)
    args = abp.parse_args(tiny_argv(img_dir, out))
    model = abp.Model(args)
    model.load_state_dict(ck['generator'])
    abp.save_interp(model, args, abp.interp_half_width(ck['z']), 'cpu', tmp_path / 'again.png')
    assert (tmp_path / 'again.png').exists()


def run_script(*argv, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / 'abp.py'), *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize('case', ['missing', 'empty', 'no_images'])
def test_bad_folder_is_one_line_error(tmp_path, case):
    folder = tmp_path / 'imgs'
    if case != 'missing':
        folder.mkdir()
    if case == 'no_images':
        (folder / 'notes.txt').write_text('not an image')
        (folder / 'broken.jpg').write_bytes(b'not a jpeg at all')
    r = run_script('--img_dir', str(folder), '--out_dir', str(tmp_path / 'out'), '--n_epochs', '2')
    assert r.returncode != 0
    lines = [l for l in r.stderr.strip().splitlines() if not l.startswith('warning:')]
    assert len(lines) == 1, r.stderr
    assert str(folder) in lines[0] and 'Traceback' not in r.stderr


def test_real_images_loss_goes_down(real_dir, tmp_path):
    """A few epochs on the 11 course images at 64 px: the loss falls."""
    out = tmp_path / 'out'
    abp.main(['--img_dir', str(real_dir), '--out_dir', str(out), '--start', 'warm', '--img_size', '64',
              '--n_epochs', '40', '--n_stats', '5', '--n_plot', '40', '--langevin_num_steps', '5'])
    m = json.loads((out / 'warm' / 'metrics.json').read_text())
    assert len(m['images']) == 11
    ck = __import__('torch').load(out / 'warm' / 'checkpoint.pt', weights_only=False)
    loss = ck['stats']['loss']
    assert loss[-1] < 0.8 * loss[0], loss
