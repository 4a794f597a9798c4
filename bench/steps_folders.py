"""Warm start's one Langevin step per epoch against the default two, on the five generalisation folders over seeds.

    python bench/steps_folders.py        # seconds: reads the runs' JSON files, trains nothing

Reads the generalisation runs that the README's commands make (bench/generalize.py):
  seed 1, both modes at once:  OUT_DIR/generalize.json (defaults) and OUT_DIR/warm_steps_1/generalize.json
  seeds 2, 3, warm alone:      OUT_DIR/folders_seedN/generalize.json and OUT_DIR/warm_steps_1_seedN/generalize.json
and per folder and seed sets warm start's reconstruction PSNR with two steps against one and the guard's events.
Prints the table, then one step minus two steps per seed (mean over the folders) and how far those per-seed means
scatter (their standard deviation over the seeds: the yardstick their mean has to beat), how far each step count's
own runs move from seed to seed, the runs and events of the guard, and the warm seconds over the folders per seed.
Writes OUT_DIR/steps_folders.json. Seeds whose files are missing are left out.
"""
import json
import statistics
import sys
from pathlib import Path

from common import abp, parser

RUNS = {  # seed -> (two steps, one step): the generalize.json of each
    1: ('generalize.json', 'warm_steps_1/generalize.json'),
    **{s: (f'folders_seed{s}/generalize.json', f'warm_steps_1_seed{s}/generalize.json') for s in (2, 3)},
}


def warm_rows(path):
    """{folder: (warm PSNR, guard events, warm seconds)} of a generalize.json's default runs."""
    rows = json.loads(Path(path).read_text())['folders']
    return {r['folder']: (r['warm']['recon_psnr_db'], r['warm']['guard_events'], r['warm']['seconds'])
            for r in rows if r['note'] == 'defaults' and 'warm' in r}


def mean(values):
    return round(statistics.mean(values), 3)


def std(values):
    return round(statistics.stdev(values), 3) if len(values) > 1 else 0.0


def compare(out_dir):
    """The table and summary of steps_folders.json from the runs found in out_dir."""
    seeds = [s for s, files in RUNS.items() if all((Path(out_dir) / f).exists() for f in files)]
    if not seeds:
        sys.exit(f"steps_folders.py: error: no seed has both of its generalize.json files in {out_dir}; make them "
                 "with the README's bench/generalize.py commands (defaults and --langevin_num_steps 1 ...) first")
    two = {s: warm_rows(Path(out_dir) / RUNS[s][0]) for s in seeds}
    one = {s: warm_rows(Path(out_dir) / RUNS[s][1]) for s in seeds}
    folders = [f for f in two[seeds[0]] if all(f in two[s] and f in one[s] for s in seeds)]
    rows = []
    for f in folders:
        t, o = [two[s][f][0] for s in seeds], [one[s][f][0] for s in seeds]
        rows.append({'folder': f, 'two_steps': t, 'one_step': o, 'one_minus_two': [round(b - a, 3) for a, b in zip(t, o)],
                     'two_steps_guard': [two[s][f][1] for s in seeds], 'one_step_guard': [one[s][f][1] for s in seeds],
                     'two_steps_seed_std': std(t), 'one_step_seed_std': std(o)})
    diffs = [d for r in rows for d in r['one_minus_two']]
    lower, higher = [-d for d in diffs if d < 0], [d for d in diffs if d > 0]
    per_seed = [mean([r['one_minus_two'][i] for r in rows]) for i in range(len(seeds))]
    two_mean, one_mean = ([mean([r[k][i] for r in rows]) for i in range(len(seeds))] for k in ('two_steps', 'one_step'))
    two_sec, one_sec = ([sum(runs[s][f][2] for f in folders) for s in seeds] for runs in (two, one))
    summary = {
        'two_steps_mean': two_mean, 'one_step_mean': one_mean, 'one_minus_two_mean_per_seed': per_seed,
        'one_minus_two_mean': mean(diffs), 'one_minus_two_median': round(statistics.median(diffs), 3),
        'one_minus_two_std_over_seeds': std(per_seed),
        'two_steps_mean_std_over_seeds': std(two_mean), 'one_step_mean_std_over_seeds': std(one_mean),
        'one_step_lower': len(lower), 'one_step_higher': len(higher), 'runs': len(diffs),
        'two_steps_seed_std_mean': mean([r['two_steps_seed_std'] for r in rows]),
        'one_step_seed_std_mean': mean([r['one_step_seed_std'] for r in rows]),
        'lower_by': [round(min(lower), 3), round(max(lower), 3)] if lower else None,
        'higher_by': [round(min(higher), 3), round(max(higher), 3)] if higher else None,
        'two_steps_guard_events': sum(g for r in rows for g in r['two_steps_guard']),
        'one_step_guard_events': sum(g for r in rows for g in r['one_step_guard']),
        'two_steps_warm_seconds': [round(t, 1) for t in two_sec], 'one_step_warm_seconds': [round(o, 1) for o in one_sec],
        'two_over_one_seconds': [round(t / o, 2) for t, o in zip(two_sec, one_sec)],
        'two_steps_guard_runs': sum(g > 0 for r in rows for g in r['two_steps_guard']),
        'one_step_guard_runs': sum(g > 0 for r in rows for g in r['one_step_guard']),
    }
    return {'seeds': seeds, 'files': {s: RUNS[s] for s in seeds}, 'folders': rows, 'summary': summary}


def main():
    p = parser(__doc__, 'steps_folders.json', img_dir=False)
    a = p.parse_args()
    result = compare(a.out_dir)
    seeds, m = result['seeds'], result['summary']
    print(f"{'folder':9s} " + ' '.join(f"{'seed ' + str(s) + ' two/one':>18s}" for s in seeds) + f" {'two-step std':>12s}")
    for r in result['folders']:
        print(f"{r['folder']:9s} " + ' '.join(f"{a:8.2f}/{b:<8.2f} " for a, b in zip(r['two_steps'], r['one_step']))
              + f" {r['two_steps_seed_std']:12.2f}")
    print(f"one minus two, mean over the folders, per seed: {m['one_minus_two_mean_per_seed']} "
          f"(all runs: mean {m['one_minus_two_mean']:+.2f} dB, median {m['one_minus_two_median']:+.2f} dB; lower in "
          f"{m['one_step_lower']} of {m['runs']})")
    print(f"the per-seed means of one minus two scatter by {m['one_minus_two_std_over_seeds']:.2f} dB (std over the seeds)")
    print(f"the five-folder mean moves from seed to seed by {m['two_steps_mean_std_over_seeds']:.2f} dB with two steps, "
          f"{m['one_step_mean_std_over_seeds']:.2f} dB with one (std over the seeds); a folder's run by "
          f"{m['two_steps_seed_std_mean']:.2f} and {m['one_step_seed_std_mean']:.2f} dB (mean over the folders)")
    print(f"runs with a guard event: two steps {m['two_steps_guard_runs']}, one step {m['one_step_guard_runs']} "
          f"(events {m['two_steps_guard_events']} and {m['one_step_guard_events']})")
    print(f"warm seconds over the folders per seed: two steps {m['two_steps_warm_seconds']}, one step "
          f"{m['one_step_warm_seconds']}: {m['two_over_one_seconds']} times faster with one")
    abp.write_json(result, Path(a.out_dir) / 'steps_folders.json')
    print(f"wrote {Path(a.out_dir) / 'steps_folders.json'}")


if __name__ == '__main__':
    main()
