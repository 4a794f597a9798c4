"""Adam at its edge of stability: the preconditioned sharpness of eq. 7's loss against Adam's threshold, guard off.

    pip install scikit-image
    python bench/sharpness.py                                 # about 12 minutes on 2 cores

Why: full-batch Adam with step size eta and momentum beta1 (PyTorch's m = beta1 m + (1 - beta1) g), its
preconditioner P = (1 - beta1^t) diag(sqrt(v_hat) + eps) held fixed, is heavy-ball momentum on P^-1 H; on a
quadratic it is stable only while the largest eigenvalue of P^-1 H (H: the Hessian of the loss in theta) stays below
    (2 + 2 beta1) / ((1 - beta1) eta):   6 / eta with beta1 = 0.5, 18 / eta with 0.8, 38 / eta with 0.9
(Cohen et al. 2022, "Adaptive gradient methods at the edge of stability", who find full-batch training hovering
near this threshold). ABP's learning step is full batch (every image, one step per epoch), but it is not a fixed
quadratic: z is inferred anew every epoch and the warm standardisation rescales the first layer outside Adam, so
what this measures is where a run sits against the threshold, not a proof that it diverges above it.

On bench/make_folders.py's faces folder (where the guard acted on default runs), trains each variant's flags for
--epochs epochs with abp's own epoch (abp.train_epoch), the guard off, and every --every epochs measures at the
epoch's inferred z
  ratio   lambda_1(P^-1 H) of the loss Adam minimises (abp.recon_loss), in units of Adam's threshold at the
          current lr: 1 is the edge; by power iteration on P^-1/2 H P^-1/2 with Hessian-vector products
          (--iters per measurement, each started from the last eigenvector);
  psnr    the epoch's reconstruction PSNR (as the guard sees it), every epoch.
The measurement draws its start vector from its own generator, so the run trains exactly as it would without it.
A power iteration stopped after --iters steps can only underestimate lambda_1. Prints, per run, the ratio's
median, largest and shares of measurements above 0.9 and above 1, the PSNR's largest fall below its best so far
and its mean shortfall below it after the first SETTLE epochs; writes OUT_DIR/sharpness.json and
OUT_DIR/sharpness.png. A run with the same flags, epochs, folder and schedule is re-used from sharpness.json.
"""
import math
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

from common import abp, folder_study_parser, folder_study_setup, study_defaults

VARIANTS = [('beta1_0.5', ['--beta1', '0.5']), ('beta1_0.8', ['--beta1', '0.8'])]
SETTLE = 100      # epochs of the first rise, left out of the mean shortfall
RUN_KEY = ('variant', 'flags', 'mode', 'seed', 'epochs', 'folder', 'every', 'iters')


def threshold(beta1, lr):
    """Adam's stability threshold on lambda_1(P^-1 H) (Cohen et al. 2022): (2 + 2 beta1) / ((1 - beta1) lr)."""
    return (2 + 2 * beta1) / ((1 - beta1) * lr)


def preconditioner(optimizer):
    """Adam's P^-1/2 per parameter: 1 / sqrt((1 - beta1^t) (sqrt(v_hat) + eps)), as Cohen et al. define P."""
    group = optimizer.param_groups[0]
    b1, b2, eps = *group['betas'], group['eps']
    out = []
    for p in group['params']:
        s = optimizer.state[p]
        t = float(s['step'])
        out.append(((1 - b1 ** t) * ((s['exp_avg_sq'] / (1 - b2 ** t)).sqrt() + eps)).rsqrt())
    return out


def top_eigenvalue(model, optimizer, z, x, mse_sigma, u, iters):
    """lambda_1(P^-1 H) of abp.recon_loss at z by `iters` power iterations on P^-1/2 H P^-1/2 from u (a list
    of tensors shaped as the parameters); returns (lambda, the last vector)."""
    params = list(model.parameters())
    d = preconditioner(optimizer)
    loss = abp.recon_loss(model(z), x, mse_sigma)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    lam = 0.0
    for i in range(iters):
        norm = math.sqrt(sum(v.pow(2).sum().item() for v in u))
        u = [v / norm for v in u]
        hv = torch.autograd.grad(grads, params, [di * v for di, v in zip(d, u)], retain_graph=i < iters - 1)
        w = [di * h for di, h in zip(d, hv)]                      # P^-1/2 H P^-1/2 u
        lam = sum((a * b).sum().item() for a, b in zip(u, w))     # Rayleigh quotient
        u = [v.detach() for v in w]
    return lam, u


def probe(argv, epochs, every, iters):
    """Train abp's flags argv (one mode) for `epochs` epochs, guard off; per epoch the PSNR, every `every`
    epochs lambda_1(P^-1 H) over Adam's threshold. Returns {'psnr': [...], 'ratio': [[epoch, ratio], ...]}."""
    args = abp.with_defaults(abp.parse_args(argv + ['--no-guard']))
    chain = abp.chain_for(args, args.start)
    x, _ = abp.load_data(args)
    state = abp.new_state(args, len(x), chain)
    model, opt = state['model'], state['optimizer']
    gen = torch.Generator().manual_seed(0)                    # its own: training's random numbers are untouched
    u = [torch.randn(p.shape, generator=gen).to(p.device) for p in model.parameters()]
    out = {'psnr': [], 'ratio': []}
    for _ in range(epochs):
        loss, x_hat = abp.train_epoch(state, x, chain, args)           # (1) Langevin on z, (2) one Adam step
        state['epoch'] += 1
        if not torch.isfinite(loss):
            break
        out['psnr'].append(round(abp.psnr(x_hat, x).mean().item(), 3))
        if state['epoch'] % every == 0:
            lam, u = top_eigenvalue(model, opt, state['z'], x, args.mse_sigma, u, iters)
            group = opt.param_groups[0]                          # the mode's own beta1 (--beta1 / --cold_beta1)
            out['ratio'].append([state['epoch'], round(lam / threshold(group['betas'][0], group['lr']), 4)])
    return out


