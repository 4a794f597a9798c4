"""What the studies of bench/learned.py share: the default models, figure sizes and small helpers."""
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from common import DEFAULTS, abp, finished, load_run, run_cached, short_run

WIDTH = 6.6              # figures are drawn just inside the report's text width (6.77 in), fonts at 7 pt or more
DPI = 200                # ... at about 1.4 px of a 128-px tile per printed pixel: tiles near full resolution


def default_models(a):
    """The default run of seed a.seed (both modes) via run_cached in a.run_dir, and per mode its (args, State), on
    the CPU."""
    argv = ['--img_dir', a.img_dir, '--out_dir', a.run_dir, '--seed', str(a.seed)]
    finished(run_cached(argv, 'default run', need_checkpoints=True), 'learned.py', 'the default run')
    return {m: load_run(Path(a.run_dir) / m) for m in ('warm', 'cold')}


def gen(state, z):
    return abp.generate(state.model.Gnet, z)


def epochs_flags(epochs):
    """abp.py's flags for a run of `epochs` epochs: none for the default count (short_run's otherwise)."""
    return [] if epochs == DEFAULTS['n_epochs'] else short_run(epochs)


def db(v):
    return round(float(v), 3)


def save_photo_figure(fig, path):
    """A figure full of photographs as abp.py stores one (a 4:4:4 JPEG), at DPI; returns its PSNR (dB) to the
    lossless render."""
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=DPI, bbox_inches='tight')
    Image.open(buf).convert('RGB').save(path, format='JPEG', **abp.PHOTO_JPEG)
    a, b = (np.asarray(Image.open(f).convert('RGB'), dtype=np.float64) / 255 for f in (buf, path))
    return db(10 * math.log10(1 / max(np.mean((a - b) ** 2), 1e-12)))


def strip(ax, img, label):
    """One row of images (N, 3, H, W) in [-1, 1], labelled on the left."""
    ax.imshow(abp.grid_image(img, len(img)))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(label, rotation=0, ha='right', va='center', fontsize=7.5)
