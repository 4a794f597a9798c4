"""Bad input, faults and interruption: a clear message or correct handling, nothing lost."""
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

import abp
from conftest import ROOT, make_images, run_main, skip_rendering, spy_langevin, stop_after, strip_times, tiny_argv

DEFAULTS = vars(abp.build_parser().parse_args([]))


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


def test_a_transform_without_one_size_is_a_clear_error(tmp_path):
    """Resize(128) keeps each photo's aspect ratio: the images differ in size, and the error names the file and the
    fix instead of failing inside the tensor copy."""
    from torchvision import transforms
    d = tmp_path / 'imgs'
    d.mkdir()
    Image.new('RGB', (40, 40)).save(d / 'a.png')
    Image.new('RGB', (60, 40)).save(d / 'b.png')
    with pytest.raises(abp.UserError, match=r"b\.png .*Resize\(\(128, 128\)\)"):
        abp.load_img_tensors(d, transforms.Compose([transforms.Resize(16), transforms.ToTensor()]), 'cpu')


@pytest.fixture(scope='module')
def one_image_run(tmp_path_factory):
    """abp.main on a folder of one image, figures built but not rendered: (output folder, its stderr)."""
    d = make_images(tmp_path_factory.mktemp('one') / 'imgs', n=1)
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
        skip_rendering(mp)
        abp.main(tiny_argv(d, d.parent / 'out', '--n_stats', '1'))
    return d.parent / 'out', err.getvalue()


def test_single_image_trains(one_image_run):
    """A folder of one image: both modes train (the PSNR rises above the first epoch's, z stays finite,
    the interpolation square holds the image's z)."""
    out, _ = one_image_run
    m = json.loads((out / 'metrics.json').read_text())
    assert m['n_images'] == 1
    for mode in ('warm', 'cold'):
        ck = torch.load(out / mode / 'checkpoint.pt', weights_only=False)
        psnr = dict(zip(ck['stats']['epoch'], ck['stats']['psnr_db']))
        assert psnr[6] > psnr[1] + 0.5, (mode, psnr)
        assert m[mode]['recon_psnr_db'] == pytest.approx(psnr[6], abs=1e-3)
        z = ck['z']
        assert z.shape == (1, 2) and torch.isfinite(z).all()
        assert torch.all(z.abs().flatten().cpu() <= torch.tensor(m[mode]['interp_d'])), (z, m[mode]['interp_d'])


def test_single_image_draws_every_figure(one_image_run):
    """Every figure's drawing code copes with one image: no 'could not draw' warning."""
    out, err = one_image_run
    assert 'could not draw' not in err, err


# ---- faults -----------------------------------------------------------------

@pytest.mark.parametrize('mode,flag', [('warm', f"--langevin_step_size (now {DEFAULTS['langevin_step_size']})"),
                                       ('cold', f"--cold_langevin_step_size (now {DEFAULTS['cold_langevin_step_size']})")])
def test_divergence_stops_with_message(img_dir, tmp_path, capsys, mode, flag, fast_figures):
    """A run that turns non-finite at once ends with exit status 1 and one line naming the epoch and the
    flags to change: the step size of the mode that diverged, with its value."""
    code, err = run_main(tiny_argv(img_dir, tmp_path / 'out', '--mse_sigma', '1e-30', '--start', mode), capsys)
    assert code == 1
    assert 'Traceback' not in '\n'.join(err)
    assert 'non-finite at epoch 1' in err[-1] and f'lower {flag}' in err[-1], err[-1]


def test_divergence_keeps_last_good_checkpoint(img_dir, tmp_path, monkeypatch, fast_figures):
    """A loss that turns NaN at epoch 5: the run stops naming epoch 5, and the checkpoint on disk is the
    last good one (epoch 4), not the broken state."""
    out = tmp_path / 'out'
    real = abp.learn_step

    def poisoned(model, optimizer, z, x, mse_sigma, mask=None):
        loss, x_hat = real(model, optimizer, z, x, mse_sigma, mask)
        return (loss * float('nan') if optimizer.state_dict()['state'][0]['step'] >= 5 else loss), x_hat

    monkeypatch.setattr(abp, 'learn_step', poisoned)
    with pytest.raises(SystemExit) as e:
        abp.main(tiny_argv(img_dir, out, '--start', 'warm'))
    assert 'epoch 5' in str(e.value.code)
    assert torch.load(out / 'warm' / 'checkpoint.pt', weights_only=False)['epoch'] == 4


