"""A second data set, unlike the lions and tigers: coloured shapes on textured backgrounds.

    python bench/make_shapes.py /tmp/shapes            # 16 images, 160 x 160 PNG
    python abp.py --img_dir /tmp/shapes --out_dir /tmp/shapes_out

Used to check that abp.py's defaults are not tuned to the 11 course images alone.
"""
import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def shape_image(rng, size=160):
    """One image: a gradient background with noise, and a circle, square, triangle or star on it."""
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, size)[:, None, None]
    bg = (top * (1 - t) + bottom * t).repeat(size, axis=1) + rng.normal(0, 12, (size, size, 3))
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))
    draw = ImageDraw.Draw(img)
    kind = rng.choice(['circle', 'square', 'triangle', 'star'])
    cx, cy, r = *rng.integers(size // 3, 2 * size // 3, 2), int(rng.integers(size // 6, size // 3))
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    rot = rng.uniform(0, 2 * math.pi)
    n = {'square': 4, 'triangle': 3, 'star': 10}.get(kind)
    if kind == 'circle':
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        pts = [(cx + (r if kind != 'star' or i % 2 == 0 else r / 2) * math.cos(rot + 2 * math.pi * i / n),
                cy + (r if kind != 'star' or i % 2 == 0 else r / 2) * math.sin(rot + 2 * math.pi * i / n))
               for i in range(n)]
        draw.polygon(pts, fill=colour)
    return img, kind


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('out', help='folder to write the images into')
    p.add_argument('--n', type=int, default=16, help='number of images (default: 16)')
    p.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(a.n):
        img, kind = shape_image(rng)
        img.save(out / f'{kind}_{i:02d}.png')
    print(f'wrote {a.n} images to {out}')


if __name__ == '__main__':
    main()
