"""What storing figures as 256-colour PNGs costs: size and PSNR against the 24-bit file.

    python bench/png_size.py output/warm/2000_sampled.png output/cold/2000_interp.png   # any 24-bit PNGs

abp.py stores its figures full of photographs (compare_*.png, latent maps, occlusion.png) with
abp.to_palette, to keep the committed output/ small. For each PNG given, this prints its size, the
size of its 256-colour version (saved as abp.py saves it) and the PSNR between the two, in [0, 1].
"""
import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import abp  # noqa: E402


def palette_cost(path):
    """(bytes of the 24-bit file, bytes as 256 colours, PSNR in dB between them)."""
    img = Image.open(path).convert('RGB')
    buf = io.BytesIO()
    pal = abp.to_palette(img)
    pal.save(buf, format='png', optimize=True)
    a = np.asarray(img, dtype=np.float64) / 255
    b = np.asarray(pal.convert('RGB'), dtype=np.float64) / 255
    return Path(path).stat().st_size, buf.tell(), 10 * np.log10(1 / np.mean((a - b) ** 2))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('png', nargs='+', help='24-bit PNG files, e.g. the run directories\' {epoch}_*.png')
    a = p.parse_args()
    print(f"{'file':40s} {'24-bit KB':>10s} {'256 col KB':>10s} {'ratio':>6s} {'PSNR dB':>8s}")
    for f in a.png:
        if not Path(f).is_file():
            sys.exit(f'png_size.py: error: {f} does not exist; run python abp.py first')
        full, pal, db = palette_cost(f)
        print(f"{f:40s} {full / 1024:10.0f} {pal / 1024:10.0f} {full / pal:6.2f} {db:8.2f}")


if __name__ == '__main__':
    main()