def test_another_seed_gives_another_run(tiny_run, img_dir, tmp_path, fast_figures):
    """--seed 2 changes every result of tiny_run's warm run. (The same flags giving the same metrics is
    test_batches' test of --batch_size 4 against tiny_run.)"""
    abp.main(tiny_argv(img_dir, tmp_path, '--seed', '2', '--start', 'warm'))
    a = json.loads((tiny_run / 'warm' / 'metrics.json').read_text())
    c = json.loads((tmp_path / 'warm' / 'metrics.json').read_text())
    assert [k for k in ('recon_psnr_db', 'sample_nn_psnr_db_median', 'interp_d', 'first_layer_norm')
            if a[k] == c[k]] == []


def test_interrupted_then_resumed_equals_uninterrupted(tiny_run, img_dir, tmp_path, monkeypatch, fast_figures):
    """Stopped after warm's epoch 3 (as by Ctrl-C), then --resume: latents, generators and metrics equal
    those of tiny_run, the same flags run without a stop."""
    full = tiny_run
    stops = stop_after(monkeypatch, ('warm', 3))
    with pytest.raises(SystemExit) as e:
        abp.main(tiny_argv(img_dir, tmp_path / 'cut'))
    assert e.value.code == 130 and not stops
    assert torch.load(tmp_path / 'cut' / 'warm' / 'checkpoint.pt', weights_only=False)['epoch'] == 3
    assert not (tmp_path / 'cut' / 'cold').exists()
    abp.main(tiny_argv(img_dir, tmp_path / 'cut', '--resume'))
    for mode in ('warm', 'cold'):
        want = torch.load(full / mode / 'checkpoint.pt', weights_only=False)
        cut = torch.load(tmp_path / 'cut' / mode / 'checkpoint.pt', weights_only=False)
        assert torch.equal(want['z'], cut['z']), mode
        for k, v in want['model'].items():
            assert torch.equal(v, cut['model'][k]), (mode, k)
    a = json.loads((full / 'metrics.json').read_text())
    b = json.loads((tmp_path / 'cut' / 'metrics.json').read_text())
    assert strip_times(a) == strip_times(b)


def test_sigterm_writes_checkpoint_and_exits_cleanly(img_dir, tmp_path):
    """A real SIGTERM to `python abp.py` (a fresh interpreter: the signal handler is what is tested) ends
    the run between epochs with status 130, a checkpoint and a one-line hint to --resume."""
    out = tmp_path / 'out'
    argv = tiny_argv(img_dir, out, '--start', 'warm', '--n_epochs', '100000', '--n_plot', '100000', '--n_log', '100000',
                     '--lr', '1e-4')         # slow to learn: at the default lr the guard ends this run near epoch 100
    p = subprocess.Popen([sys.executable, str(ROOT / 'abp.py'), *argv], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    log = out / 'warm' / 'output.log'
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and 'start:' in log.read_text()):   # training begins
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130
    assert 'Traceback' not in err and '--resume' in err.strip().splitlines()[-1]
    ck = torch.load(out / 'warm' / 'checkpoint.pt', weights_only=False)
    assert ck['epoch'] >= 1 and f"stopped at epoch {ck['epoch']} of warm" in err


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / 'metrics.json'
    abp.write_json({'good': 1}, path)
    with pytest.raises(TypeError):
        abp.write_json({'bad': object()}, path)             # fails half-way through serialising
    assert json.loads(path.read_text()) == {'good': 1}
    assert [p.name for p in tmp_path.iterdir()] == ['metrics.json']


