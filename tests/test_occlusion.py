"""Learning from incomplete images (--occlude): masks, the masked energy, no leak of hidden pixels, baselines."""
import json
import sys

import pytest
import torch

import abp
from conftest import ROOT, tiny_argv

sys.path.insert(0, str(ROOT / 'bench'))
import occlusion  # noqa: E402


@pytest.mark.parametrize('kind,hidden', [('pixels:0.7', 0.7), ('block:6', 36 / 256), ('blocks:3:4', None)])
def test_masks_hide_what_the_kind_says(kind, hidden):
    m = abp.make_masks(kind, 50, 16, seed=3)
    assert m.shape == (50, 1, 16, 16) and m.dtype == torch.bool
    assert torch.equal(m, abp.make_masks(kind, 50, 16, seed=3))                    # fixed by the seed
    m = m.float()
    frac = 1 - m.mean().item()
    if kind.startswith('pixels'):
        assert abs(frac - hidden) < 0.02
    elif kind.startswith('block:'):
        assert torch.allclose(1 - m.mean((1, 2, 3)), torch.full((50,), hidden))   # one 6x6 square each
    else:
        assert all(0 < (1 - mi.mean()) * 256 <= 48 for mi in m)                    # up to 3 squares of 16
    assert abp.make_masks('none', 50, 16, seed=3) is None


def test_masks_do_not_touch_the_global_random_numbers():
    torch.manual_seed(0)
    abp.make_masks('pixels:0.5', 4, 16, seed=9)
    a = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(a, torch.rand(3))


def test_masked_energy_sums_over_observed_pixels_only():
    x, xh, z = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4), torch.randn(2, 2)
    mask = (torch.rand(2, 1, 4, 4) > 0.5).float()
    got = abp.energy(xh, x, z, mse_sigma=0.5, prior_sigma=2.0, mask=mask)
    want = (((x - xh) ** 2) * mask).sum((1, 2, 3)) / (2 * 0.25) + (z ** 2).sum(1) / (2 * 4.0)
    assert torch.allclose(got, want)
    x[mask.expand_as(x) == 0] = float('nan')                     # whatever is in the holes never enters
    assert torch.allclose(abp.energy(xh, x, z, 0.5, 2.0, mask), want)
    assert torch.allclose(abp.recon_loss(xh, x, 0.5, mask), (want - (z ** 2).sum(1) / 8).mean())


def test_masked_sq_dists_and_psnr():
    x, g = torch.rand(3, 3, 5, 5) * 2 - 1, torch.rand(4, 3, 5, 5) * 2 - 1
    mask = (torch.rand(3, 1, 5, 5) > 0.4).float()
    want = torch.stack([torch.stack([(((x[i] - g[j]) ** 2) * mask[i]).sum() for j in range(4)]) for i in range(3)])
    assert torch.allclose(abp.sq_dists(x, g, mask), want, atol=1e-4)
    y = x.clone()
    y[mask.expand_as(y) == 0] += 0.5                            # only hidden pixels differ
    assert torch.all(abp.psnr(y, x, mask) > 90)                 # identical where observed
    assert torch.all(abp.psnr(y, x, 1 - mask) < 30)


def test_baselines_fill_only_the_holes():
    torch.manual_seed(0)
    basis = torch.randn(2, 3 * 6 * 6)
    x = (torch.randn(8, 2) @ basis * 0.2).view(8, 3, 6, 6).clamp(-1, 1)
    mask = abp.make_masks('pixels:0.3', 8, 6, seed=1).float()
    obs = x * mask
    for fill in (occlusion.mean_fill(obs, mask), occlusion.pca_fill(obs, mask)):
        assert torch.equal(fill[mask.expand_as(x) > 0], x[mask.expand_as(x) > 0])
    hidden = 1 - mask
    # rank-2 data: PCA imputation recovers the holes far better than the per-pixel mean
    assert abp.psnr(occlusion.pca_fill(obs, mask), x, hidden).mean() > abp.psnr(occlusion.mean_fill(obs, mask), x, hidden).mean() + 5


def garbage_loader(seed, kind, size):
    """load_images, with the hidden pixels of every image replaced by random garbage."""
    real = abp.load_images

    def load(img_dir, transform, logger=None):
        x, names = real(img_dir, transform, logger)
        holes = ~abp.make_masks(kind, len(x), size, seed=1).expand_as(x)
        junk = torch.randint(0, 256, x.shape, generator=torch.Generator().manual_seed(seed)).to(x.dtype)
        return torch.where(holes, junk, x), names
    return load


