"""Seeds: the default run with seeds 1, 2, 3, and the spread of every metric across them.

    python bench/seeds.py --img_dir ../shared/data/lion_tiger        # about 25 minutes on 2 cores

Each seed runs abp.py with the default flags (both start modes) into OUT_DIR/seeds/seedN/,
re-used while every flag, defaults included, is unchanged; a default run with the same flags already in OUT_DIR
(seed 1) or in OUT_DIR/learned/seedN/run/ (bench/learned.py's, seeds 2 and 3) is re-used too, so that the two
benchmarks measure the same runs. Any other flag is passed on to abp.py. Prints per mode the reconstruction PSNR, sample
NN-PSNR and coverage of each seed, their mean, std and spread, and the guard's events per seed; writes
OUT_DIR/seeds/seeds.json (also each metric's min and max, and the seconds).
"""
import statistics
from pathlib import Path

from common import abp, finished, parser, run_cached

METRICS = ('recon_psnr_db', 'sample_nn_psnr_db_median', 'sample_coverage', 'seconds')


def spread(rows, mode, key):
    """A metric over the seeds: its values, min, max, spread (max - min), mean and sample std."""
    values = [r[mode][key] for r in rows]
    return {'min': min(values), 'max': max(values), 'spread': round(max(values) - min(values), 3), 'values': values,
            'mean': round(float(statistics.mean(values)), 3),
            'std': round(statistics.stdev(values), 3) if len(values) > 1 else 0.0}


def main():
    p = parser(__doc__, 'seeds/')
    p.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3], help='seeds to run (default: 1 2 3)')
    a, extra = p.parse_known_args()                   # any other flag is passed on to abp.py
    rows = []
    for s in a.seeds:                                # a default run already in OUT_DIR or learned.py's is re-used
        out = Path(a.out_dir) / 'seeds' / f'seed{s}'
        argv = ['--img_dir', a.img_dir, '--out_dir', str(out), '--seed', str(s), *extra]
        also = [a.out_dir, Path(a.out_dir) / 'learned' / f'seed{s}' / 'run']
        rows.append(finished(run_cached(argv, f'seed {s}', also=also), 'seeds.py', f'seed {s}'))
    result = {'seeds': a.seeds, 'flags': extra, 'runs': [{m: r[m] for m in ('warm', 'cold')} for r in rows],
              'total_seconds': [r['total_seconds'] for r in rows], 'summary': {}}
    for mode in ('warm', 'cold'):
        summary = result['summary'][mode] = {k: spread(rows, mode, k) for k in METRICS}
        summary['guard_events'] = [len(r[mode]['guard_events']) for r in rows]
        for k in METRICS[:3]:
            v = summary[k]
            print(f"{mode:5s} {k:25s} {v['values']}: {v['mean']:.2f} +- {v['std']:.2f} (spread {v['spread']:.2f})")
        print(f"{mode:5s} guard events per seed: {summary['guard_events']}")
    abp.write_json(result, Path(a.out_dir) / 'seeds' / 'seeds.json')
    print(f"wrote {Path(a.out_dir) / 'seeds' / 'seeds.json'}")


if __name__ == '__main__':
    main()
