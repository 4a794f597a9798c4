"""Ablations: one change at a time from abp.py's defaults, at reduced epochs, cached.

    python bench/ablations.py --img_dir ../shared/data/lion_tiger        # about 20 minutes on 2 cores
    python report/make_tex.py                                             # the report's table from it

Each row runs `python abp.py --start MODE` for --epochs epochs with the defaults plus the row's flags
into OUT_DIR/ablations/NN/ (its summary: OUT_DIR/ablations/NN/<mode>/summary.json), re-used while every
resolved flag of the row, defaults included, is unchanged (delete the folder to re-run one). A row whose
run the guard gave up on is a 'diverged' row. All rows together: OUT_DIR/ablations.json.
"""
from pathlib import Path

from common import abp, mode_metrics, require_images, run_cached, study_argv, study_parser

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
    ('no $z$ standardisation', 'warm', ['--no-standardize_z']),                                # K
    ('$s = 0.1$, no standardisation', 'warm', ['--langevin_step_size', '0.1', '--no-standardize_z']),  # L
    ('course lr, $\\gamma$ (4e-4, 0.996)', 'warm', ['--lr', '4e-4', '--gamma', '0.996']),        # M
    ('lr 3e-3, $s=0.02$ (before)', 'warm', ['--lr', '3e-3', '--langevin_step_size', '0.02']),    # N
    ('defaults', 'cold', []),                                                                  # O
    ('one prior draw (handout)', 'cold', ['--cold_init', 'prior']),                            # P
    ('one prior draw, 10 steps of $s=0.05$, no cap (before)', 'cold',                         # Q
     ['--cold_init', 'prior', '--cold_langevin_num_steps', '10', '--cold_langevin_step_size', '0.05',
      '--langevin_step_cap', '0']),
    ('from fixed $z_0$ (skeleton)', 'cold', ['--cold_init', 'fixed']),                         # R
    ('with $z$ standardisation', 'cold', ['--standardize_z']),                                 # S
    ('$\\sigma = 1$ (course)', 'cold', ['--mse_sigma', '1']),                                   # T
]


def main():
    p = study_parser(__doc__, 'ablations/ and ablations.json', 400, 'row')
    a = p.parse_args()
    require_images(a.img_dir, 'ablations.py')
    rows = []
    for i, (label, mode, extra) in enumerate(ABLATIONS):
        argv = study_argv(a, Path(a.out_dir) / 'ablations' / f'{i:02d}', mode, extra)
        result = run_cached(argv, f'{mode:4s} {label}')
        rows.append({'label': label, 'start': mode, 'flags': ' '.join(extra), **mode_metrics(result, mode)})
    abp.write_json(rows, Path(a.out_dir) / 'ablations.json')
    print(f"wrote {Path(a.out_dir) / 'ablations.json'} ({len(rows)} rows)")


if __name__ == '__main__':
    main()
