"""Every name of ../shared/course_interface.md: shapes, returns, files written."""
import argparse
import json
import logging
import os
import random
import runpy
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

import abp
from conftest import ROOT, strip_times, tiny_argv


def test_import_has_no_side_effects(tmp_path, monkeypatch, capsys):
    """Running abp.py's module code (as `import abp` does; runpy, in a fresh namespace of this process) in an
    empty folder, with a command line it would reject, prints nothing, writes nothing and parses no flags."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['grader.py', '--not-a-flag-of-abp'])
    namespace = runpy.run_path(str(ROOT / 'abp.py'), run_name='abp_import_check')
    assert callable(namespace['main']) and namespace['device'] == abp.device
    assert capsys.readouterr() == ('', '')
    assert list(tmp_path.iterdir()) == []


def test_everything_lives_on_abp_device():
    """abp.device is the course's global, and what abp makes lives there: prior draws, a training state's
    model and latents; Model(...).to(abp.device) generates there (a hard-coded 'cpu' or 'cuda' fails on
    the other kind of machine)."""
    assert abp.device == ('cuda' if torch.cuda.is_available() else 'cpu')
    where = torch.device(abp.device).type
    assert abp.sample_gaussian_prior(3, 2).device.type == where
    state = abp.new_state(small_args(), 3)
    assert state.z.device.type == where and state.z_eval.device.type == where
    assert all(p.device.type == where for p in state.model.parameters())
    m = abp.Model(small_args()).to(abp.device)
    assert m(abp.sample_gaussian_prior(2, 2)).device.type == where


def test_parse_args_course_flags():
    a = abp.parse_args([])
    assert isinstance(a, argparse.Namespace)
    course = dict(start=str, lr=float, langevin_step_size=float, langevin_num_steps=int, mse_sigma=float,
                  seed=int, nz=int, img_size=int, prior_sigma=float, ninterp=int, beta1=float, beta2=float,
                  gamma=float, n_epochs=int, n_log=int, n_plot=int, n_stats=int)
    for name, kind in course.items():
        assert isinstance(getattr(a, name), kind), name
    assert a.nz == 2 and a.img_size == 128 and a.ninterp == 12
    b = abp.parse_args(['--start', 'cold', '--lr', '0.01', '--langevin_num_steps', '7'])
    assert (b.start, b.lr, b.langevin_num_steps) == ('cold', 0.01, 7)


def test_parse_args_without_arguments_reads_the_command_line(monkeypatch):
    """The skeleton calls parse_args() with no argument: the flags come from sys.argv."""
    monkeypatch.setattr(sys, 'argv', ['abp.py', '--start', 'cold', '--n_epochs', '7', '--mse_sigma', '0.5'])
    a = abp.parse_args()
    assert (a.start, a.n_epochs, a.mse_sigma) == ('cold', 7, 0.5)


def test_set_seed_returns_seed_and_repeats(monkeypatch):
    """set_seed seeds PYTHONHASHSEED, random, numpy and torch: each repeats its draws after it."""
    monkeypatch.setenv('PYTHONHASHSEED', '0')
    draw = lambda: (random.random(), np.random.rand(), torch.rand(3).tolist())  # noqa: E731
    assert abp.set_seed(3) == 3
    a = draw()
    assert os.environ['PYTHONHASHSEED'] == '3'
    abp.set_seed(4)
    assert all(x != y for x, y in zip(a, draw()))
    abp.set_seed(3)
    assert draw() == a


def test_set_cuda_makes_cudnn_deterministic():
    """set_cuda turns cuDNN's autotuner off and its deterministic algorithms on (reproducible runs),
    whatever they were before; it returns None."""
    old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
        assert abp.set_cuda() is None
        assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


def test_get_logger_writes_file(tmp_path, capsys):
    log = abp.get_logger(tmp_path)
    assert isinstance(log, logging.Logger)
    log.info('hello abp')
    assert 'hello abp' in (tmp_path / 'output.log').read_text()
    assert 'hello abp' in capsys.readouterr().out


def test_load_img_tensors(img_dir):
    """Every image of the folder, in name order, through the given transform, on the given device."""
    x = abp.load_img_tensors(img_dir, abp.default_transform(16), abp.device)
    assert x.shape == (4, 3, 16, 16) and x.device.type == torch.device(abp.device).type
    assert x.min() >= -1 and x.max() <= 1 and x.min() < 0 < x.max()
    from torchvision import transforms
    u8 = abp.load_img_tensors(img_dir, transforms.Compose([transforms.Resize(8), transforms.PILToTensor()]), 'cpu')
    assert u8.dtype == torch.uint8 and u8.shape == (4, 3, 8, 8)
    from PIL import Image
    means = torch.from_numpy(np.stack([np.asarray(Image.open(img_dir / f'img_{i}.png')).mean((0, 1))
                                       for i in range(4)]))
    assert torch.allclose(u8.double().mean((2, 3)), means, atol=3)    # img_0..3.png in order, colours kept


def test_sample_gaussian_prior():
    torch.manual_seed(0)
    z = abp.sample_gaussian_prior(5000, 3, sig=2)
    assert z.shape == (5000, 3) and z.device.type == abp.device
    assert abs(z.std().item() - 2) < 0.1 and abs(z.mean().item()) < 0.1


def xavier_std(w):
    """Xavier's std sqrt(2 / (fan_in + fan_out)), fans as torch counts them (dim 1 in, dim 0 out)."""
    rf = w[0][0].numel()
    return (2 / (w.shape[1] * rf + w.shape[0] * rf)) ** 0.5


