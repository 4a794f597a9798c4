"""The course skeleton's cold-start chain (one prior draw, 120 steps) against ours, at equal epochs and wall time.

    python bench/handout_cold.py       # about 40 minutes a seed on 2 cores

Cold-start runs of `python abp.py --start cold` for each of --seeds, cached like every study (seed 1's in
OUT_DIR/handout_cold/, seed S's in OUT_DIR/handout_cold/seedS/):
  handout        '1 draw + 120 steps': the skeleton's cold-start chain, one prior draw per image, then its 120
                 Langevin steps of s = 0.05 (eq. 6, no step cap), for --epochs epochs; every other flag at our
                 defaults (noise s e, not the skeleton's 4 s e; our sigma, learning rate and generator)
  ours           our cold start (the defaults: SIR over 32 Sobol proposals, one capped step), --epochs epochs
The runs take --threads torch threads (1, as bench/cold_study.py's committed runs, made with --threads 1: its
seed-S default row is then the same run as ours here); the timing below takes them all.
Then the seconds per epoch of each, timed back to back in this process (bench.seconds_per_epoch: the runs' own
timings may come from a busy machine), and from their ratio the epochs our cold start runs in the handout run's time:
  ours_same_time our cold start for that many epochs, at most --n_epochs' default (2000); beyond that, the
                 default run's cold start (OUT_DIR/metrics.json) is the row, finished in less time
Writes OUT_DIR/handout_cold/handout_cold.json: per row its flags, and seed 1's epochs, recon PSNR, sample NN-PSNR
and coverage, then every seed's and their mean and std; and the timing (--time_epochs 0 keeps the timing that file
already holds). And OUT_DIR/handout_cold/recon.jpg: the default run's compare_recon.jpg with two rows more, seed 1's
handout run and ours at --epochs epochs (from the checkpoints, which git does not keep: a missing one is trained).
"""
import json
from pathlib import Path

import torch

import bench
from common import (DEFAULTS, abp, default_models, finished, load_run, over_seeds, parser, require_images, run_cached,
                    short_run)

HANDOUT = ['--cold_proposals', '0', '--cold_langevin_num_steps', '120', '--cold_langevin_step_size', '0.05',
           '--langevin_step_cap', '0']
LABELS = {'handout': "1 draw + 120 steps: the skeleton's cold-start chain (s=0.05, no cap), our other defaults",
          'ours': 'ours: SIR over 32 Sobol proposals, 1 capped step',
          'ours_same_time': 'ours, for the same wall time as the handout run'}
KEYS = ('epochs', 'seconds', 'seconds_per_epoch', 'recon_psnr_db', 'sample_nn_psnr_db_median', 'sample_coverage',
        'guard_events')


def seed_dir(a, seed):
    """Where a seed's runs go: seed 1's (Figure 1's) in OUT_DIR/handout_cold/, seed S's in .../seedS/."""
    base = Path(a.out_dir) / 'handout_cold'
    return base if seed == 1 else base / f'seed{seed}'


def run(a, key, epochs, flags, seed=1):
    """One cold-start run's metrics (KEYS); seed 1's keeps its checkpoint, for Figure 1."""
    argv = ['--img_dir', a.img_dir, '--out_dir', str(seed_dir(a, seed) / key), '--start', 'cold',
            '--seed', str(seed), *short_run(epochs), *flags]
    m = finished(run_cached(argv, f'seed {seed} {key}', need_checkpoints=seed == 1), 'handout_cold.py', key)['cold']
    print(f"seed {seed} {key:15s} {epochs:5d} epochs  recon {m['recon_psnr_db']:.2f} dB  "
          f"NN {m['sample_nn_psnr_db_median']:.2f}  coverage {m['sample_coverage']}")
    return {k: m[k] for k in KEYS}


def row(a, key, flags):
    """A row of the table: seed 1's metrics, then every seed's and their mean and std (over_seeds)."""
    runs = [run(a, key, a.epochs, flags, seed) for seed in a.seeds]
    return {'key': key, 'label': LABELS[key], 'flags': ' '.join(flags), **runs[0], 'seeds': a.seeds,
            'over_seeds': over_seeds(runs), 'runs': runs}


def figure_recon(a, path):
    """The default run's reconstruction rows (abp.recon_rows), then seed 1's handout run and ours at --epochs."""
    models = default_models(a.img_dir, a.out_dir, 1, 'handout_cold.py')
    args = models['warm'][0]
    rows = abp.recon_rows({m: {'state': state} for m, (_, state) in models.items()}, abp.load_data(args), args)
    for key, label in (('handout', 'cold, 1 draw\n+ 120 steps'), ('ours', 'cold, SIR\n+ 1 step')):
        state = load_run(seed_dir(a, 1) / key / 'cold')[1]
        rows.append((f'{label} @ {a.epochs}', state.snapshots[a.epochs]))
    abp.plot_recon_comparison(rows, path)


def main():
    p = parser(__doc__, 'handout_cold/')
    p.add_argument('--epochs', type=int, default=500, help='epochs of the handout run and of ours (default: 500)')
    p.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3], help='random seeds, 1 first (default: 1 2 3)')
    p.add_argument('--threads', type=int, default=1, help='torch threads of the runs (default: 1, as cold_study.py\'s committed runs)')
    p.add_argument('--time_epochs', type=int, default=3,
                   help="epochs timed for the handout's cold start, ours over 10x more; 0 keeps the timing "
                        "handout_cold.json holds (default: 3)")
    a = p.parse_args()
    require_images(a.img_dir, 'handout_cold.py')
    if a.seeds[0] != 1:
        p.error('--seeds must begin with 1: seed 1 is the default run of Figure 1')
    path = Path(a.out_dir) / 'handout_cold' / 'handout_cold.json'
    all_threads = torch.get_num_threads()
    torch.set_num_threads(a.threads)
    rows = [row(a, 'handout', HANDOUT), row(a, 'ours', [])]
    torch.set_num_threads(all_threads)
    if a.time_epochs > 0:
        spe = {k: bench.seconds_per_epoch(bench.config(a.img_dir, flags, 'cold'), n)
               for k, flags, n in (('handout', HANDOUT, a.time_epochs), ('ours', [], 10 * a.time_epochs))}
    else:
        spe = json.loads(path.read_text())['seconds_per_epoch']
    same, full = round(a.epochs * spe['handout'] / spe['ours']), DEFAULTS['n_epochs']
    print(f"seconds/epoch: handout {spe['handout']:.3f}, ours {spe['ours']:.4f}; in the time of {a.epochs} handout "
          f"epochs ours runs {same}")
    if same < full:
        rows.append({'key': 'ours_same_time', 'label': LABELS['ours_same_time'], 'flags': '',
                     **run(a, 'ours_same_time', same, [])})
    else:
        m = json.loads((Path(a.out_dir) / 'metrics.json').read_text())['cold']
        rows.append({'key': 'ours_same_time', 'label': f'ours, the default run ({full} epochs, less time)', 'flags': '',
                     **{k: m[k] for k in KEYS}})
    figure_recon(a, path.with_name('recon.jpg'))
    result = {'seeds': a.seeds, 'seconds_per_epoch': {k: round(v, 5) for k, v in spe.items()},
              'speedup_per_epoch': round(spe['handout'] / spe['ours'], 2), 'epochs_in_handout_time': same, 'runs': rows}
    abp.write_json(result, path)
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