def test_hidden_pixels_never_leak_into_training(img_dir, tmp_path, monkeypatch, fast_figures):
    """Trained twice, with different garbage in the holes: identical latents, parameters and curves."""
    runs = []
    for seed in (1, 2):
        monkeypatch.setattr(abp, 'load_images', garbage_loader(seed, 'blocks:2:6', 16))
        out = tmp_path / f'run{seed}'
        abp.main(tiny_argv(img_dir, out, '--occlude', 'blocks:2:6', '--n_epochs', '3'))
        runs.append({m: torch.load(out / m / 'checkpoint.pt', weights_only=False) for m in ('warm', 'cold')})
    for mode in ('warm', 'cold'):
        a, b = runs[0][mode], runs[1][mode]
        assert torch.equal(a['z'], b['z']) and torch.equal(a['mask'], b['mask'])
        assert all(torch.equal(v, b['model'][k]) for k, v in a['model'].items())
        assert a['stats'] == b['stats']


def test_occluded_run_reports_recovery(img_dir, tmp_path):
    """An occluded run (every figure really drawn) reports how well the hidden pixels are recovered: its numbers
    are the PSNR of the last epoch's g(z) (kept in the checkpoint) on the hidden and the observed pixels of the
    true images, and ABP fills the holes at least about as well as the per-pixel mean of the other images does
    (a run that trained on the holes as black, or left them out of g's fit some other way, falls ~2-3 dB below)."""
    out = tmp_path / 'out'
    argv = tiny_argv(img_dir, out, '--occlude', 'pixels:0.5', '--n_log', '6')
    abp.main(argv)
    m = json.loads((out / 'metrics.json').read_text())
    x = abp.load_images(img_dir, abp.default_transform(16))[0]
    mask = abp.make_masks('pixels:0.5', 4, 16, seed=1).float()
    base = occlusion.baselines(argv)
    assert base['mean_hidden_psnr_db'] == pytest.approx(
        abp.psnr(occlusion.mean_fill(x * mask, mask), x, 1 - mask).mean().item(), abs=2e-3)
    for mode in ('warm', 'cold'):
        ck = torch.load(out / mode / 'checkpoint.pt', weights_only=False)
        assert torch.equal(ck['mask'].float(), mask) and ck['recon'].shape == x.shape
        occ = m[mode]['occlusion']
        assert occ['kind'] == 'pixels:0.5' and occ['hidden_fraction'] == round(1 - mask.mean().item(), 4)
        assert occ['abp_hidden_psnr_db'] == pytest.approx(abp.psnr(ck['recon'], x, 1 - mask).mean().item(), abs=2e-3)
        assert occ['abp_observed_psnr_db'] == pytest.approx(abp.psnr(ck['recon'], x, mask).mean().item(), abs=2e-3)
        assert occ['abp_hidden_psnr_db'] > base['mean_hidden_psnr_db'] - 0.5, (mode, occ, base)
    assert (out / 'occlusion.jpg').stat().st_size > 0 and (out / 'warm' / 'occluded_input.png').stat().st_size > 0


@pytest.mark.parametrize('value,word', [('pixels:1.5', 'between 0 and 1'), ('pixels:0', 'between 0 and 1'),
                                        ('block', 'use none'), ('blocks:2', 'use none'), ('holes:3', 'use none'),
                                        ('block:0', '>= 1'), ('block:16', 'smaller than the images')])
def test_bad_occlude_value_is_one_line_error(value, word, capsys):
    with pytest.raises(SystemExit) as e:
        abp.parse_args(['--occlude', value, '--img_size', '16'])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert 'occlude' in err and word in err


def test_resume_with_another_occlusion_is_refused(img_dir, tmp_path, fast_figures):
    """--resume with another --occlude than the checkpoint's is refused, naming the checkpoint's."""
    out = tmp_path / 'out'
    abp.main(tiny_argv(img_dir, out, '--start', 'warm', '--occlude', 'pixels:0.5', '--n_epochs', '2'))
    with pytest.raises(SystemExit) as e:
        abp.main(tiny_argv(img_dir, out, '--start', 'warm', '--occlude', 'block:4', '--resume'))
    assert '--occlude pixels:0.5' in str(e.value.code)
