"""Image folders unlike the lions and tigers, for checking that abp.py's defaults hold on any folder.

    pip install scikit-image                      # its bundled sample photos are the sources
    python bench/make_folders.py /tmp/abp_folders # writes photos/ faces/ textures/ gray/ shapes/

Each folder holds 12-16 images made from scikit-image's bundled photos (no download) or drawn here:
  photos    16 colour crops (astronaut, cat, coffee, rocket, ...), numbered names like 182736.jpg
  faces     12 faces of scikit-image's LFW subset, 25 px upscaled, numbered names like 000017.png
  textures  15 tinted crops of brick, grass and gravel, names brick_01.png ...
  gray      12 grayscale crops (camera, moon, coins, text, ...), unusual names: spaces, accents, brackets
  shapes    16 coloured shapes (circle, square, triangle, star) on noisy gradient backgrounds
The crops are random (seeded): the same command always makes the same files.
"""
import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

COLOUR = ['astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'motorcycle_left.png',
          'hubble_deep_field.jpg', 'ihc.png', 'retina.jpg']
GRAY = ['camera.png', 'moon.png', 'coins.png', 'text.png', 'page.png', 'cell.png', 'microaneurysms.png',
        'clock_motion.png', 'phantom.png', 'brick.png', 'grass.png', 'gravel.png']
TEXTURES = ['brick.png', 'grass.png', 'gravel.png']
ODD_NAMES = ['photo (1).png', 'Photo 2.PNG', 'café-été.png', 'x.y.z.png', '100.png', '_under.png',
             'UPPER.png', '-dash.png', 'naïve 😀.png', 'a,b;c.png', "it's.png", '9lives.png']


def skimage_data():
    """The folder of scikit-image's bundled sample images."""
    try:
        import skimage
    except ImportError:
        sys.exit('make_folders.py: error: scikit-image is not installed; run: pip install scikit-image')
    return Path(skimage.__file__).parent / 'data'


def random_crop(rng, img, out_size, scale=(0.45, 0.9)):
    """A random square crop of `scale` times the shorter side, maybe mirrored, resized to out_size."""
    w, h = img.size
    side = int(min(w, h) * rng.uniform(*scale))
    x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    crop = img.crop((x0, y0, x0 + side, y0 + side))
    if rng.random() < 0.5:
        crop = ImageOps.mirror(crop)
    return crop.resize((out_size, out_size), Image.BICUBIC)


def jitter(rng, img):
    """Small brightness and contrast changes, as between two photos of one scene."""
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
    return ImageEnhance.Contrast(img).enhance(rng.uniform(0.85, 1.15))


def photos(rng, src, out):
    names = rng.choice(np.arange(100000, 999999), size=2 * len(COLOUR), replace=False)
    for i, name in enumerate(names):
        with Image.open(src / COLOUR[i % len(COLOUR)]) as im:
            jitter(rng, random_crop(rng, im.convert('RGB'), 190)).save(out / f'{name}.jpg', quality=92)


def faces(rng, src, out):
    lfw = np.load(src / 'lfw_subset.npy')[:100]            # the first 100 are faces, 25 x 25 in [0, 1]
    for i in sorted(rng.choice(100, size=12, replace=False)):
        im = Image.fromarray((lfw[i] * 255).astype(np.uint8), 'L').resize((100, 100), Image.BICUBIC)
        im.save(out / f'{i:06d}.png')


def textures(rng, src, out):
    for i in range(15):
        kind = TEXTURES[i % len(TEXTURES)]
        with Image.open(src / kind) as im:
            gray = random_crop(rng, im.convert('L'), 160, scale=(0.3, 0.7))
        dark, light = rng.integers(0, 120, 3), rng.integers(136, 256, 3)
        ImageOps.colorize(gray, tuple(int(c) for c in dark), tuple(int(c) for c in light)).save(
            out / f'{kind[:-4]}_{i:02d}.png')


def gray(rng, src, out):
    for name, source in zip(ODD_NAMES, GRAY):
        with Image.open(src / source) as im:
            random_crop(rng, im.convert('L'), 150).save(out / name)


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


def shapes(rng, src, out):
    for i in range(16):
        img, kind = shape_image(rng)
        img.save(out / f'{kind}_{i:02d}.png')


FOLDERS = {'photos': photos, 'faces': faces, 'textures': textures, 'gray': gray, 'shapes': shapes}


def make_folders(root, seed=0, kinds=tuple(FOLDERS)):
    """Write every folder under root; returns {kind: folder}."""
    src, made = skimage_data(), {}
    for kind in kinds:
        out = Path(root) / kind
        out.mkdir(parents=True, exist_ok=True)
        k = list(FOLDERS).index(kind)       # a folder's crops do not depend on which others are made with it
        FOLDERS[kind](np.random.default_rng(seed + 1000 * k), src, out)
        made[kind] = out
    return made


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('root', help='folder to create the image folders in')
    p.add_argument('--seed', type=int, default=0, help='random seed of the crops (default: 0)')
    a = p.parse_args()
    for kind, out in make_folders(a.root, a.seed).items():
        print(f'{kind:9s} {len(list(out.iterdir())):3d} images in {out}')


if __name__ == '__main__':
    main()
