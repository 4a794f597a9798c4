"""Cold start: where each epoch's chains should start, measured at reduced epochs over three seeds, cached.

    python bench/cold_study.py --img_dir ../shared/data/lion_tiger       # about 25 minutes on 2 cores

Cold start keeps no z between epochs: every variant starts each image's chain from the prior every epoch and takes
one Langevin step from there. They differ in the start:
  handout   one prior draw per image (eq. 6; --cold_proposals 0)
  sirM      M prior draws (a scrambled Sobol sequence) shared by the images, one generator pass; each image
            resamples one by its likelihood (abp.py's default, M = 32). abp.py draws at least two per image
            (rounded up to a power of two), so M below 32 is M = 32 on 11 to 16 images.
Each variant runs `python abp.py --start cold` with its flags for --epochs epochs once per seed (--seeds, default
1 2 3) into OUT_DIR/cold_study/seedS/<key>/, re-used while every flag, defaults included, is unchanged; a run the
guard gave up on counts as diverged. Writes OUT_DIR/cold_study/cold_study.json: per variant every seed's metrics
('runs') and their mean and std (common.over_seeds).
"""
from common import study

VARIANTS = [  # (key, label, start mode, flags changed from the defaults)
    ('handout', 'one prior draw, 1 step', 'cold', ['--cold_proposals', '0']),
    ('sir32', 'SIR, $M=32$ Sobol, 1 step (default)', 'cold', []),
    ('sir64', 'SIR, $M=64$ Sobol, 1 step', 'cold', ['--cold_proposals', '64']),
]

if __name__ == '__main__':
    study(__doc__, 'cold_study', VARIANTS, 500)
