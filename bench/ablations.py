"""Ablations: one change at a time from abp.py's defaults, at reduced epochs, over three seeds, cached.

    python bench/ablations.py --img_dir ../shared/data/lion_tiger        # about 45 minutes on 2 cores

Each row runs `python abp.py --start MODE` for --epochs epochs with the defaults plus the row's flags, once per
seed (--seeds, default 1 2 3), into OUT_DIR/ablations/seedS/KEY/, re-used while every flag of the row, defaults
included, is unchanged (delete the folder to re-run one); a run the guard gave up on counts as diverged. Writes
OUT_DIR/ablations/ablations.json: per row every seed's metrics ('runs') and their mean and std (common.over_seeds):
a row differs from another only where the difference is larger than their stds.
"""
from common import study

ABLATIONS = [  # (key: its folder, label, start mode, flags changed from the defaults); the report names rows A, B, ...
    ('warm_defaults', 'defaults', 'warm', []),
    ('warm_noise4', 'noise $4s\\,e$ (skeleton)', 'warm', ['--langevin_noise_scale', '4']),
    ('warm_noise0', 'no noise (gradient descent)', 'warm', ['--langevin_noise_scale', '0']),
    ('warm_sigma1', '$\\sigma = 1$ (course)', 'warm', ['--mse_sigma', '1']),
    ('warm_nostd', 'no $z$ standardisation', 'warm', ['--no-standardize_z']),
    ('warm_nocap', 'no step cap (course)', 'warm', ['--langevin_step_cap', '0']),
    ('cold_defaults', 'defaults', 'cold', []),
    ('cold_std', 'with $z$ standardisation', 'cold', ['--standardize_z']),
    ('cold_sigma1', '$\\sigma = 1$ (course)', 'cold', ['--mse_sigma', '1']),
    ('cold_nocap', 'no step cap (course)', 'cold', ['--langevin_step_cap', '0']),
]

if __name__ == '__main__':
    study(__doc__, 'ablations', ABLATIONS, 400)
