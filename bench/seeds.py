"""Seeds: the default run with seeds 1, 2, 3, and the spread of every metric across them.

    python bench/seeds.py --img_dir ../shared/data/lion_tiger        # about 20 minutes on 2 cores

Each seed runs `python abp.py` with the default flags (both start modes) into OUT_DIR/seeds/seedN/,
re-used while every resolved flag, defaults included, is unchanged; a default run with the same flags
already in OUT_DIR (seed 1) is re-used too. Any other flag is passed on to abp.py. Prints per mode and
seed the reconstruction PSNR, sample NN-PSNR, coverage, z mean/std and seconds, then each metric's min,
max, spread, mean and std, and the guard's events per seed; writes OUT_DIR/seeds.json.
`--parallel` (passed on, like any abp.py flag) trains each seed's two modes at once.
"""
import statistics
from pathlib import Path

from common import abp, finished, parser, run_cached

METRICS = ('recon_psnr_db', 'sample_nn_psnr_db_median', 'sample_coverage', 'seconds')


def spread(rows, mode, key):
    """A metric over the seeds: its values, min, max, spread (max - min), mean and sample std."""
    values = [r[mode][key] for r in rows]
    return {'min': min(values), 'max': max(values), 'spread': round(max(values) - min(values), 3), 'values': values,
            'mean': round(statistics.mean(values), 3),
            'std': round(statistics.stdev(values), 3) if len(values) > 1 else 0.0}


def main():
    p = parser(__doc__, 'seeds/ and seeds.json')
    p.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3], help='seeds to run (default: 1 2 3)')
    a, extra = p.parse_known_args()                   # any other flag is passed on to abp.py
    rows = []
    for s in a.seeds:                                # a default run of seed 1 already in OUT_DIR is re-used too
        out = Path(a.out_dir) / 'seeds' / f'seed{s}'
        argv = ['--img_dir', a.img_dir, '--out_dir', str(out), '--seed', str(s), *extra]
        rows.append(finished(run_cached(argv, f'seed {s}', also=[a.out_dir]), 'seeds.py', f'seed {s}'))
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
            print(f"{mode:5s} {k}: {v['mean']:.2f} +- {v['std']:.2f} (min {v['min']:.2f} max {v['max']:.2f} "
                  f"spread {v['spread']:.2f})")
        events = [len(r[mode]['guard_events']) for r in rows]
        result['summary'][mode]['guard_events'] = events
        print(f"{mode:5s} guard events per seed: {events}")
    abp.write_json(result, Path(a.out_dir) / 'seeds.json')
    print(f"wrote {Path(a.out_dir) / 'seeds.json'}")


if __name__ == '__main__':
    main()