def largest_fall(psnr):
    """The PSNR's largest fall below its best so far (dB) and the epoch (1-based) where it was deepest."""
    best, fall, at = -math.inf, 0.0, None
    for i, v in enumerate(psnr):
        best = max(best, v)
        if best - v > fall:
            fall, at = best - v, i + 1
    return round(fall, 2), at


def mean_shortfall(psnr, start=SETTLE):
    """The mean of (best PSNR so far - this epoch's PSNR) over the epochs after `start` (dB): 0 for a run that
    never falls back, larger the more often and the deeper it dips."""
    best, gaps = -math.inf, []
    for i, v in enumerate(psnr):
        best = max(best, v)
        if i >= start:
            gaps.append(best - v)
    return round(sum(gaps) / len(gaps), 3) if gaps else None


def score(series):
    """A run's row: final PSNR, largest fall, mean shortfall, and the ratio's median, largest and shares of
    points above 0.9 and above 1 (the threshold)."""
    r = sorted(v for _, v in series['ratio'])
    fall, at = largest_fall(series['psnr'])
    return {'final_psnr_db': series['psnr'][-1], 'largest_fall_db': fall, 'fall_epoch': at,
            'mean_shortfall_db': mean_shortfall(series['psnr']),
            'ratio_median': r[len(r) // 2] if r else None, 'ratio_max': r[-1] if r else None,
            'share_above_0.9': round(sum(v > 0.9 for v in r) / len(r), 3) if r else None,
            'share_above_1': round(sum(v > 1.0 for v in r) / len(r), 3) if r else None}


def plot(rows, series, path):
    """Per run: the PSNR (top) and lambda_1(P^-1 H) over Adam's threshold (bottom), against the epoch."""
    fig = Figure(figsize=(6.3, 4.2))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for r in rows:
        s, label = series[r['key']], f"{r['variant'].replace('beta1_', 'β1 = ')} ({r['mode']}, seed {r['seed']})"
        line, = top.plot(range(1, len(s['psnr']) + 1), s['psnr'], lw=0.7, label=label)
        bottom.plot(*zip(*s['ratio']), lw=0.9, color=line.get_color())
    bottom.axhline(1.0, color='k', lw=0.8, ls='--')
    top.set_ylabel('reconstruction PSNR (dB)')
    bottom.set_ylabel('λ₁(P⁻¹H) / threshold')
    bottom.set_xlabel('epoch')
    top.legend(fontsize=7, loc='lower right')
    for ax in (top, bottom):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    abp.save_fig(fig, path, dpi=150)


def main():
    p = folder_study_parser(__doc__, 'sharpness.json and sharpness.png', VARIANTS, epochs=500, seeds=[1])
    p.add_argument('--every', type=int, default=5, help='epochs between two measurements (default: 5)')
    p.add_argument('--iters', type=int, default=6, help='power iterations per measurement (default: 6)')
    p.add_argument('--mode', default='warm', choices=['warm', 'cold'], help='(default: warm)')
    a = p.parse_args()
    folder, path, old = folder_study_setup(a, 'sharpness')
    rows, series, defaults = [], {}, study_defaults()
    for key, flags in [v for v in VARIANTS if v[0] in a.variants]:
        for seed in a.seeds:
            what = dict(zip(RUN_KEY, (key, ' '.join(flags), a.mode, seed, a.epochs, a.folder, a.every, a.iters)))
            done = [r for r in old if all(r.get(k) == v for k, v in what.items()) and study_defaults(r) == defaults]
            if done:
                rows.append({**done[0], **score(done[0]['series'])})       # re-scored from its series
            else:
                t = time.perf_counter()
                s = probe(['--img_dir', str(folder), '--start', a.mode, '--seed', str(seed), *flags],
                          a.epochs, a.every, a.iters)
                rows.append({**what, 'key': f'{key}_{a.mode}_{seed}', **score(s), 'series': s,
                             'seconds': round(time.perf_counter() - t, 1), 'defaults': defaults})
            r = rows[-1]
            series[r['key']] = r['series']
            print(f"{key:10s} {a.mode} seed {seed}: final {r['final_psnr_db']:.2f} dB, largest fall "
                  f"{r['largest_fall_db']:.2f} dB (epoch {r['fall_epoch']}), mean shortfall below the best so far "
                  f"{r['mean_shortfall_db']:.2f} dB; lambda_1(P^-1 H) / threshold: median "
                  f"{r['ratio_median']}, max {r['ratio_max']}, above 0.9 in {100 * r['share_above_0.9']:.0f}% "
                  f"and above 1 in {100 * r['share_above_1']:.0f}% of the measurements", flush=True)
    keys = {tuple(r[k] for k in RUN_KEY) for r in rows}
    runs = rows + [r for r in old if tuple(r[k] for k in RUN_KEY) not in keys]
    abp.write_json({'folder': a.folder, 'runs': runs}, path)
    plot(rows, series, Path(a.out_dir) / 'sharpness.png')
    print(f"wrote {path} and {Path(a.out_dir) / 'sharpness.png'}")


if __name__ == '__main__':
    main()