@pytest.mark.parametrize('layer', [nn.Linear(400, 600), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.Conv2d(32, 64, 4)])
def test_weights_init_xavier(layer):
    """Xavier-normal weights (std sqrt(2 / (fan_in + fan_out)), a normal's tails, not a uniform's) and
    zero biases, on layers big enough for the sample std to be within 3%."""
    torch.manual_seed(0)
    nn.init.constant_(layer.bias, 1.0)
    assert layer.apply(abp.weights_init_xavier) is layer
    assert abp.weights_init_xavier(layer) is None
    w = layer.weight.detach()
    assert torch.all(layer.bias == 0)
    assert abs(w.std().item() / xavier_std(w) - 1) < 0.03, (w.std().item(), xavier_std(w))
    assert abs(w.mean().item()) < 0.1 * xavier_std(w)
    assert (w.abs() > 1.8 * xavier_std(w)).float().mean() > 0.05      # a uniform of that std stops at 1.73 std


def test_the_models_generator_is_initialised_with_xavier():
    """Model's generator is initialised with weights_init_xavier: every bias zero, every weight at Xavier's
    scale (PyTorch's own default init has nonzero biases and other scales)."""
    torch.manual_seed(0)
    gen = abp.Model(small_args(img_size=64)).Gnet
    layers = [m for m in gen.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d))]
    assert len(layers) >= 3
    for m in layers:
        assert torch.all(m.bias == 0), m
        if m.weight.numel() >= 5000:
            assert abs(m.weight.std().item() / xavier_std(m.weight) - 1) < 0.1, m


@pytest.mark.parametrize('img_size,nz', [(128, 2), (64, 2), (16, 1), (32, 5)])
def test_gennet_shapes(img_size, nz):
    """(N, nz) -> (N, 3, S, S); every latent dimension moves the image (a generator that drops or
    detaches part of z has a zero gradient there), different z give different images, and each image
    depends on its own z only (no coupling across the batch)."""
    torch.manual_seed(0)
    g = abp.GenNet(nz=nz, img_size=img_size)
    z = torch.randn(3, nz, requires_grad=True)
    out = g(z)
    assert out.shape == (3, 3, img_size, img_size)
    assert out.abs().max() <= 1 and g(100 * z).abs().max() <= 1      # in [-1, 1], however far z goes
    (out * torch.randn_like(out)).sum().backward()
    assert torch.all(z.grad.abs() > 0), z.grad
    assert (out[0] - out[1]).abs().max() > 1e-4
    assert torch.allclose(g(z[1:2]), out[1:2], atol=1e-5)


def test_gennet_builds_without_arguments():
    assert abp.GenNet()(torch.randn(2, 2)).shape == (2, 3, 128, 128)


def small_args(**kw):
    a = abp.parse_args(['--img_size', '16', '--langevin_num_steps', '4'])
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def test_model_forward_and_langevin_contract():
    m = abp.Model(small_args())
    assert isinstance(m.Gnet, abp.GenNet)
    z = torch.randn(3, 2)
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    assert torch.equal(m(z), m.Gnet(z))
    trace = []
    z2 = m.sample_langevin(z, x, trace=trace)
    assert z2.shape == z.shape and not z2.requires_grad and not torch.equal(z2, z)
    assert len(trace) == 4                                       # args.langevin_num_steps steps
    assert all(p.grad is None for p in m.parameters()), "Langevin must not touch theta's .grad"


def test_langevin_leaves_existing_grads_alone():
    m = abp.Model(small_args())
    for p in m.parameters():
        p.grad = torch.ones_like(p)
    m.sample_langevin(torch.randn(2, 2), torch.zeros(2, 3, 16, 16))
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in m.parameters())