@pytest.mark.parametrize('case', ['other_size', 'other_batch', 'other_folder', 'corrupt', 'truncated'])
def test_resume_from_an_unusable_checkpoint_is_one_line_error(tiny_run, img_dir, tmp_path, case, capsys):
    """--resume from a checkpoint of another image size or mini-batch size (its batches would differ), of another
    folder with as many images, or from a corrupt or cut-off file: exit status 1 and one line naming the
    checkpoint, what is wrong and to run without --resume (tiny_run's warm run, copied)."""
    out = tmp_path / 'out'
    shutil.copytree(tiny_run / 'warm', out / 'warm')
    extra = {'other_size': ['--img_size', '32'], 'other_batch': ['--batch_size', '2']}.get(case, [])
    folder = make_images(tmp_path / 'other', seed=7) if case == 'other_folder' else img_dir
    ckpt = out / 'warm' / 'checkpoint.pt'
    if case == 'corrupt':
        ckpt.write_bytes(b'garbage')
    if case == 'truncated':
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    code, err = run_main([*tiny_argv(folder, out, '--start', 'warm', '--resume'), *extra], capsys)
    assert code == 1 and 'Traceback' not in '\n'.join(err)
    last = err[-1]
    assert str(ckpt) in last and 'without --resume' in last
    want = {'other_size': '--img_size 16', 'other_batch': '--batch_size 64', 'other_folder': 'other images'}
    assert want.get(case, 'cannot read') in last


def test_a_fresh_run_starts_its_log_and_a_resumed_run_continues_it(img_dir, tmp_path, fast_figures):
    """output.log holds one run: a second fresh run into the same folder replaces it; --resume appends."""
    out, argv = tmp_path / 'out', ['--start', 'warm', '--n_epochs', '2']
    for _ in range(2):
        abp.main(tiny_argv(img_dir, out, *argv))
    log = (out / 'warm' / 'output.log').read_text()
    assert log.count('warm start:') == 1
    abp.main(tiny_argv(img_dir, out, '--start', 'warm', '--n_epochs', '4', '--resume'))
    log = (out / 'warm' / 'output.log').read_text()
    assert log.count('warm start:') == 2 and 'resumed from' in log


@pytest.mark.parametrize('mode', ['warm', 'cold'])
def test_resume_checks_the_mode(tiny_run, img_dir, tmp_path, mode, capsys, fast_figures):
    """A checkpoint of a cold run put where a warm run resumes is refused, naming --start cold; a warm one is
    taken (it is finished: the run only evaluates and draws)."""
    out = tmp_path / 'out'
    shutil.copytree(tiny_run / mode, out / 'warm')
    code, err = run_main([*tiny_argv(img_dir, out, '--start', 'warm', '--resume')], capsys)
    if mode == 'warm':
        assert code == 0, err
        resumed, want = (json.loads((d / 'warm' / 'metrics.json').read_text()) for d in (out, tiny_run))
        assert strip_times(resumed) == strip_times(want)
    else:
        assert code == 1 and '--start cold' in err[-1] and 'without --resume' in err[-1]


# ---- training health ---------------------------------------------------------

