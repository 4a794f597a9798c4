"""What storing figures of photographs costs: size and PSNR of abp.py's JPEG and of a 256-colour PNG, against
the 24-bit file.

    python bench/png_size.py output/warm/2000_sampled.png output/cold/2000_interp.png   # any 24-bit PNGs

abp.py stores its figures full of photographs (compare_*.jpg, interp_*.jpg) as 4:4:4 JPEGs (abp.PHOTO_JPEG)
to keep the committed output/ small; it stored them as 256-colour PNGs before. For each PNG given, this
prints its size, the size and PSNR (in [0, 1]) of each of the two, so the choice can be checked on any image.
"""
import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import abp  # noqa: E402


def stored(img, kind):
    """img (RGB) stored as abp.py's JPEG ('jpeg') or as 256 colours ('palette'): (bytes, RGB image read back)."""
    buf = io.BytesIO()
    if kind == 'jpeg':
        img.save(buf, format='JPEG', **abp.PHOTO_JPEG)
    else:
        img.quantize(256, method=Image.Quantize.MEDIANCUT).save(buf, format='png', optimize=True)
    size = buf.tell()
    buf.seek(0)
    return size, Image.open(buf).convert('RGB')


def psnr(a, b):
    a, b = (np.asarray(im, dtype=np.float64) / 255 for im in (a, b))
    return 10 * np.log10(1 / max(np.mean((a - b) ** 2), 1e-12))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('png', nargs='+', help='24-bit PNG files, e.g. the run directories\' {epoch}_*.png')
    a = p.parse_args()
    print(f"{'file':40s} {'24-bit KB':>10s} {'JPEG KB':>8s} {'JPEG dB':>8s} {'256 col KB':>10s} {'256 col dB':>10s}")
    for f in a.png:
        if not Path(f).is_file():
            sys.exit(f'png_size.py: error: {f} does not exist; run python abp.py first')
        img = Image.open(f).convert('RGB')
        (js, jb), (ps, pb) = stored(img, 'jpeg'), stored(img, 'palette')
        print(f"{f:40s} {Path(f).stat().st_size / 1024:10.0f} {js / 1024:8.0f} {psnr(img, jb):8.2f} "
              f"{ps / 1024:10.0f} {psnr(img, pb):10.2f}")


if __name__ == '__main__':
    main()
