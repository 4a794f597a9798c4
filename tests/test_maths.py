"""The maths of eq. 3, 6 and 7 against independent closed forms, and warm/cold semantics."""
import dataclasses
import json

import pytest
import torch
import torch.nn as nn

import abp
from conftest import spy_langevin, tiny_argv


class LinearGen(nn.Module):
    """g(z) = W z + b, reshaped to images: the factor-analysis model the generator generalises."""

    def __init__(self, nz, shape):
        super().__init__()
        self.shape = shape
        d = int(torch.tensor(shape).prod())
        self.W = nn.Parameter(torch.randn(d, nz, dtype=torch.float64) * 0.3)
        self.b = nn.Parameter(torch.randn(d, dtype=torch.float64) * 0.1)

    def forward(self, z):
        return (z @ self.W.T + self.b).view(-1, *self.shape)


def linear_model(s=0.07, sigma=0.8, prior=1.3, steps=1, noise=1.0):
    args = abp.parse_args(['--img_size', '8', '--langevin_step_size', str(s), '--mse_sigma', str(sigma),
                           '--prior_sigma', str(prior), '--langevin_num_steps', str(steps),
                           '--langevin_noise_scale', str(noise), '--nz', '3'])
    m = abp.Model(args)
    torch.manual_seed(5)
    m.Gnet = LinearGen(3, (3, 8, 8))
    return m, args


def closed_form_step(m, z, x, s, sigma, prior, e):
    """z + s^2/2 (W^T (I - g(z)) / sigma^2 - z / prior^2) + s e, written out by hand."""
    W, b = m.Gnet.W.detach(), m.Gnet.b.detach()
    resid = x.flatten(1) - (z @ W.T + b)
    return z + s * s / 2 * (resid @ W / sigma ** 2 - z / prior ** 2) + s * e


def test_one_langevin_step_matches_closed_form():
    s, sigma, prior = 0.07, 0.8, 1.3
    m, _ = linear_model(s, sigma, prior)
    z = torch.randn(4, 3, dtype=torch.float64)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    torch.manual_seed(11)
    got = m.sample_langevin(z, x)
    torch.manual_seed(11)
    e = torch.randn_like(z)
    assert torch.allclose(got, closed_form_step(m, z, x, s, sigma, prior, e), atol=1e-12)


def test_three_steps_compose():
    s, sigma, prior = 0.05, 1.0, 1.0
    m, _ = linear_model(s, sigma, prior, steps=3)
    z = torch.randn(2, 3, dtype=torch.float64)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    torch.manual_seed(2)
    got = m.sample_langevin(z, x)
    torch.manual_seed(2)
    want = z
    for _ in range(3):
        want = closed_form_step(m, want, x, s, sigma, prior, torch.randn_like(z))
    assert torch.allclose(got, want, atol=1e-12)


def test_noise_scale_flag_gives_skeleton_variant_and_gradient_descent():
    s = 0.07
    z = torch.randn(4, 3, dtype=torch.float64)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    m1, _ = linear_model(s, noise=1.0)
    m4, _ = linear_model(s, noise=4.0)
    m0, _ = linear_model(s, noise=0.0)
    outs = []
    for m in (m1, m4, m0):
        torch.manual_seed(3)
        outs.append(m.sample_langevin(z, x))
    drift = outs[2]                                  # noise 0: plain gradient ascent on log p
    torch.manual_seed(3)
    e = torch.randn_like(z)
    assert torch.allclose(outs[0], drift + s * e, atol=1e-12)
    assert torch.allclose(outs[1], drift + 4 * s * e, atol=1e-12)


def test_langevin_samples_the_gaussian_posterior_of_a_linear_model():
    """For g(z) = Wz + b the posterior is N(mu, A^-1) in closed form. Unadjusted Langevin (eq. 6) keeps
    the mean mu and has stationary covariance (A - s^2 A^2 / 4)^-1; many chains' moments match both.
    A's eigenvalues are ~1.7, so a step contracts the distance to mu by 1 - s^2 lambda / 2 ~ 0.87: after
    60 steps the start's bias is ~2e-4 of |mu| (the covariance's, squared), far below the tolerances,
    which are ~4 standard errors of 8000 independent chains' mean and covariance."""
    s, sigma, prior = 0.4, 1.0, 1.0
    m, _ = linear_model(s, sigma, prior, steps=60)
    W, b = m.Gnet.W.detach(), m.Gnet.b.detach()
    with torch.no_grad():
        W.mul_(0.2)                                  # a broad posterior, so a short chain mixes
    x = (torch.randn(1, 3, dtype=torch.float64) @ W.T + b + 0.5 * torch.randn(192, dtype=torch.float64)).view(1, 3, 8, 8)
    A = W.T @ W / sigma ** 2 + torch.eye(3, dtype=torch.float64) / prior ** 2
    mu = torch.linalg.solve(A, W.T @ (x.flatten() - b)) / sigma ** 2
    C_ula = torch.linalg.inv(A - s * s / 4 * A @ A)
    torch.manual_seed(0)
    n = 8000                                         # independent chains of the same image
    out = m.sample_langevin(torch.zeros(n, 3, dtype=torch.float64), x.expand(n, -1, -1, -1))
    assert torch.allclose(out.mean(0), mu, atol=4 * C_ula.diag().max().sqrt().item() / n ** 0.5)
    assert torch.allclose(torch.cov(out.T), C_ula, atol=0.06 * C_ula.diag().max().item())
    assert not torch.allclose(torch.cov(out.T), 4 * C_ula, atol=0.5 * C_ula.diag().max().item())


