"""What the studies of bench/learned.py share: figure sizes and small helpers."""
import io
import math

import numpy as np
from PIL import Image

from common import DEFAULTS, abp, short_run

WIDTH = 6.5              # figures are drawn at the report's text width (6.54 in), where they print: fonts >= 7.5 pt
DPI = 200                # ... at about 1.4 px of a 128-px tile per printed pixel: tiles near full resolution


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
