"""Ablations: one change at a time from abp.py's defaults, at reduced epochs, cached.

    python bench/ablations.py --img_dir ../shared/data/lion_tiger        # about 45 minutes on 2 cores
    python report/make_tex.py                                             # the report's table from it

Each row runs `python abp.py --start MODE` for --epochs epochs with the defaults plus the row's flags, once
per seed (--seeds, default 1 2 3), into OUT_DIR/ablations/seedS/KEY/ (its summary there in
<mode>/summary.json), re-used while every resolved flag of the row, defaults included, is unchanged (delete
the folder to re-run one). A run the guard gave up on counts as diverged. OUT_DIR/ablations.json holds per
row every seed's metrics ('runs') and their mean and std (common.over_seeds): a row differs from another
only where the difference is larger than their stds.
"""
from pathlib import Path

from common import abp, mode_metrics, over_seeds, require_images, run_cached, study_argv, study_parser

ABLATIONS = [  # (key: its folder, label, start mode, flags changed from the defaults); the report names rows A, B, ...
    ('warm_defaults', 'defaults', 'warm', []),                                                   # A
    ('warm_noise4', 'noise $4s\\,e$ (skeleton)', 'warm', ['--langevin_noise_scale', '4']),        # B
    ('warm_noise0', 'no noise (gradient descent)', 'warm', ['--langevin_noise_scale', '0']),     # C
    ('warm_sigma1', '$\\sigma = 1$ (course)', 'warm', ['--mse_sigma', '1']),                       # D
    ('warm_nostd', 'no $z$ standardisation', 'warm', ['--no-standardize_z']),                    # E
    ('cold_defaults', 'defaults', 'cold', []),                                                   # F
    ('cold_fixed', 'from fixed $z_0$ (skeleton)', 'cold', ['--cold_init', 'fixed']),             # G
    ('cold_std', 'with $z$ standardisation', 'cold', ['--standardize_z']),                       # H
    ('cold_sigma1', '$\\sigma = 1$ (course)', 'cold', ['--mse_sigma', '1']),                       # I
]


def main():
    p = study_parser(__doc__, 'ablations/ and ablations.json', 400, 'row')
    a = p.parse_args()
    require_images(a.img_dir, 'ablations.py')
    runs = {i: [] for i in range(len(ABLATIONS))}
    for seed in a.seeds:                              # seed by seed: an interrupted study keeps whole seeds
        for i, (key, label, mode, extra) in enumerate(ABLATIONS):
            argv = study_argv(a, Path(a.out_dir) / 'ablations' / f'seed{seed}' / key, mode, extra, seed)
            runs[i].append(mode_metrics(run_cached(argv, f'seed {seed} {mode:4s} {label}'), mode))
    rows = [{'key': key, 'label': label, 'start': mode, 'flags': ' '.join(extra), 'seeds': a.seeds, 'epochs': a.epochs,
             **over_seeds(runs[i]), 'runs': runs[i]} for i, (key, label, mode, extra) in enumerate(ABLATIONS)]
    for r in rows:
        print(f"{r['start']:4s} {r['label'][:40]:40s} {r['recon_psnr_db'] or 0:6.2f} +- {r['recon_psnr_db_std'] or 0:4.2f} dB"
              f"  NN {r['sample_nn_psnr_db_median'] or 0:6.2f} +- {r['sample_nn_psnr_db_median_std'] or 0:4.2f}"
              f"  diverged {r['n_diverged']}  guard {r['guard_events']}")
    abp.write_json(rows, Path(a.out_dir) / 'ablations.json')
    print(f"wrote {Path(a.out_dir) / 'ablations.json'} ({len(rows)} rows)")


if __name__ == '__main__':
    main()
