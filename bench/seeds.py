"""Seeds: the default run with seeds 1, 2, 3, and the spread of every metric across them.

    python bench/seeds.py --img_dir ../shared/data/lion_tiger        # about 20 minutes on 2 cores

Each seed runs `python abp.py` with the default flags (both start modes) into OUT_DIR/seeds/seedN/,
re-used while its flags are unchanged; a default run already in OUT_DIR (seed 1) is re-used too. Prints per mode and seed the reconstruction PSNR, sample
NN-PSNR, coverage, z mean/std and seconds, then each metric's min, max and spread; writes
OUT_DIR/seeds.json.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import abp  # noqa: E402

METRICS = ('recon_psnr_db', 'sample_nn_psnr_db_median', 'sample_coverage', 'seconds')


def same_flags(metrics, args):
    """Did the run behind these metrics use these flags (output folder and threads aside)?"""
    skip = ('threads', 'resume', 'out_dir')
    return {k: v for k, v in metrics.get('args', {}).items() if k not in skip} == \
        {k: v for k, v in vars(args).items() if k not in skip}


def run_seed(img_dir, out_dir, seed, extra=(), also=None, need_checkpoints=False):
    """The default run with this seed (both start modes) into out_dir, or the metrics of a run that
    already used the same flags there or in `also` (e.g. output/, the default run of seed 1) and, with
    need_checkpoints, still holds each mode's checkpoint.pt (which git does not keep)."""
    argv = ['--img_dir', str(img_dir), '--out_dir', str(out_dir), '--seed', str(seed), *extra]
    args = abp.parse_args(argv)
    needs = [f'{mode}/checkpoint.pt' for mode in abp.start_modes(args.start)] if need_checkpoints else []
    for done in [Path(out_dir) / 'metrics.json'] + ([Path(also) / 'metrics.json'] if also else []):
        if done.exists() and same_flags(json.loads(done.read_text()), args) and \
                all((done.parent / f).exists() for f in needs):
            print(f'seed {seed}: the run in {done.parent} is re-used')
            return json.loads(done.read_text())
    abp.main(argv)
    return json.loads((Path(out_dir) / 'metrics.json').read_text())


def spread(rows, mode, key):
    values = [r[mode][key] for r in rows]
    return {'min': min(values), 'max': max(values), 'spread': round(max(values) - min(values), 3), 'values': values}


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--img_dir', default='data', help='training images (default: data)')
    p.add_argument('--out_dir', default='output', help='where seeds/ and seeds.json go (default: output)')
    p.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3], help='seeds to run (default: 1 2 3)')
    a, extra = p.parse_known_args()                   # any other flag is passed on to abp.py
    rows = [run_seed(a.img_dir, Path(a.out_dir) / 'seeds' / f'seed{s}', s, extra, also=a.out_dir) for s in a.seeds]
    result = {'seeds': a.seeds, 'flags': extra, 'runs': [{m: r[m] for m in ('warm', 'cold')} for r in rows],
              'total_seconds': [r['total_seconds'] for r in rows], 'summary': {}}
    print(f"\n{'mode':5s} {'seed':>4s} {'recon dB':>9s} {'NN dB':>7s} {'cover':>6s} {'z mean':>16s} {'z std':>14s} {'s':>5s}")
    for mode in ('warm', 'cold'):
        for s, r in zip(a.seeds, rows):
            m = r[mode]
            print(f"{mode:5s} {s:4d} {m['recon_psnr_db']:9.2f} {m['sample_nn_psnr_db_median']:7.2f} "
                  f"{m['sample_coverage']:3d}/{r['n_images']:<2d} {str(m['z_mean']):>16s} {str(m['z_std']):>14s} "
                  f"{m['seconds']:5.0f}")
        result['summary'][mode] = {k: spread(rows, mode, k) for k in METRICS}
        for k in METRICS[:2]:
            v = result['summary'][mode][k]
            print(f"{mode:5s} {k}: min {v['min']:.2f} max {v['max']:.2f} spread {v['spread']:.2f}")
    abp.write_json(result, Path(a.out_dir) / 'seeds.json')
    print(f"wrote {Path(a.out_dir) / 'seeds.json'}")


if __name__ == '__main__':
    main()