def test_energy_is_eq3():
    x, xh, z = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4), torch.randn(2, 2)
    e = abp.energy(xh, x, z, mse_sigma=0.5, prior_sigma=2.0)
    want = ((x - xh) ** 2).sum((1, 2, 3)) / (2 * 0.25) + (z ** 2).sum(1) / (2 * 4.0)
    assert torch.allclose(e, want)


def test_learning_step_gradient_is_eq7():
    """The theta-gradient of the loss equals -(1/n) sum (I - g) dg/dtheta / sigma^2 (eq. 7, sign for descent)."""
    torch.manual_seed(0)
    m, args = linear_model(sigma=0.5)
    z = torch.randn(4, 3, dtype=torch.float64)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    loss = abp.recon_loss(m(z), x, 0.5)
    loss.backward()
    resid = x.flatten(1) - m(z).detach().flatten(1)
    assert torch.allclose(m.Gnet.W.grad, -(resid.T @ z) / 4 / 0.25)
    assert torch.allclose(m.Gnet.b.grad, -resid.sum(0) / 4 / 0.25)


def test_warm_continues_cold_restarts():
    """chain_start: warm continues from the images' current z; cold with --cold_proposals 0 draws one prior
    sample per image (the handout's cold start); cold with proposals starts every chain at one of the batch's
    fresh quasi_prior draws (chain.n_proposals of them), whatever the current z."""
    args = abp.parse_args(['--img_size', '16', '--cold_proposals', '40', '--prior_sigma', '1.5'])
    gen = abp.GenNet(nz=2, img_size=16).to(abp.device)
    z = abp.sample_gaussian_prior(5, 2)
    x = torch.rand(5, 3, 16, 16, device=abp.device) * 2 - 1
    assert abp.chain_start(abp.chain_for(args, 'warm'), gen, z, x) is z
    cold = abp.chain_for(args, 'cold')
    torch.manual_seed(2)
    sir = abp.chain_start(cold, gen, z, x)
    torch.manual_seed(2)
    draws = abp.quasi_prior(cold.n_proposals(5, 5), 2, 1.5)
    assert sir.shape == (5, 2) and len(draws) == 40
    assert all(any(torch.equal(s, d) for d in draws) for s in sir)
    assert not torch.equal(sir, z)
    args.cold_proposals = 0
    torch.manual_seed(1)
    prior = abp.chain_start(abp.chain_for(args, 'cold'), gen, z, x)
    torch.manual_seed(1)
    assert torch.equal(prior, abp.sample_gaussian_prior(5, 2, 1.5))


def test_sobol_proposals_are_prior_draws_that_cover_the_prior():
    """quasi_prior: each draw alone is distributed as sigma * N(0, I) (mean, std and a tail probability over
    many seeds), and 16 draws in 2-D put exactly 4 in each quadrant, every time (a (0, 4, 2)-net), where 16
    independent draws leave that split to chance."""
    sigma = 1.5
    first = torch.stack([abp.quasi_prior(16, 2, sigma)[0] for _ in range(3000)])
    assert first.mean(0).abs().max() < 0.1 and (first.std(0) / sigma - 1).abs().max() < 0.05
    assert abs((first[:, 0] > sigma).float().mean().item() - 0.1587) < 0.025     # P(N(0,1) > 1)
    quadrant = lambda z: ((z[:, 0] > 0).long() * 2 + (z[:, 1] > 0).long()).bincount(minlength=4)  # noqa: E731
    assert all(quadrant(abp.quasi_prior(16, 2)).tolist() == [4, 4, 4, 4] for _ in range(200))
    assert not all(quadrant(torch.randn(16, 2)).tolist() == [4, 4, 4, 4] for _ in range(200))