def saturate_once_at(epoch_to_break):
    """A learn_step that, at one epoch, wrecks the generator's last layer so every output saturates."""
    real, calls = abp.learn_step, {'n': 0}

    def broken(model, optimizer, z, x, mse_sigma, mask=None):
        calls['n'] += 1
        out = real(model, optimizer, z, x, mse_sigma, mask)
        if calls['n'] == epoch_to_break:
            with torch.no_grad():
                last = [m for m in model.Gnet.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
                last.weight.mul_(300.0)
                last.bias.add_(40.0)
        return out
    return broken


def test_guard_recovers_from_a_collapse(img_dir, tmp_path, monkeypatch, fast_figures):
    """A collapse injected at epoch 25: the guard restores the state of epoch 20 with half the lr, logs
    one warning line, and training goes on from there: it ends above where the good state was."""
    monkeypatch.setattr(abp, 'learn_step', saturate_once_at(25))
    abp.main(tiny_argv(img_dir, tmp_path / 'hit', '--start', 'warm', '--n_epochs', '40', '--n_plot', '40'))
    hit = json.loads((tmp_path / 'hit' / 'warm' / 'metrics.json').read_text())
    events = hit['guard_events']
    # wrecked by epoch 25's step, seen from epoch 26 on; the guard acts on the second collapsed epoch in a row
    assert len(events) == 1 and events[0]['back_to'] == 20 and events[0]['epoch'] == 25 + abp.GUARD_PATIENCE, events
    assert 'PSNR fell' in events[0]['what'] and events[0]['lr'] < abp.parse_args([]).lr / 2
    stats = torch.load(tmp_path / 'hit' / 'warm' / 'checkpoint.pt', weights_only=False)['stats']
    before = {e: db for e, db in zip(stats['epoch'], stats['psnr_db']) if e <= 20}    # kept from before the fall
    assert len(before) >= 9 and all(b > a for a, b in zip(stats['epoch'], stats['epoch'][1:]))
    assert hit['recon_psnr_db'] > max(before.values()) + 0.5, (hit['recon_psnr_db'], before)
    log = (tmp_path / 'hit' / 'warm' / 'output.log').read_text()
    assert sum('guard:' in line for line in log.splitlines()) == 1


def test_guard_leaves_an_easy_fit_alone(img_dir, tmp_path, fast_figures):
    """Four 16-px images with every default fit to ~40 dB, and the epoch PSNR then dips by 6 dB or more now and
    then (to ~19 dB once, near epoch 83) and heals itself within a few epochs: no collapse. Both modes end without
    a guard event (a guard that took each dip for a collapse gave up at epoch 105)."""
    out = tmp_path / 'out'
    abp.main(['--img_dir', str(img_dir), '--out_dir', str(out), '--img_size', '16', '--n_epochs', '120',
              '--n_plot', '120', '--n_log', '120'])
    m = json.loads((out / 'metrics.json').read_text())
    stats = torch.load(out / 'warm' / 'checkpoint.pt', weights_only=False)['stats']
    assert max(stats['psnr_db']) > 38                              # the fit is easy
    assert m['warm']['guard_events'] == [] and m['cold']['guard_events'] == []


def test_guard_gives_up_after_repeated_collapses(img_dir, tmp_path, monkeypatch, fast_figures):
    """Wrecked every epoch from epoch 15 on: five recoveries, then one line naming the epoch and the
    flags to change, exit 1; the checkpoint on disk is the last good state."""
    real = abp.learn_step

    def always_broken(model, optimizer, z, x, mse_sigma, mask=None):
        out = real(model, optimizer, z, x, mse_sigma, mask)
        if optimizer.state_dict()['state'][0]['step'] >= 15:
            with torch.no_grad():
                for p in model.Gnet.parameters():
                    p.mul_(-50.0)
        return out

    monkeypatch.setattr(abp, 'learn_step', always_broken)
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as e:
        abp.main(tiny_argv(img_dir, out, '--start', 'warm', '--n_epochs', '40', '--n_plot', '100'))
    msg = str(e.value.code)
    assert 'after 5 recoveries' in msg and '--lr' in msg and len(msg.splitlines()) == 1
    ck = torch.load(out / 'warm' / 'checkpoint.pt', weights_only=False)
    assert ck['epoch'] == 10 and len(ck['events']) == 5


@pytest.mark.parametrize('loss,chain_energy,scale', [(100.0, 10.0, 0.5), (20.0, 10.0, 1.0), (100.0, None, 1.0)])
def test_guard_halves_the_langevin_step_when_the_chain_made_the_fit_worse(loss, chain_energy, scale, img_dir,
                                                                           tmp_path, monkeypatch):
    """A sick epoch (PSNR far below the best) is rewound with half the lr; the Langevin step is halved too
    when the epoch's loss is more than twice the energy its chain reached (the chain, not the learning,
    made the fit worse), and not otherwise; the next epoch's chain moves with the halved step."""
    args = abp.parse_args(['--img_dir', str(img_dir), '--img_size', '16', '--langevin_step_cap', '0',
                           '--out_dir', str(tmp_path)])
    chain, data = abp.chain_for(args, 'warm'), abp.load_data(args)
    state = abp.new_state(args, 4)
    lr = state.optimizer.param_groups[0]['lr']
    state.epoch, state.best_db, state.first_db, state.low_epochs = 12, 30.0, 5.0, abp.GUARD_PATIENCE - 1
    assert abp.guard(state, loss, 10.0, chain_energy, chain, args, abp.get_logger(tmp_path)) is True
    assert len(state.events) == 1 and state.epoch == 0                # back to the state kept at epoch 0
    assert state.optimizer.param_groups[0]['lr'] == pytest.approx(lr / 2)
    assert state.step_scale == scale
    calls = spy_langevin(monkeypatch)
    abp.abp_epoch(state, data, data.batch(None), chain, args)
    assert calls[0]['step_size'] == pytest.approx(scale * chain.step_size)
    state.epoch, state.low_epochs = 12, abp.GUARD_PATIENCE - 1            # sick again: halved again
    lr = state.optimizer.param_groups[0]['lr']
    abp.guard(state, loss, 10.0, chain_energy, chain, args, abp.get_logger(tmp_path))
    assert state.step_scale == scale * scale
    assert state.optimizer.param_groups[0]['lr'] == pytest.approx(lr / 2)


# ---- any folder: names and counts ----------------------------------------------

@pytest.mark.parametrize('names,want', [
    (['lion_1.jpg', 'lion_2.jpg', 'tiger_1.jpg', 'tiger_2.jpg'], ['lion', 'lion', 'tiger', 'tiger']),
    (['Cat 1.png', 'cat2.png', 'dog (1).png', 'Dog-2.png'], ['cat', 'cat', 'dog', 'dog']),
    (['199269.jpg', '000017.png', '5.png'], ['images'] * 3),                       # numbered: no prefix
    ([f'k{c}_1.png' for c in 'abcdefghijkl'] * 2, ['images'] * 24),                  # 12 groups: too many
    (['lion_1.jpg', 'lion_2.jpg', 'tiger.jpg'], ['images'] * 3),                   # a group of one
    (['only.png'], ['images']),
])
def test_image_groups(names, want):
    assert abp.image_groups(names) == want


def test_seventy_images_with_odd_names_make_every_figure(tmp_path):
    """70 images (two mini-batches) named by number, with spaces, accents, brackets and emoji: every figure is
    drawn, the reconstruction panels show 12 of them, the metrics cover all."""
    d = tmp_path / 'many'
    d.mkdir()
    rng = np.random.default_rng(0)
    odd = ['photo (1)', 'café été', "it's", 'naïve 😀', 'a,b;c', '-dash', 'x.y.z', '_u']
    for i in range(70):
        name = f'{odd[i % len(odd)]} {i}.png' if i % 3 == 0 else f'{rng.integers(10 ** 5, 10 ** 6)}_{i}.jpg'
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(d / name)
    out = tmp_path / 'out'
    abp.main(['--img_dir', str(d), '--out_dir', str(out), '--img_size', '8', '--n_epochs', '2', '--ninterp', '3',
              '--cold_proposals', '8'])
    m = json.loads((out / 'metrics.json').read_text())
    assert m['n_images'] == 70 and len(m['warm']['recon_psnr_db_per_image']) == 70
    for f in ('compare_recon.jpg', 'compare_samples.jpg', 'interp_warm.jpg', 'interp_cold.jpg', 'compare_loss.png',
              'latent_map_warm.png', 'latent_map_cold.png', 'training_warm.gif', 'latent_walk_cold.gif'):
        assert (out / f).stat().st_size > 0, f
    assert Image.open(out / 'warm' / '0002_recon.png').size == (12 * 10 + 2, 10 + 2)    # 12 of the 70 images


def test_a_failing_comparison_figure_loses_nothing(img_dir, tmp_path, monkeypatch, capsys, fast_figures):
    """A figure that raises is reported in one warning per mode, naming the figure, the mode and the error; the
    metrics and every other figure are still written."""
    def boom(*a, **k):
        raise KeyError('199269.jpg')

    monkeypatch.setattr(abp, 'image_groups', boom)
    out = tmp_path / 'out'
    abp.main(tiny_argv(img_dir, out))
    warnings = [line for line in capsys.readouterr().err.splitlines() if 'could not draw' in line]
    assert [w.split(' (KeyError')[0] for w in warnings] == [f'warning: could not draw latent_map ({m})'
                                                           for m in ('warm', 'cold')], warnings
    assert all('199269.jpg' in w for w in warnings)
    m = json.loads((out / 'metrics.json').read_text())
    assert m['warm']['recon_psnr_db'] > 0 and m['cold']['recon_psnr_db'] > 0
    for f in ('compare_recon.jpg', 'compare_samples.jpg', 'compare_loss.png', 'interp_warm.jpg', 'interp_cold.jpg',
              'training_warm.gif', 'training_cold.gif', 'latent_walk_warm.gif', 'latent_walk_cold.gif'):
        assert (out / f).exists(), f
