"""The step cap in a default run: curvature, posterior width against step, SIR effective sample size (learned.py)."""
import json
import logging
import tempfile

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from common import abp, flags_key
from learned_common import WIDTH, epochs_flags, db


@torch.no_grad()
def sir_ess(gen_net, x, cold):
    """Effective sample size (sum w)^2 / sum w^2 per image of the SIR weights over the cold chain's proposals,
    drawn from a copy of the RNG state: training's own next draws are left as they were."""
    saved = torch.get_rng_state()
    zeta = abp.quasi_prior(cold.n_proposals(len(x), len(x)), gen_net.nz, cold.prior_sigma)
    torch.set_rng_state(saved)
    w = torch.softmax(-abp.sq_dists(x, abp.generate(gen_net, zeta)) / (2 * cold.sigma ** 2), 1)
    return 1 / w.pow(2).sum(1)


def measure(state, x, chain, cold):
    """Per image: lambda_max and w at the chains' current z, the step s the next epoch takes, the SIR ESS."""
    gen_net = state.model.Gnet
    w = abp.posterior_width(gen_net, state.z, chain.sigma, chain.prior_sigma)
    s = torch.as_tensor(chain.step(w, state.step_scale)).flatten().expand(len(w))
    return {'epoch': state.epoch, 'lambda_max': [round(float(v), 2) for v in w.flatten().pow(-2)],
            'width': [round(float(v), 5) for v in w.flatten()], 'step': [round(float(v), 5) for v in s],
            'ess': [round(float(v), 2) for v in sir_ess(gen_net, x, cold)],
            'z': [[round(float(u), 4) for u in v] for v in state.z]}


def theory_run(args, data, mode, every):
    """A default training run of one mode in this process (abp.train), measured every `every` epochs through its
    hook; returns the measurements and the final reconstruction PSNR."""
    chain, cold, x = abp.chain_for(args, mode), abp.chain_for(args, 'cold'), data.batch(None)
    state = abp.new_state(args, len(data))
    series = [measure(state, x, chain, cold)]

    def hook(state, loss, psnr_db):
        if state.epoch % every == 0 or state.epoch == args.n_epochs:
            series.append(measure(state, x, chain, cold))

    with tempfile.TemporaryDirectory() as tmp:
        abp.train(state, data, chain, args, tmp, logging.getLogger('learned'), hook)
    return series, db(state.psnr.mean())


def theory(models, x, names, a, out):
    """lambda_max, w against s, and the SIR ESS over a default training run of each mode."""
    args = abp.parse_args(['--img_dir', a.img_dir, '--seed', str(a.seed), *epochs_flags(a.epochs)])
    data = abp.load_data(args)
    result = {'every': a.every, 'proposals': abp.chain_for(args, 'cold').n_proposals(len(data), len(data)), 'images': names,
              'flags': flags_key(vars(args))}
    path = out / 'learned.json'              # the same training already measured there: re-use its series
    before = json.loads(path.read_text()).get('theory', {}) if path.exists() else {}
    same = flags_key(before.get('flags', {}), len(data)) == result['flags'] and before.get('every') == a.every
    for mode in ('warm', 'cold'):
        series, final = (before[mode]['series'], before[mode]['final_recon_psnr_db']) if same else \
            theory_run(args, data, mode, a.every)
        last, step = series[-1], abp.chain_for(args, mode).step_size
        result[mode] = {'series': series, 'final_recon_psnr_db': final, 'configured_step': step,
                        'final_lambda_max_median': db(np.median(last['lambda_max'])),
                        'final_width_median': round(float(np.median(last['width'])), 5),
                        'final_step_median': round(float(np.median(last['step'])), 5),
                        'share_capped_final': db(np.mean([s < step - 1e-9 for s in last['step']])),
                        # eq. 6 without noise is stable while s < 2w: how often the uncapped step would break that
                        'share_uncapped_above_2w': db(np.mean([step > 2 * w for r in series for w in r['width']])),
                        'final_ess_median': db(np.median(last['ess']))}
        # how far each image's z moves between measurements over the last quarter of training; the codes
        # themselves are not kept in learned.json (they would double its size)
        late = [r for r in series if r['epoch'] >= 0.75 * args.n_epochs]
        result[mode]['z_std_late_median'] = before[mode]['z_std_late_median'] if same and 'z' not in late[0] else \
            round(float(torch.tensor([r['z'] for r in late]).std(0).norm(dim=1).median()), 4)    # (T, N, 2) -> N
        result[mode]['series'] = [{k: v for k, v in r.items() if k != 'z'} for r in series]
        result[mode]['width_late_median'] = round(float(np.median([r['width'] for r in series if r['epoch'] >= 0.75 * args.n_epochs])), 5)
        print(f"theory {mode}: recon {final:.2f} dB, lambda_max {result[mode]['final_lambda_max_median']:.0f}, "
              f"w {result[mode]['final_width_median']:.4f}, step {result[mode]['final_step_median']:.4f}, "
              f"ESS {result[mode]['final_ess_median']:.2f}, late z std {result[mode]['z_std_late_median']}")
    fig = Figure(figsize=(WIDTH, 2.9))
    axes = fig.subplots(1, 3)
    for mode, colour in abp.MODE_COLOURS.items():
        series = result[mode]['series']
        ep = [r['epoch'] for r in series]
        for ax, key in zip(axes, ('lambda_max', 'width', 'ess')):
            v = np.array([r[key] for r in series])
            ax.fill_between(ep, v.min(1), v.max(1), color=colour, alpha=0.2)
            ax.plot(ep, np.median(v, 1), color=colour, lw=1, label=f'{mode} (median, min-max)')
        axes[1].plot(ep, [np.median(r['step']) for r in series], '--', color=colour, lw=1, label=f'{mode}: step s')
    axes[0].set_yscale('log')
    axes[0].set_title(r'$\lambda$ max of eq. 3 in z', fontsize=9)      # no subscript: it would print under 7 pt
    axes[1].set_yscale('log')
    axes[1].set_title('width w and step s (dashed)', fontsize=9)
    axes[2].set_yscale('log')
    axes[2].set_title(f"SIR ESS over {result['proposals']} proposals", fontsize=9)
    for ax in axes:
        ax.set_xlabel('epoch', fontsize=8)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f'{v:g}'))   # 0.01, 1, 100: no small exponents
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(which='both', labelsize=7.5)
        ax.grid(alpha=0.3)
    fig.legend(*axes[1].get_legend_handles_labels(), loc='lower center', ncol=4, fontsize=7.5, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))                 # one legend below the panels, over no curve
    abp.save_fig(fig, out / 'learned_theory.png', dpi=240)
    return result