@pytest.mark.parametrize('masked', [False, True])
def test_sir_weights_are_the_likelihood(monkeypatch, masked):
    """Given the M proposals (fixed here) and their images g_m, image i takes proposal m with probability
    exp(-||I_i - g_m||^2 / 2 sigma^2) / sum_m' (...), over the observed pixels only with a mask: counted over
    many draws against those probabilities written out by hand."""
    sigma = 0.7
    protos = torch.tensor([[0.9, -0.5], [0.1, 0.6], [-0.4, -0.3]]).view(3, 1, 1, 2)   # three 2-pixel "images"
    zeta = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]], device=abp.device)       # proposal m -> protos[m]
    monkeypatch.setattr(abp, 'quasi_prior', lambda n, nz, sig=1, dev=None: zeta[:n])

    class Lookup(torch.nn.Module):
        nz = 2

        def forward(self, z):
            return protos.to(z.device)[z[:, 0].round().long()]

    x = torch.tensor([[[[0.3, -0.2]]], [[[-0.5, 0.4]]]], device=abp.device)           # two images
    mask = torch.tensor([[[[1.0, 0.0]]], [[[1.0, 1.0]]]], device=abp.device) if masked else None
    counts = torch.zeros(2, 3)
    torch.manual_seed(1)
    for _ in range(3000):
        z = abp.prior_proposals(Lookup(), x, 3, sigma, 1.0, mask)
        counts[torch.arange(2), z[:, 0].round().long().cpu()] += 1
    seen = torch.ones(2, 1, 1, 2) if mask is None else mask.cpu()
    sq = ((x.cpu().view(2, 1, 2) - protos.view(1, 3, 2)) ** 2 * seen.view(2, 1, 2)).sum(2)   # (image, proposal)
    w = torch.exp(-sq / (2 * sigma ** 2))
    assert torch.allclose(counts / 3000, w / w.sum(1, keepdim=True), atol=0.04), (counts / 3000, w / w.sum(1))


def test_posterior_width_of_a_linear_generator():
    """For g(z) = Wz + b the curvature of eq. 3 is W^T W / sigma^2 + I / prior^2 exactly."""
    m, _ = linear_model()
    W = m.Gnet.W.detach()
    sigma, prior = 0.8, 1.3
    z = torch.randn(4, 3, dtype=torch.float64)
    got = abp.posterior_width(m.Gnet, z, sigma, prior)
    lam = torch.linalg.eigvalsh(W.T @ W / sigma ** 2 + torch.eye(3, dtype=torch.float64) / prior ** 2)[-1]
    assert got.shape == (4, 1)
    assert torch.allclose(got.double(), torch.full((4, 1), lam.rsqrt().item(), dtype=torch.float64), rtol=1e-4)


def test_capped_step_keeps_gradient_descent_stable():
    """A chain with a step far past the stability limit explodes; capped at one posterior width it
    settles at the posterior mean (noise off, so eq. 6 is gradient descent)."""
    s = 0.5
    m, args = linear_model(s=s, sigma=0.8, prior=1.3, steps=60, noise=0.0)
    chain = abp.chain_for(args, 'warm')
    W, b = m.Gnet.W.detach(), m.Gnet.b.detach()
    x = (torch.randn(2, 3, dtype=torch.float64) @ W.T + b).view(2, 3, 8, 8)
    z0 = torch.zeros(2, 3, dtype=torch.float64)
    A = W.T @ W / 0.8 ** 2 + torch.eye(3, dtype=torch.float64) / 1.3 ** 2
    mu = torch.linalg.solve(A, (W.T @ (x.flatten(1) - b).T) / 0.8 ** 2).T
    wild = abp.langevin(m.Gnet, z0, x, chain, chain.step_size)
    assert not torch.allclose(wild, mu, atol=1e-2)
    step = chain.step(abp.posterior_width(m.Gnet, z0, 0.8, 1.3).double())
    assert torch.all(step < s)
    assert torch.allclose(abp.langevin(m.Gnet, z0, x, chain, step), mu, atol=1e-6)


def test_chain_step_is_the_capped_step_times_the_guards_scale():
    """s per image = min(step_size, cap * width) * scale; step_size * scale with no width or cap 0."""
    args = abp.parse_args(['--langevin_step_size', '0.3', '--langevin_step_cap', '2'])
    chain = abp.chain_for(args, 'warm')
    width = torch.tensor([[0.05], [0.1], [0.2], [1.0]])
    want = torch.tensor([[0.1], [0.2], [0.3], [0.3]])
    assert torch.allclose(chain.step(width), want)
    assert torch.allclose(chain.step(width, 0.25), want / 4)
    assert chain.step(None) == 0.3 and chain.step(None, 0.5) == 0.15
    assert dataclasses.replace(chain, cap=0.0).step(width, 0.5) == 0.15


