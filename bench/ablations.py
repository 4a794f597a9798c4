"""Ablations: one change at a time from abp.py's defaults, at reduced epochs, cached.

    python bench/ablations.py --img_dir ../shared/data/lion_tiger        # about 20 minutes on 2 cores
    python report/make_tex.py                                             # the report's table from it

Each row trains one start mode for --epochs epochs with the defaults plus the row's flags. Results go
to OUT_DIR/ablations/NN/<mode>/metrics.json and are re-used while every setting of the row is
unchanged (delete the folder to re-run one). All rows together: OUT_DIR/ablations.json.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import abp  # noqa: E402

ABLATIONS = [  # (label, start mode, flags changed from the defaults); the report names rows A, B, ...
    ('defaults', 'warm', []),                                                                  # A
    ('noise $4s\\,e$ (skeleton)', 'warm', ['--langevin_noise_scale', '4']),                       # B
    ('no noise (gradient descent)', 'warm', ['--langevin_noise_scale', '0']),                  # C
    ('$\\sigma = 1$ (course)', 'warm', ['--mse_sigma', '1']),                                   # D
    ('$\\sigma = 0.5$', 'warm', ['--mse_sigma', '0.5']),                                        # E
    ('$\\sigma = 0.5$, no step cap', 'warm', ['--mse_sigma', '0.5', '--langevin_step_cap', '0']),  # F
    ('no step cap', 'warm', ['--langevin_step_cap', '0']),                                     # G
    ('5 Langevin steps', 'warm', ['--langevin_num_steps', '5']),                               # H
    ('20 Langevin steps', 'warm', ['--langevin_num_steps', '20']),                             # I
    ('BatchNorm', 'warm', ['--batchnorm']),                                                    # J
    ('no $z$ standardisation', 'warm', ['--no-z_whiten']),                                     # K
    ('$s = 0.1$, no standardisation', 'warm', ['--langevin_step_size', '0.1', '--no-z_whiten']),  # L
    ('course lr, $\\gamma$ (4e-4, 0.996)', 'warm', ['--lr', '4e-4', '--gamma', '0.996']),        # M
    ('lr 3e-3, $s=0.02$ (before)', 'warm', ['--lr', '3e-3', '--langevin_step_size', '0.02']),    # N
    ('defaults', 'cold', []),                                                                  # O
    ('one prior draw (handout)', 'cold', ['--cold_init', 'prior']),                            # P
    ('one prior draw, 10 steps of $s=0.05$, no cap (before)', 'cold',                         # Q
     ['--cold_init', 'prior', '--cold_langevin_num_steps', '10', '--cold_langevin_step_size', '0.05',
      '--langevin_step_cap', '0']),
    ('from fixed $z_0$ (skeleton)', 'cold', ['--cold_init', 'fixed']),                         # R
    ('with $z$ standardisation', 'cold', ['--z_whiten']),                                     # S
    ('$\\sigma = 1$ (course)', 'cold', ['--mse_sigma', '1']),                                   # T
]


def ablation_argv(a, i, mode, extra):
    """Flags of ablation i: the defaults at a.epochs, plus its own change."""
    e = a.epochs
    return ['--img_dir', str(a.img_dir), '--out_dir', str(Path(a.out_dir) / 'ablations' / f'{i:02d}'),
            '--start', mode, '--n_epochs', str(e), '--n_plot', str(e), '--n_stats', str(max(1, e // 20)),
            '--n_log', str(max(1, e // 5)), '--seed', str(a.seed), '--threads', str(a.threads), *extra]


def ablation_key(args):
    """Every setting of a run, for the cache: a cached result is re-used only if all of them match."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in ('threads', 'resume')}


def run_row(args, label):
    """Train one row (or re-use its cached metrics); returns its metrics dict."""
    exp_dir = Path(args.out_dir) / args.start
    done, key = exp_dir / 'metrics.json', ablation_key(args)
    if done.exists() and json.loads(done.read_text()).get('ablation_args') == key:
        print(f"{args.start:4s} {label}: cached")
        return json.loads(done.read_text())
    try:
        m = abp.run(args, exp_dir, abp.get_logger(exp_dir))['metrics']
    except abp.Diverged as err:
        m = {'diverged': str(err)}
    m['ablation_args'] = key
    abp.write_json(m, done)
    return m


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--img_dir', default='data', help='training images (default: data)')
    p.add_argument('--out_dir', default='output', help='where ablations/ and ablations.json go (default: output)')
    p.add_argument('--epochs', type=int, default=400, help='epochs per row (default: 400)')
    p.add_argument('--seed', type=int, default=1, help='random seed of every row (default: 1)')
    p.add_argument('--threads', type=int, default=0, help='CPU threads for torch, 0 = all (default: 0)')
    a = p.parse_args()
    if a.threads:
        abp.torch.set_num_threads(a.threads)
    try:
        abp.list_images(a.img_dir)
    except abp.UserError as e:
        sys.exit(f'ablations.py: error: {e}')
    rows = []
    for i, (label, mode, extra) in enumerate(ABLATIONS):
        m = run_row(abp.parse_args(ablation_argv(a, i, mode, extra)), label)
        rows.append({'label': label, 'start': mode, 'flags': ' '.join(extra), **m})
    abp.write_json(rows, Path(a.out_dir) / 'ablations.json')
    print(f"wrote {Path(a.out_dir) / 'ablations.json'} ({len(rows)} rows)")


if __name__ == '__main__':
    main()
