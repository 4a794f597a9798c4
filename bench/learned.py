"""What the generator learned: five measurements of the default models, each with a figure and its numbers.

    python bench/learned.py                          # seeds 1-3: about 25 minutes a seed on 2 cores
    python bench/learned.py --seeds 1 --parts neighbours mosaic line      # seed 1's default run: a minute

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
Each seed (--seeds) measures its own default run: seed 1's comes from run_cached in --run_dir (default OUT_DIR),
seed S's from OUT_DIR/learned/seedS/run/; each is re-used while its flags and checkpoints are there (git does not
keep checkpoints: a fresh clone trains it, about 5 minutes). learned.json's over_seeds holds, per mode, the mean and
std over the seeds measured of the figures the report compares between the modes (SEED_METRICS).
"""
import argparse
import json
import statistics
from pathlib import Path

from common import abp, default_models, parser, require_images
from learned_heldout import heldout
from learned_line import line
from learned_mosaic import mosaic
from learned_neighbours import neighbours
from learned_theory import theory

PARTS = {'neighbours': neighbours, 'mosaic': mosaic, 'line': line, 'heldout': heldout, 'theory': theory}
# the figures the text compares between the modes, measured per seed: (part, key, ...) in a mode's result
SEED_METRICS = {'copy_share': ('neighbours', 'copy_share'),
                'mosaic_share': ('mosaic', 'square_share_within_3db_of_nearest_image_recon'),
                'identical_tiles_share': ('mosaic', 'panel_neighbours', 'share_above_35db'),
                'line_min_step_db': ('line', 'min_consecutive_frame_db'),
                'line_median_step_db': ('line', 'median_consecutive_frame_db'),
                'line_length': ('line', 'length'),
                'code_wander': ('theory', 'z_std_late_median'),
                'heldout_db': ('heldout', 'heldout_db_mean')}


def seed_dir(out, seed):
    """Where seed's measurements go: seed 1 (the default run's) in out, the others in out/seedS/."""
    return out if seed == 1 else out / f'seed{seed}'


def over_seeds(out):
    """Per mode, each SEED_METRICS figure over every seed measured so far (seed_dir): its values, mean and std."""
    docs = {1: out / 'learned.json', **{int(d.name[4:]): d / 'learned.json' for d in out.glob('seed[0-9]*')}}
    runs = {s: json.loads(p.read_text()) for s, p in sorted(docs.items()) if p.exists()}
    result = {'seeds': list(runs)}
    for mode in ('warm', 'cold'):
        result[mode] = {}
        for name, (part, *keys) in SEED_METRICS.items():
            values = []
            for r in runs.values():
                v = r.get(part, {}).get(mode)
                for k in keys:
                    v = None if v is None else v.get(k)
                values += [] if v is None else [v]
            result[mode][name] = {'values': values, 'mean': round(statistics.mean(values), 4) if values else None,
                                  'std': round(statistics.stdev(values), 4) if len(values) > 1 else None}
    return result


def main():
    p = parser(__doc__, 'learned/')
    p.add_argument('--run_dir', help='the default run: its folder (default: OUT_DIR)')
    p.add_argument('--parts', nargs='+', default=list(PARTS), choices=PARTS, help='which parts (default: all)')
    p.add_argument('--samples', type=int, default=1000, help='neighbours: prior samples measured (default: 1000)')
    p.add_argument('--shown', type=int, default=6, help='neighbours: samples shown per mode (default: 6)')
    p.add_argument('--copy_db', type=float, default=3.0,
                   help="neighbours, mosaic: a sample copies an image within this many dB of the image's "
                        "reconstruction PSNR (default: 3)")
    p.add_argument('--frames', type=int, default=9, help='line: points on the line (default: 9)')
    p.add_argument('--holdout', type=int, default=3, help='heldout: images left out (default: 3)')
    p.add_argument('--proposals', type=int, default=4096, help='heldout: prior proposals per image (default: 4096)')
    p.add_argument('--steps', type=int, default=200, help='heldout: Langevin steps after them (default: 200)')
    p.add_argument('--every', type=int, default=20, help='theory: epochs between measurements (default: 20)')
    p.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3],
                   help='seeds of the default run to measure, each with its own default run, held-out and theory '
                        'trainings; seed 1 in OUT_DIR/learned/ (its figures are the report\'s), the others in '
                        'OUT_DIR/learned/seedS/ (default: 1 2 3)')
    p.add_argument('--epochs', type=int, default=2000, help='theory and heldout: epochs per mode (default: 2000)')
    a = p.parse_args()
    require_images(a.img_dir, 'learned.py')
    out = Path(a.out_dir) / 'learned'
    for seed in a.seeds:
        where = seed_dir(out, seed)
        where.mkdir(parents=True, exist_ok=True)
        a_seed = argparse.Namespace(**{**vars(a), 'seed': seed,
                                       'run_dir': (a.run_dir or a.out_dir) if seed == 1 else str(where / 'run')})
        models = default_models(a.img_dir, a_seed.run_dir, seed, 'learned.py')
        data = abp.load_data(models['warm'][0])
        x, names = data.batch(None).cpu(), data.names
        path = where / 'learned.json'
        result = json.loads(path.read_text()) if path.exists() else {}
        for part, study in PARTS.items():
            if part in a.parts:
                result[part] = study(models, x, names, a_seed, where)
                abp.write_json(result, path)
                print(f'seed {seed} {part}: written to {path}')
    result = json.loads((out / 'learned.json').read_text()) if (out / 'learned.json').exists() else {}
    result['over_seeds'] = summary = over_seeds(out)
    abp.write_json(result, out / 'learned.json')
    for name in SEED_METRICS:
        print(f"{name:22s} " + '   '.join(f"{m} {summary[m][name]['mean']} +- {summary[m][name]['std']}"
                                          for m in ('warm', 'cold')) + f"   (seeds {summary['seeds']})")


if __name__ == '__main__':
    main()