def test_chain_for_reads_each_modes_flags():
    """chain_for: warm takes the --langevin_* flags, cold the --cold_langevin_* ones and --cold_proposals;
    both share the cap, the noise scale and the sigmas; standardisation is on for warm, off for cold,
    unless --standardize_z says otherwise."""
    args = abp.parse_args(['--langevin_num_steps', '4', '--langevin_step_size', '0.2', '--cold_langevin_num_steps',
                           '6', '--cold_langevin_step_size', '0.1', '--cold_proposals', '8', '--langevin_step_cap',
                           '1.5', '--langevin_noise_scale', '4', '--mse_sigma', '0.7', '--prior_sigma', '1.2'])
    assert abp.chain_for(args, 'warm') == abp.Chain('warm', 4, 0.2, 1.5, 4.0, 0.7, 1.2, True, 0)
    assert abp.chain_for(args, 'cold') == abp.Chain('cold', 6, 0.1, 1.5, 4.0, 0.7, 1.2, False, 8)
    assert abp.chain_for(args, 'cold').init == 'sir' and abp.chain_for(args, 'warm').init == 'warm'
    args.cold_proposals, args.standardize_z = 0, False
    assert abp.chain_for(args, 'cold').init == 'prior' and not abp.chain_for(args, 'warm').standardize
    args.standardize_z = True
    assert abp.chain_for(args, 'cold').standardize
    with pytest.raises(ValueError):
        abp.chain_for(args, 'both')


CHAIN_FLAGS = ('--langevin_num_steps', '2', '--langevin_step_size', '0.01',
               '--cold_langevin_num_steps', '5', '--cold_langevin_step_size', '0.03', '--langevin_step_cap', '0')


def test_cold_uses_its_own_chain_settings(img_dir, tmp_path, monkeypatch, fast_figures):
    """What the training loop does, seen from abp.langevin and langevin_trace.json: each epoch of the warm
    run takes --langevin_num_steps steps of --langevin_step_size, each epoch of the cold run
    --cold_langevin_num_steps steps of --cold_langevin_step_size (step cap off, so s is the flag's)."""
    calls = spy_langevin(monkeypatch)
    abp.main(tiny_argv(img_dir, tmp_path, '--n_epochs', '3', *CHAIN_FLAGS))
    assert [c['mode'] for c in calls] == ['warm'] * 3 + ['cold'] * 3
    for c in calls:
        steps, s = (2, 0.01) if c['mode'] == 'warm' else (5, 0.03)
        assert c['steps'] == steps and c['n'] == 4
        assert torch.allclose(torch.as_tensor(c['step_size']).double().cpu(), torch.tensor(s).double())
    for mode, steps, s in (('warm', 2, 0.01), ('cold', 5, 0.03)):
        trace = json.loads((tmp_path / mode / 'langevin_trace.json').read_text())
        assert {k: len(v) for k, v in trace.items()} == {'1': steps, '3': steps}
        m = json.loads((tmp_path / mode / 'metrics.json').read_text())
        assert (m['langevin_steps'], m['langevin_step_size']) == (steps, s)


def test_adam_and_its_decay_come_from_the_flags():
    """new_state: Adam over every parameter of the model with --lr and (--beta1, --beta2), in both modes, and
    ExponentialLR(--gamma) stepped once per epoch."""
    args = abp.parse_args(['--img_size', '16', '--lr', '0.02', '--beta1', '0.7', '--beta2', '0.99', '--gamma', '0.9'])
    state = abp.new_state(args, 3)
    assert isinstance(state.optimizer, torch.optim.Adam)
    group = state.optimizer.param_groups[0]
    assert (group['lr'], group['betas']) == (0.02, (0.7, 0.99))
    assert {id(p) for p in group['params']} == {id(p) for p in state.model.parameters()}
    for _ in range(2):
        state.optimizer.step()                  # no gradients: nothing moves, but the order is Adam's, then the decay
        state.scheduler.step()
    assert group['lr'] == pytest.approx(0.02 * 0.9 ** 2)


