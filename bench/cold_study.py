"""Cold start: how each epoch's chains should start, measured. Variants at reduced epochs, cached.

    python bench/cold_study.py --img_dir ../shared/data/lion_tiger       # about 15 minutes on 2 cores
    python report/make_tex.py                                            # the report's table from it

Cold start keeps no z between epochs. Every variant below starts each image's chain from the prior
every epoch; they differ in how they use that start:
  handout      one prior draw per image, then K Langevin steps (eq. 6)
  annealed     one prior draw, then Langevin with sigma of eq. 3 lowered from 8 sigma to sigma along the
               chain (tempering: early steps see a smoother energy and may cross between basins)
  chains       C independent prior draws per image, K steps each, keep the chain of lowest energy
  sir          M prior draws shared by all images, one generator pass; each image resamples one by its
               likelihood, then K steps (abp.py's default, --cold_init sir)
Writes OUT_DIR/cold_study.json: per variant recon PSNR, sample NN-PSNR, coverage, z std, ms/epoch.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import abp  # noqa: E402


def annealed_start(start, state, x, args, steps=9, hot=8.0):
    """A prior draw, then `steps` Langevin steps with sigma lowered geometrically from hot*sigma to sigma;
    each step capped at the posterior width of its own temperature (which grows with sigma), from the
    widths abp.train_epoch measured last."""
    model, a = state['model'], args
    z = abp.sample_gaussian_prior(state['z'].shape[0], a.nz, a.prior_sigma)
    width = state['width'] if state['width'] is not None else abp.posterior_width(model.Gnet, z, a.mse_sigma, a.prior_sigma)
    for t in range(steps):
        temp = hot ** (1 - t / max(1, steps - 1))
        sigma = a.mse_sigma * temp
        s = abp.capped_step(a.cold_langevin_step_size * temp, width * temp, a.langevin_step_cap)
        model.args.mse_sigma = sigma                       # sample_langevin reads sigma from the model's args
        try:
            z = model.sample_langevin(z, x, 1, s)
        finally:
            model.args.mse_sigma = a.mse_sigma
    return z


def chains_start(start, state, x, args, chains=4):
    """`chains` prior draws per image, K capped Langevin steps each (each image's last measured width);
    per image the lowest-energy end."""
    model, a = state['model'], args
    n = state['z'].shape[0]
    z = abp.sample_gaussian_prior(chains * n, a.nz, a.prior_sigma)
    xx = x.repeat(chains, 1, 1, 1)
    width = state['width'] if state['width'] is not None else abp.posterior_width(model.Gnet, z[:n], a.mse_sigma, a.prior_sigma)
    s = abp.capped_step(a.cold_langevin_step_size, width.repeat(chains, 1), a.langevin_step_cap)
    z = model.sample_langevin(z, xx, a.cold_langevin_num_steps, s)
    e = abp.energy(abp.generate(model.Gnet, z), xx, z, a.mse_sigma, a.prior_sigma).view(chains, n)
    return z.view(chains, n, -1)[e.argmin(0), torch.arange(n)]


VARIANTS = [  # (key, label, chain start function or None for abp's own, flags); the defaults take 2 steps
    ('handout', 'one prior draw, 2 steps', None, ['--cold_init', 'prior']),
    ('handout10nocap', 'one prior draw, 10 steps of $s=0.05$, no step cap (before)', None,
     ['--cold_init', 'prior', '--cold_langevin_num_steps', '10', '--cold_langevin_step_size', '0.05',
      '--langevin_step_cap', '0']),
    ('annealed', 'one prior draw, 9 tempered + 2 steps', annealed_start, []),
    ('chains4', '4 chains of 2 steps, best + 2 steps', chains_start, []),
    ('sir8', 'SIR, $M=8$, 2 steps', None, ['--cold_proposals', '8']),
    ('sir16', 'SIR, $M=16$, 2 steps', None, ['--cold_proposals', '16']),
    ('sir32', 'SIR, $M=32$, 2 steps', None, ['--cold_proposals', '32']),
    ('sir64', 'SIR, $M=64$, 2 steps (default)', None, ['--cold_proposals', '64']),
    ('sir128', 'SIR, $M=128$, 2 steps', None, ['--cold_proposals', '128']),
    ('sir64k1', 'SIR, $M=64$, 1 step', None, ['--cold_langevin_num_steps', '1']),
    ('sir64k3', 'SIR, $M=64$, 3 steps', None, ['--cold_langevin_num_steps', '3']),
    ('sir64k10', 'SIR, $M=64$, 10 steps', None, ['--cold_langevin_num_steps', '10']),
    ('sir64nocap', 'SIR, $M=64$, 2 steps, no step cap', None, ['--langevin_step_cap', '0']),
]


def run_variant(a, key, label, start_fn, flags):
    """Train one variant (or re-use its cached metrics); returns its metrics dict."""
    e = a.epochs
    args = abp.parse_args(['--img_dir', a.img_dir, '--out_dir', str(Path(a.out_dir) / 'cold_study' / key),
                           '--start', 'cold', '--n_epochs', str(e), '--n_plot', str(e), '--n_stats', str(max(1, e // 20)),
                           '--n_log', str(max(1, e // 5)), '--seed', str(a.seed), *flags])
    exp_dir = Path(args.out_dir) / 'cold'
    cache_key = {**{k: v for k, v in sorted(vars(args).items()) if k not in ('threads', 'resume')},
                 'chain_start': start_fn.__name__ if start_fn else None}
    done = exp_dir / 'metrics.json'
    if done.exists() and json.loads(done.read_text()).get('study_key') == cache_key:
        print(f'{key}: cached')
        return json.loads(done.read_text())
    own = abp.chain_start
    if start_fn is not None:        # the variant's own chain start, for this run only
        abp.chain_start = start_fn
    try:
        m = abp.run(args, exp_dir, abp.get_logger(exp_dir))['metrics']
    except abp.Diverged as err:
        m = {'diverged': str(err)}
    finally:
        abp.chain_start = own
    m['study_key'] = cache_key
    abp.write_json(m, done)
    return m


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--img_dir', default='data', help='training images (default: data)')
    p.add_argument('--out_dir', default='output', help='where cold_study/ and cold_study.json go (default: output)')
    p.add_argument('--epochs', type=int, default=500, help='epochs per variant (default: 500)')
    p.add_argument('--seed', type=int, default=1, help='random seed (default: 1)')
    p.add_argument('--only', nargs='*', help='run only these variant keys')
    a = p.parse_args()
    try:
        abp.list_images(a.img_dir)
    except abp.UserError as e:
        sys.exit(f'cold_study.py: error: {e}')
    rows = []
    for key, label, fn, flags in VARIANTS:
        if a.only and key not in a.only:
            continue
        m = run_variant(a, key, label, fn, flags)
        rows.append({'key': key, 'label': label, 'start': 'cold', 'flags': ' '.join(flags), **m})
        if 'diverged' not in m:
            print(f"{key:12s} {m['recon_psnr_db']:6.2f} dB  NN {m['sample_nn_psnr_db_median']:6.2f}  "
                  f"cov {m['sample_coverage']:3d}  z std {m['z_std']}  {1000 * m['seconds_per_epoch']:.0f} ms/epoch")
    if not a.only:
        abp.write_json(rows, Path(a.out_dir) / 'cold_study.json')
        print(f"wrote {Path(a.out_dir) / 'cold_study.json'}")


if __name__ == '__main__':
    main()
