import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_images(folder, n=4, size=40, seed=0):
    """n small RGB images of coloured discs on plain backgrounds: a stand-in for a real data set."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        bg, fg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        cy, cx, r = rng.integers(size // 4, 3 * size // 4, 2).tolist() + [size // 4]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img = np.where(disc[..., None], fg, bg).astype(np.uint8)
        Image.fromarray(img).save(folder / f'img_{i}.png')
    return folder


@pytest.fixture
def img_dir(tmp_path):
    return make_images(tmp_path / 'imgs')


@pytest.fixture
def real_dir():
    path = os.environ.get('ABP_DATA')
    if not path:
        pytest.skip('ABP_DATA is not set (point it at the 11 course images)')
    return Path(path)


def tiny_argv(img_dir, out_dir, *extra):
    """Flags for a run that takes seconds: 16-px images, narrow generator, few epochs."""
    return ['--img_dir', str(img_dir), '--out_dir', str(out_dir), '--img_size', '16', '--n_epochs', '6',
            '--n_plot', '2', '--n_log', '2', '--n_stats', '2', '--langevin_num_steps', '3', '--cold_langevin_num_steps', '3',
            '--gen_width', '4', '--ninterp', '4', *extra]
