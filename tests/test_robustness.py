"""Bad input, faults and interruption: a clear message or correct handling, nothing lost."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

import abp
from conftest import ROOT, make_images, tiny_argv


# ---- flags ------------------------------------------------------------------

@pytest.mark.parametrize('argv,word', [
    (['--n_epochs', '0'], 'n_epochs'), (['--n_epochs', '-3'], 'n_epochs'),
    (['--langevin_num_steps', '0'], 'langevin_num_steps'), (['--langevin_step_size', '-0.1'], 'langevin_step_size'),
    (['--langevin_step_size', 'nan'], 'langevin_step_size'), (['--mse_sigma', '0'], 'mse_sigma'),
    (['--prior_sigma', '-1'], 'prior_sigma'), (['--lr', 'inf'], 'lr'), (['--nz', '0'], 'nz'),
    (['--start', 'lukewarm'], 'start'), (['--img_size', '100'], 'img_size'), (['--img_size', '4'], 'img_size'),
    (['--gamma', '1.5'], 'gamma'), (['--langevin_noise_scale', '-1'], 'langevin_noise_scale'),
])
def test_bad_flag_is_argparse_error(argv, word, capsys):
    with pytest.raises(SystemExit) as e:
        abp.parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert 'error:' in err and word in err


def test_out_dir_that_is_a_file(tmp_path, capsys):
    f = tmp_path / 'afile'
    f.write_text('x')
    with pytest.raises(SystemExit) as e:
        abp.parse_args(['--out_dir', str(f)])
    assert e.value.code == 2 and 'is a file' in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason='root can write anywhere')
def test_out_dir_not_writable(tmp_path, capsys):
    ro = tmp_path / 'ro'
    ro.mkdir(mode=0o500)
    with pytest.raises(SystemExit):
        abp.parse_args(['--out_dir', str(ro / 'sub')])
    assert 'not writable' in capsys.readouterr().err


# ---- images -----------------------------------------------------------------

def test_every_pillow_mode_converts(tmp_path):
    d = tmp_path / 'modes'
    d.mkdir()
    rgba = Image.new('RGBA', (12, 12), (255, 0, 0, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 6, 12))                     # left half fully transparent black
    rgba.save(d / 'a_rgba.png')
    Image.new('LA', (12, 12), (0, 0)).save(d / 'b_la.png')      # fully transparent -> white, not black
    Image.new('L', (12, 12), 128).save(d / 'c_gray.PNG')
    Image.new('RGB', (12, 12), (0, 0, 255)).convert('P').save(d / 'd_palette.gif')
    Image.new('CMYK', (12, 12), (0, 255, 255, 0)).save(d / 'e_cmyk.JPG')   # red in CMYK
    Image.fromarray(np.full((12, 12), 65535, np.uint16)).save(d / 'f_16bit.png')
    Image.new('RGB', (30, 12), (0, 255, 0)).save(d / 'g_wide.webp')
    (d / 'notes.txt').write_text('ignored')
    (d / '.DS_Store').write_bytes(b'\0\1')
    (d / 'sub').mkdir()
    x, names = abp.load_images(d, abp.default_transform(8))
    assert names == ['a_rgba.png', 'b_la.png', 'c_gray.PNG', 'd_palette.gif', 'e_cmyk.JPG', 'f_16bit.png', 'g_wide.webp']
    u = (x + 1) / 2
    assert u.shape == (7, 3, 8, 8)
    assert torch.allclose(u[0, :, 4, 0], torch.ones(3), atol=0.02)         # transparent -> white
    assert torch.allclose(u[0, :, 4, 7], torch.tensor([1.0, 0, 0]), atol=0.02)
    assert torch.allclose(u[1], torch.ones_like(u[1]), atol=0.02)
    assert torch.allclose(u[2], torch.full_like(u[2], 128 / 255), atol=0.02)
    assert torch.allclose(u[3, :, 4, 4], torch.tensor([0, 0, 1.0]), atol=0.02)
    assert u[4, 0, 4, 4] > 0.8 and u[4, 1, 4, 4] < 0.2                      # CMYK red stays red
    assert torch.allclose(u[5], torch.ones_like(u[5]), atol=0.02)           # 16-bit full scale -> white
    assert torch.allclose(u[6, 1], torch.ones_like(u[6, 1]), atol=0.02)     # wide image centre-cropped


def test_exif_orientation_applied():
    img = Image.new('RGB', (20, 10), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 10, 10))                      # left half red
    exif = img.getexif()
    exif[0x0112] = 6                                            # "rotate 90 CW to display"
    path = '/tmp/abp_exif_test.jpg'
    img.save(path, exif=exif)
    with Image.open(path) as raw:
        out = abp.to_rgb(raw)
    assert out.size == (10, 20)
    r, g, b = out.getpixel((5, 2))
    assert r > 200 and b < 60                                   # the red half is now on top


def test_unreadable_image_skipped_with_warning(tmp_path, capsys):
    d = make_images(tmp_path / 'imgs', n=3)
    good = (d / 'img_0.png').read_bytes()
    (d / 'truncated.png').write_bytes(good[: len(good) // 2])
    (d / 'fake.jpg').write_text('hello')
    x, names = abp.load_images(d, abp.default_transform(8))
    assert names == ['img_0.png', 'img_1.png', 'img_2.png']
    out = capsys.readouterr().out
    assert 'truncated.png' in out and 'fake.jpg' in out


def test_single_image_trains(tmp_path):
    d = make_images(tmp_path / 'one', n=1)
    abp.main(tiny_argv(d, tmp_path / 'out'))
    m = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    assert m['n_images'] == 1 and all(v > 0 for v in m['warm']['interp_d'])


# ---- faults -----------------------------------------------------------------

def test_divergence_stops_with_message(img_dir, tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / 'abp.py'), *tiny_argv(img_dir, tmp_path / 'out'),
                        '--mse_sigma', '1e-30'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert 'Traceback' not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert 'non-finite at epoch 1' in last and '--langevin_step_size' in last


def test_divergence_keeps_last_good_checkpoint(img_dir, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    real = abp.learn_step

    def poisoned(model, optimizer, z, x, mse_sigma):
        loss, x_hat = real(model, optimizer, z, x, mse_sigma)
        return (loss * float('nan') if optimizer.state_dict()['state'][0]['step'] >= 5 else loss), x_hat

    monkeypatch.setattr(abp, 'learn_step', poisoned)
    with pytest.raises(SystemExit) as e:
        abp.main(tiny_argv(img_dir, out, '--start', 'warm'))
    assert 'epoch 5' in str(e.value.code)
    assert torch.load(out / 'warm' / 'checkpoint.pt', weights_only=False)['epoch'] == 4


def strip_times(m):
    """metrics without wall-clock fields (they differ between any two runs)."""
    if isinstance(m, dict):
        return {k: strip_times(v) for k, v in m.items() if 'seconds' not in k and k != 'args'}
    return m


def test_same_seed_same_metrics(img_dir, tmp_path):
    abp.main(tiny_argv(img_dir, tmp_path / 'a'))
    abp.main(tiny_argv(img_dir, tmp_path / 'b'))
    a = json.loads((tmp_path / 'a' / 'metrics.json').read_text())
    b = json.loads((tmp_path / 'b' / 'metrics.json').read_text())
    assert strip_times(a) == strip_times(b)
    c_args = tiny_argv(img_dir, tmp_path / 'c', '--seed', '2')
    abp.main(c_args)
    c = json.loads((tmp_path / 'c' / 'metrics.json').read_text())
    assert strip_times(a) != strip_times(c)


def test_interrupted_then_resumed_equals_uninterrupted(img_dir, tmp_path, monkeypatch):
    abp.main(tiny_argv(img_dir, tmp_path / 'full'))
    real = abp.check_finite

    def stop_at_3(epoch, loss, z, model):
        real(epoch, loss, z, model)
        if epoch == 3 and model.args.start == 'warm':
            abp.StopFlag.requested = True                 # as the SIGINT handler does

    monkeypatch.setattr(abp, 'check_finite', stop_at_3)
    with pytest.raises(SystemExit) as e:
        abp.main(tiny_argv(img_dir, tmp_path / 'cut'))
    assert e.value.code == 130
    assert torch.load(tmp_path / 'cut' / 'warm' / 'checkpoint.pt', weights_only=False)['epoch'] == 3
    monkeypatch.setattr(abp, 'check_finite', real)
    abp.main(tiny_argv(img_dir, tmp_path / 'cut', '--resume'))
    for mode in ('warm', 'cold'):
        full = torch.load(tmp_path / 'full' / mode / 'checkpoint.pt', weights_only=False)
        cut = torch.load(tmp_path / 'cut' / mode / 'checkpoint.pt', weights_only=False)
        assert torch.equal(full['z'], cut['z']), mode
        for k, v in full['generator'].items():
            assert torch.equal(v, cut['generator'][k]), (mode, k)
    a = json.loads((tmp_path / 'full' / 'metrics.json').read_text())
    b = json.loads((tmp_path / 'cut' / 'metrics.json').read_text())
    assert strip_times(a) == strip_times(b)


def test_sigterm_writes_checkpoint_and_exits_cleanly(img_dir, tmp_path):
    out = tmp_path / 'out'
    argv = tiny_argv(img_dir, out, '--start', 'warm', '--n_epochs', '100000', '--n_plot', '100000')
    p = subprocess.Popen([sys.executable, str(ROOT / 'abp.py'), *argv], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    log = out / 'warm' / 'output.log'
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and 'epoch     2' in log.read_text()):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130
    assert 'Traceback' not in err and '--resume' in err.strip().splitlines()[-1]
    ck = torch.load(out / 'warm' / 'checkpoint.pt', weights_only=False)
    assert ck['epoch'] >= 2


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / 'metrics.json'
    abp.write_json({'good': 1}, path)
    with pytest.raises(TypeError):
        abp.write_json({'bad': object()}, path)             # fails half-way through serialising
    assert json.loads(path.read_text()) == {'good': 1}
    assert [p.name for p in tmp_path.iterdir()] == ['metrics.json']


@pytest.mark.parametrize('case', ['other_size', 'corrupt'])
def test_resume_from_an_unusable_checkpoint_is_one_line_error(img_dir, tmp_path, case):
    out = tmp_path / 'out'
    abp.main(tiny_argv(img_dir, out, '--start', 'warm'))
    extra = ['--img_size', '32'] if case == 'other_size' else []
    if case == 'corrupt':
        (out / 'warm' / 'checkpoint.pt').write_bytes(b'garbage')
    r = subprocess.run([sys.executable, str(ROOT / 'abp.py'), *tiny_argv(img_dir, out, '--start', 'warm', '--resume'),
                        *extra], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert 'checkpoint' in last and 'without --resume' in last
    if case == 'other_size':
        assert '--img_size 16' in last