def test_plot_stats_writes_png_and_pdf(tmp_path):
    assert abp.plot_stats(tmp_path, {'loss': [3.0, 2.0, 1.0], 'psnr': [10, 12, 13]}, [100, 200, 300]) is None
    assert (tmp_path / 'stat.png').stat().st_size > 0 and (tmp_path / 'stat.pdf').stat().st_size > 0


def test_save_images(tmp_path):
    from PIL import Image
    abp.save_images(torch.rand(6, 3, 16, 16) * 2 - 1, tmp_path / 'g.png', nrow=3)
    w, h = Image.open(tmp_path / 'g.png').size
    assert (w, h) == (3 * 18 + 2, 2 * 18 + 2)


def test_save_interp_panel(tmp_path):
    from PIL import Image
    args = small_args(ninterp=5)
    m = abp.Model(args)
    assert abp.save_interp(m, args, torch.tensor([1.5, 0.5]), 'cpu', tmp_path / 'i.png') is None
    assert Image.open(tmp_path / 'i.png').size == (5 * 18 + 2, 5 * 18 + 2)


def test_interp_grid_spans_minus_d_to_d():
    z = abp.interp_grid(2, 12, torch.tensor([2.0, 0.5]), 'cpu')
    assert z.shape == (144, 2)
    assert z[:, 0].min() == -2 and z[:, 0].max() == 2 and z[:, 1].min() == -0.5 and z[:, 1].max() == 0.5
    assert torch.equal(z[:12, 0], torch.full((12,), -2.0))      # a row holds dim 0 fixed, dim 1 varies


def test_a_bare_namespace_of_course_flags_works(img_dir, tmp_path, fast_figures):
    """An autograder may build args by hand with the course's flags only: Model and run fill in the rest
    from the parser's defaults (the one place they are written)."""
    course = argparse.Namespace(start='warm', lr=4e-4, langevin_step_size=0.05, langevin_num_steps=3, mse_sigma=1.0,
                                seed=1, nz=2, img_size=16, prior_sigma=1.0, ninterp=4, beta1=0.5, beta2=0.999,
                                gamma=0.996, n_epochs=3, n_log=1, n_plot=3, n_stats=1, img_dir=str(img_dir))
    m = abp.Model(course)
    assert m.args.batch_size == abp.build_parser().get_default('batch_size')
    z = m.sample_langevin(torch.randn(2, 2), torch.zeros(2, 3, 16, 16))
    assert z.shape == (2, 2)
    out = abp.run(course, tmp_path / 'warm', abp.get_logger(tmp_path / 'warm'))
    assert out['metrics']['epochs'] == 3 and (tmp_path / 'warm' / '0003_interp.png').exists()
    assert not hasattr(course, 'batch_size')                     # the caller's namespace is left as it was


def test_main_reads_the_command_line(img_dir, tmp_path, monkeypatch, fast_figures):
    """main() with no argument, as the skeleton calls it: the flags come from sys.argv; it returns None and
    writes the run's results."""
    monkeypatch.setattr(sys, 'argv', ['abp.py', *tiny_argv(img_dir, tmp_path, '--start', 'warm', '--n_epochs', '2')])
    assert abp.main() is None
    assert json.loads((tmp_path / 'warm' / 'summary.json').read_text())['warm']['epochs'] == 2


def test_run_the_skeletons_way_with_parsed_defaults(tiny_run, img_dir, tmp_path, fast_figures):
    """The skeleton's main: args = parse_args(); set_seed; logger = get_logger(exp_dir); run(args, exp_dir, logger),
    with --start left at its default (both): it trains both modes into exp_dir, as `python abp.py` does into
    --out_dir, with the same results."""
    args = abp.parse_args(tiny_argv(img_dir, tmp_path / 'unused'))
    assert args.start == 'both'
    exp_dir = tmp_path / 'exp'
    abp.set_seed(args.seed)
    abp.run(args, exp_dir, abp.get_logger(exp_dir))
    m = json.loads((exp_dir / 'metrics.json').read_text())
    assert strip_times(m) == strip_times(json.loads((tiny_run / 'metrics.json').read_text()))
    assert m['args']['out_dir'] == str(exp_dir) and not (tmp_path / 'unused').exists()
    for f in ('warm/metrics.json', 'cold/metrics.json', 'warm/0006_interp.png', 'interp_cold.jpg', 'compare_loss.png'):
        assert (exp_dir / f).is_file(), f
