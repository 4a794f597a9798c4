"""The handout's cold start against ours, at equal epochs and at equal wall time.

    python bench/handout_cold.py --img_dir ../shared/data/lion_tiger     # about 45 minutes on 2 cores

Cold-start runs of `python abp.py --start cold`, one seed, cached like every study (OUT_DIR/handout_cold/):
  handout        the handout's cold start: one prior draw per image, then 120 Langevin steps of s = 0.05
                 (eq. 6, noise s e, no step cap), for --epochs epochs; every other flag at our defaults
  ours           our cold start (the defaults: SIR over 32 Sobol proposals, one capped step), --epochs epochs
Then the seconds per epoch of each, timed back to back in this process (bench.seconds_per_epoch: the runs' own
timings may come from a busy machine), and from their ratio the epochs our cold start runs in the handout run's time:
  ours_same_time our cold start for that many epochs, at most --n_epochs' default (2000); beyond that, the
                 default run's cold start (OUT_DIR/metrics.json) is the row, finished in less time
Writes OUT_DIR/handout_cold/handout_cold.json: per run its flags, epochs, recon PSNR, sample NN-PSNR, coverage,
and the timing (--time_epochs 0 keeps the timing that file already holds); and OUT_DIR/handout_cold/recon.jpg: the
default run's compare_recon.jpg with two rows more, the handout run's and ours at --epochs epochs (from the runs'
checkpoints, which git does not keep: where one is missing, the run is trained again).
"""
import json
from pathlib import Path

import bench
from common import DEFAULTS, abp, default_models, finished, load_run, parser, require_images, run_cached, short_run

HANDOUT = ['--cold_proposals', '0', '--cold_langevin_num_steps', '120', '--cold_langevin_step_size', '0.05',
           '--langevin_step_cap', '0']
LABELS = {'handout': "handout's cold start: 1 prior draw, 120 steps of s=0.05, no cap",
          'ours': 'ours: SIR over 32 Sobol proposals, 1 capped step',
          'ours_same_time': 'ours, for the same wall time as the handout run'}
KEYS = ('epochs', 'seconds', 'seconds_per_epoch', 'recon_psnr_db', 'sample_nn_psnr_db_median', 'sample_coverage',
        'guard_events')


def run(a, key, epochs, flags):
    argv = ['--img_dir', a.img_dir, '--out_dir', str(Path(a.out_dir) / 'handout_cold' / key), '--start', 'cold',
            '--seed', str(a.seed), *short_run(epochs), *flags]
    m = finished(run_cached(argv, key, need_checkpoints=True), 'handout_cold.py', key)['cold']
    print(f"{key:15s} {epochs:5d} epochs  recon {m['recon_psnr_db']:.2f} dB  "
          f"NN {m['sample_nn_psnr_db_median']:.2f}  coverage {m['sample_coverage']}")
    return {'key': key, 'label': LABELS[key], 'flags': ' '.join(flags), **{k: m[k] for k in KEYS}}


def figure_recon(a, path):
    """The default run's reconstruction rows (abp.recon_rows), then the handout run's and ours at --epochs."""
    models = default_models(a.img_dir, a.out_dir, a.seed, 'handout_cold.py')
    args = models['warm'][0]
    rows = abp.recon_rows({m: {'state': state} for m, (_, state) in models.items()}, abp.load_data(args), args)
    for key, label in (('handout', "handout's cold"), ('ours', 'our cold')):
        state = load_run(Path(a.out_dir) / 'handout_cold' / key / 'cold')[1]
        rows.append((f'{label} @ {a.epochs}', state.snapshots[a.epochs]))
    abp.plot_recon_comparison(rows, path)


def main():
    p = parser(__doc__, 'handout_cold/')
    p.add_argument('--epochs', type=int, default=500, help='epochs of the handout run and of ours (default: 500)')
    p.add_argument('--seed', type=int, default=1, help='random seed (default: 1)')
    p.add_argument('--time_epochs', type=int, default=3,
                   help="epochs timed for the handout's cold start, ours over 10x more; 0 keeps the timing "
                        "handout_cold.json holds (default: 3)")
    a = p.parse_args()
    require_images(a.img_dir, 'handout_cold.py')
    path = Path(a.out_dir) / 'handout_cold' / 'handout_cold.json'
    rows = [run(a, 'handout', a.epochs, HANDOUT), run(a, 'ours', a.epochs, [])]
    if a.time_epochs > 0:
        spe = {k: bench.seconds_per_epoch(bench.config(a.img_dir, flags, 'cold'), n)
               for k, flags, n in (('handout', HANDOUT, a.time_epochs), ('ours', [], 10 * a.time_epochs))}
    else:
        spe = json.loads(path.read_text())['seconds_per_epoch']
    same, full = round(a.epochs * spe['handout'] / spe['ours']), DEFAULTS['n_epochs']
    print(f"seconds/epoch: handout {spe['handout']:.3f}, ours {spe['ours']:.4f}; in the time of {a.epochs} handout "
          f"epochs ours runs {same}")
    if same < full:
        rows.append(run(a, 'ours_same_time', same, []))
    else:
        m = json.loads((Path(a.out_dir) / 'metrics.json').read_text())['cold']
        rows.append({'key': 'ours_same_time', 'label': f'ours, the default run ({full} epochs, less time)', 'flags': '',
                     **{k: m[k] for k in KEYS}})
    figure_recon(a, path.with_name('recon.jpg'))
    result = {'seed': a.seed, 'seconds_per_epoch': {k: round(v, 5) for k, v in spe.items()},
              'speedup_per_epoch': round(spe['handout'] / spe['ours'], 2), 'epochs_in_handout_time': same, 'runs': rows}
    abp.write_json(result, path)
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
