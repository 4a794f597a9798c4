"""Cold start: how each epoch's chains should start, measured. Variants at reduced epochs, cached.

    python bench/cold_study.py --img_dir ../shared/data/lion_tiger       # about 40 minutes on 2 cores
    python report/make_tex.py                                            # the report's table from it

Cold start keeps no z between epochs. Every variant below starts each image's chain from the prior
every epoch; they differ in how they use that start (abp.py's --cold_init choices):
  handout      one prior draw per image, then K Langevin steps (eq. 6; --cold_init prior)
  sir          M prior draws shared by all images (a scrambled Sobol sequence, or independent draws with
               --no-cold_sobol), one generator pass; each image resamples one by its likelihood, then K
               steps (abp.py's default, --cold_init sir --cold_proposals M), for M = 16, 32, 64
abp.py's other starts, --cold_init annealed and --cold_init chains, are not in the study: they were dropped
from it for time when it went to three seeds.
Each variant is a list of flags: `python abp.py --start cold` with them for --epochs epochs, once per seed
(--seeds, default 1 2 3), into OUT_DIR/cold_study/seedS/<key>/, re-used while every resolved flag, defaults
included, is unchanged; a run the guard gave up on counts as diverged. Writes OUT_DIR/cold_study.json: per
variant every seed's metrics ('runs') and the mean and std of recon PSNR, sample NN-PSNR, coverage and
seconds per epoch (common.over_seeds).
"""
from pathlib import Path

from common import abp, mode_metrics, over_seeds, require_images, run_cached, study_argv, study_parser

VARIANTS = [  # (key, label, flags changed from the defaults: SIR, M = 32 Sobol proposals, 1 step)
    ('handout', 'one prior draw, 1 step', ['--cold_init', 'prior']),
    ('sir16', 'SIR, $M=16$ Sobol, 1 step', ['--cold_proposals', '16']),
    ('sir32', 'SIR, $M=32$ Sobol, 1 step (default)', []),
    ('sir64', 'SIR, $M=64$ Sobol, 1 step', ['--cold_proposals', '64']),
    ('sir32random', 'SIR, $M=32$ independent draws, 1 step', ['--no-cold_sobol']),
    ('sir64random2', 'SIR, $M=64$ independent draws, 2 steps (the previous default)',
     ['--no-cold_sobol', '--cold_proposals', '64', '--cold_langevin_num_steps', '2']),
]


def main():
    p = study_parser(__doc__, 'cold_study/ and cold_study.json', 500, 'variant')
    p.add_argument('--only', nargs='*', help='run only these variant keys')
    a = p.parse_args()
    require_images(a.img_dir, 'cold_study.py')
    variants = [v for v in VARIANTS if not a.only or v[0] in a.only]
    runs = {key: [] for key, _, _ in variants}
    for seed in a.seeds:                              # seed by seed: an interrupted study keeps whole seeds
        for key, label, flags in variants:
            argv = study_argv(a, Path(a.out_dir) / 'cold_study' / f'seed{seed}' / key, 'cold', flags, seed)
            runs[key].append(mode_metrics(run_cached(argv, f'seed {seed} {key}'), 'cold'))
    rows = [{'key': key, 'label': label, 'start': 'cold', 'flags': ' '.join(flags), 'seeds': a.seeds,
             'epochs': a.epochs, **over_seeds(runs[key]), 'runs': runs[key]} for key, label, flags in variants]
    for r in rows:
        print(f"{r['key']:12s} {r['recon_psnr_db'] or 0:6.2f} +- {r['recon_psnr_db_std'] or 0:4.2f} dB  "
              f"NN {r['sample_nn_psnr_db_median'] or 0:6.2f} +- {r['sample_nn_psnr_db_median_std'] or 0:4.2f}  "
              f"cov {r['sample_coverage'] or 0:4.1f}  {1000 * (r['seconds_per_epoch'] or 0):.0f} ms/epoch  "
              f"diverged {r['n_diverged']}")
    if not a.only:
        abp.write_json(rows, Path(a.out_dir) / 'cold_study.json')
        print(f"wrote {Path(a.out_dir) / 'cold_study.json'}")


if __name__ == '__main__':
    main()
