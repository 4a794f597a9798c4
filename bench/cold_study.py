"""Cold start: how each epoch's chains should start, measured. Variants at reduced epochs, cached.

    python bench/cold_study.py --img_dir ../shared/data/lion_tiger       # about 15 minutes on 2 cores
    python report/make_tex.py                                            # the report's table from it

Cold start keeps no z between epochs. Every variant below starts each image's chain from the prior
every epoch; they differ in how they use that start (abp.py's --cold_init choices):
  handout      one prior draw per image, then K Langevin steps (eq. 6; --cold_init prior)
  annealed     one prior draw, then Langevin with sigma of eq. 3 lowered from 8 sigma to sigma along the
               chain (tempering: early steps see a smoother energy and may cross between basins), then
               K steps (--cold_init annealed)
  chains       C independent prior draws per image, K steps each, keep the chain of lowest energy, then
               K steps (--cold_init chains --cold_chains C)
  sir          M prior draws shared by all images (a scrambled Sobol sequence, or independent draws with
               --no-cold_sobol), one generator pass; each image resamples one by its likelihood, then K
               steps (abp.py's default, --cold_init sir --cold_proposals M)
Each variant is a list of flags: `python abp.py --start cold` with them for --epochs epochs into
OUT_DIR/cold_study/<key>/, re-used while every resolved flag, defaults included, is unchanged; a variant
whose run the guard gave up on is a 'diverged' row. Writes OUT_DIR/cold_study.json: per variant recon
PSNR, sample NN-PSNR, coverage, z std, ms/epoch.
"""
from pathlib import Path

from common import abp, mode_metrics, require_images, run_cached, study_argv, study_parser

VARIANTS = [  # (key, label, flags changed from the defaults: SIR, M = 32 Sobol proposals, 1 step)
    ('handout', 'one prior draw, 1 step', ['--cold_init', 'prior']),
    ('handout10nocap', 'one prior draw, 10 steps of $s=0.05$, no step cap',
     ['--cold_init', 'prior', '--cold_langevin_num_steps', '10', '--cold_langevin_step_size', '0.05',
      '--langevin_step_cap', '0']),
    ('annealed', 'one prior draw, 9 tempered + 1 step', ['--cold_init', 'annealed']),
    ('chains4', '4 chains of 1 step, best + 1 step', ['--cold_init', 'chains', '--cold_chains', '4']),
    ('sir8', 'SIR, $M=8$ Sobol, 1 step', ['--cold_proposals', '8']),
    ('sir16', 'SIR, $M=16$ Sobol, 1 step', ['--cold_proposals', '16']),
    ('sir32', 'SIR, $M=32$ Sobol, 1 step (default)', []),
    ('sir64', 'SIR, $M=64$ Sobol, 1 step', ['--cold_proposals', '64']),
    ('sir128', 'SIR, $M=128$ Sobol, 1 step', ['--cold_proposals', '128']),
    ('sir32random', 'SIR, $M=32$ independent draws, 1 step', ['--no-cold_sobol']),
    ('sir64random2', 'SIR, $M=64$ independent draws, 2 steps (the previous default)',
     ['--no-cold_sobol', '--cold_proposals', '64', '--cold_langevin_num_steps', '2']),
    ('sir32k2', 'SIR, $M=32$ Sobol, 2 steps', ['--cold_langevin_num_steps', '2']),
    ('sir32k3', 'SIR, $M=32$ Sobol, 3 steps', ['--cold_langevin_num_steps', '3']),
    ('sir32k10', 'SIR, $M=32$ Sobol, 10 steps', ['--cold_langevin_num_steps', '10']),
    ('sir32nocap', 'SIR, $M=32$ Sobol, 1 step, no step cap', ['--langevin_step_cap', '0']),
]


def main():
    p = study_parser(__doc__, 'cold_study/ and cold_study.json', 500, 'variant')
    p.add_argument('--only', nargs='*', help='run only these variant keys')
    a = p.parse_args()
    require_images(a.img_dir, 'cold_study.py')
    rows = []
    for key, label, flags in VARIANTS:
        if a.only and key not in a.only:
            continue
        m = mode_metrics(run_cached(study_argv(a, Path(a.out_dir) / 'cold_study' / key, 'cold', flags), key), 'cold')
        rows.append({'key': key, 'label': label, 'start': 'cold', 'flags': ' '.join(flags), **m})
        if 'diverged' not in m:
            print(f"{key:12s} {m['recon_psnr_db']:6.2f} dB  NN {m['sample_nn_psnr_db_median']:6.2f}  "
                  f"cov {m['sample_coverage']:3d}  z std {m['z_std']}  {1000 * m['seconds_per_epoch']:.0f} ms/epoch")
    if not a.only:
        abp.write_json(rows, Path(a.out_dir) / 'cold_study.json')
        print(f"wrote {Path(a.out_dir) / 'cold_study.json'}")


if __name__ == '__main__':
    main()