def test_posterior_width_is_measured_every_curvature_every_epochs(img_dir, tmp_path, monkeypatch, fast_figures):
    """With the step cap on, the posterior widths are measured exactly in the epochs that start at
    state.epoch % CURVATURE_EVERY == 0 (here 0, 2 and 4 of 5, with CURVATURE_EVERY 2), in both modes, once per
    mini-batch; with --langevin_step_cap 0 never (it costs nz + 1 generator passes)."""
    monkeypatch.setattr(abp, 'CURVATURE_EVERY', 2)
    langevin = spy_langevin(monkeypatch)          # one call per mini-batch
    real, measured_at = abp.posterior_width, []

    def counting(*args, **kwargs):
        measured_at.append(len(langevin))
        return real(*args, **kwargs)

    monkeypatch.setattr(abp, 'posterior_width', counting)
    abp.main(tiny_argv(img_dir, tmp_path / 'on', '--n_epochs', '5', '--batch_size', '2'))
    assert len(langevin) == 20                  # 2 modes x 5 epochs x 2 batches
    assert measured_at == [0, 1, 4, 5, 8, 9, 10, 11, 14, 15, 18, 19], measured_at
    langevin.clear()
    measured_at.clear()
    abp.main(tiny_argv(img_dir, tmp_path / 'off', '--start', 'warm', '--n_epochs', '5', '--langevin_step_cap', '0'))
    assert len(langevin) == 5 and measured_at == []


def standardised(z):
    """z (N, nz) has mean 0 and std 1 in every dimension, to 1e-4."""
    return bool(torch.allclose(z.mean(0), torch.zeros(z.shape[1]), atol=1e-4)
                and torch.allclose(z.std(0), torch.ones(z.shape[1]), atol=1e-4))


def test_warm_standardises_z_in_the_loop_and_cold_does_not(tiny_run, img_dir, tmp_path, fast_figures):
    """After a few epochs a warm run's z has mean 0, std 1 per dimension exactly (the change of variables
    happens after every batch's chains), a cold run's does not; --no-standardize_z turns it off for warm,
    --standardize_z on for cold."""
    def final_z(out, mode):
        return torch.load(out / mode / 'checkpoint.pt', weights_only=False)['z'].cpu()

    assert standardised(final_z(tiny_run, 'warm'))
    assert not standardised(final_z(tiny_run, 'cold'))
    abp.main(tiny_argv(img_dir, tmp_path / 'off', '--n_epochs', '3', '--start', 'warm', '--no-standardize_z'))
    assert not standardised(final_z(tmp_path / 'off', 'warm'))
    abp.main(tiny_argv(img_dir, tmp_path / 'on', '--n_epochs', '3', '--start', 'cold', '--standardize_z'))
    assert standardised(final_z(tmp_path / 'on', 'cold'))


def test_psnr_and_nearest_neighbours():
    a = torch.zeros(1, 3, 4, 4)                  # 0.5 grey in [0, 1]
    b = torch.full((1, 3, 4, 4), 0.2)            # 0.6 in [0, 1]: mse 0.01 -> 20 dB
    assert torch.allclose(abp.psnr(a, b), torch.tensor([20.0]), atol=1e-4)
    imgs = torch.stack([torch.full((3, 4, 4), v) for v in (-1.0, 0.0, 1.0)])
    p, idx = abp.nearest_neighbours(torch.stack([imgs[2] - 0.2, imgs[0] + 0.1]), imgs)
    assert idx.tolist() == [2, 0]
    assert torch.allclose(p, torch.tensor([20.0, 10 * torch.log10(torch.tensor(400.0)).item()]), atol=1e-3)


def test_pca_recon_is_exact_for_rank_two_data():
    torch.manual_seed(0)
    basis = torch.randn(2, 3 * 4 * 4)
    x = (torch.randn(6, 2) @ basis + 0.3).view(6, 3, 4, 4)
    assert torch.allclose(abp.pca_recon(x, k=2), x, atol=1e-4)
    assert not torch.allclose(abp.pca_recon(x, k=1), x, atol=1e-2)


def test_interp_half_width_covers_every_latent():
    z = torch.tensor([[0.5, -2.0], [-1.0, 0.3], [0.2, 1.0]])
    d = abp.interp_half_width(z)
    assert torch.all(z.abs() <= d) and torch.allclose(d, abp.INTERP_MARGIN * torch.tensor([1.0, 2.0]))


def test_standardize_latents_is_an_exact_change_of_variables():
    torch.manual_seed(0)
    g = abp.GenNet(nz=2, img_size=16)
    z = torch.randn(7, 2) * torch.tensor([4.0, 0.3]) + torch.tensor([2.0, -1.0])
    before = g(z).detach()
    z2 = abp.standardize_latents(g, z)
    assert torch.allclose(z2.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(z2.std(0), torch.ones(2), atol=1e-5)
    assert torch.allclose(g(z2).detach(), before, atol=1e-5)
