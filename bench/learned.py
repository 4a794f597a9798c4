"""What the generator learned: five measurements of the default models, each with a figure and its numbers.

    python bench/learned.py --img_dir ../shared/data/lion_tiger       # about 25 minutes on 2 cores
    python bench/learned.py --img_dir ../shared/data/lion_tiger --parts neighbours mosaic line   # seconds

The parts (--parts, default all; each writes its key of OUT_DIR/learned/learned.json, keeping the others'):
  neighbours  prior samples of the default run's warm and cold generators beside their nearest training
              image; the share of samples that copy a training image (NN-PSNR at least that image's own
              reconstruction PSNR minus --copy_db) -> learned_neighbours.jpg
  mosaic      the interpolation square of each mode coloured by the training image nearest to g(z), the prior
              mass of each image's cell, and the PSNR between neighbouring tiles of the 12 x 12 panel
              -> learned_mosaic.png
  line        a straight line in z from a tiger's code to a lion's (warm and cold) beside the pixel
              cross-fade of the same two images -> learned_line.jpg
  heldout     trains both modes on the images minus --holdout of them (a folder of links in
              OUT_DIR/learned/images/), then infers each held-out image's z (M Sobol prior proposals, the
              likeliest, then Langevin) and compares its PSNR with the nearest training image, PCA(2) fitted
              on the training images, and its own reconstruction in the default run -> learned_heldout.jpg
  theory      re-trains both modes in this process (abp.train, without the default run's figures) and, through
              its hook, every --every epochs records per image the largest curvature eigenvalue of eq. 3 in z
              (lambda_max), the posterior width w = lambda_max^-1/2 against the step s of eq. 6 the chain takes,
              and the effective sample size of the SIR weights over the cold proposals -> learned_theory.png
The default run comes from run_cached in --run_dir (default OUT_DIR): re-used while its flags and checkpoints are
there (git does not keep checkpoints: a fresh clone trains it, about 8 minutes).
"""
import json
from pathlib import Path

from common import abp, parser, require_images
from learned_common import default_models
from learned_heldout import heldout
from learned_line import line
from learned_mosaic import mosaic
from learned_neighbours import neighbours
from learned_theory import theory

PARTS = {'neighbours': neighbours, 'mosaic': mosaic, 'line': line, 'heldout': heldout, 'theory': theory}


def main():
    p = parser(__doc__, 'learned/')
    p.add_argument('--run_dir', help='the default run: its folder (default: OUT_DIR)')
    p.add_argument('--parts', nargs='+', default=list(PARTS), choices=PARTS, help='which parts (default: all)')
    p.add_argument('--samples', type=int, default=1000, help='neighbours: prior samples measured (default: 1000)')
    p.add_argument('--shown', type=int, default=12, help='neighbours: samples shown (default: 12)')
    p.add_argument('--copy_db', type=float, default=3.0,
                   help="neighbours: a sample copies an image within this many dB of the image's reconstruction "
                        "PSNR (default: 3)")
    p.add_argument('--frames', type=int, default=9, help='line: points on the line (default: 9)')
    p.add_argument('--holdout', type=int, default=3, help='heldout: images left out (default: 3)')
    p.add_argument('--proposals', type=int, default=4096, help='heldout: prior proposals per image (default: 4096)')
    p.add_argument('--steps', type=int, default=200, help='heldout: Langevin steps after them (default: 200)')
    p.add_argument('--every', type=int, default=20, help='theory: epochs between measurements (default: 20)')
    p.add_argument('--seed', type=int, default=1, help='theory and heldout: seed (default: 1)')
    p.add_argument('--epochs', type=int, default=2000, help='theory and heldout: epochs per mode (default: 2000)')
    a = p.parse_args()
    a.run_dir = a.run_dir or a.out_dir
    require_images(a.img_dir, 'learned.py')
    out = Path(a.out_dir) / 'learned'
    out.mkdir(parents=True, exist_ok=True)
    models = default_models(a)
    data = abp.load_data(models['warm'][0])
    x, names = data.batch(None).cpu(), data.names
    path = out / 'learned.json'
    result = json.loads(path.read_text()) if path.exists() else {}
    for part, study in PARTS.items():
        if part in a.parts:
            result[part] = study(models, x, names, a, out)
            abp.write_json(result, path)
            print(f'{part}: written to {path}')


if __name__ == '__main__':
    main()
