"""What the benchmarks share: abp imported from the repository root, the one cache-or-run helper
(run_cached), the flags of a shortened run, the scripts' common options and finished runs' checkpoints.

Every benchmark is a list of flag sets for abp.py: run_cached(argv) trains one with abp.main(argv), or
re-uses the result a run with exactly the same resolved flags left in its folder.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import abp  # noqa: E402

NOT_IN_KEY = ('out_dir', 'threads', 'resume', 'parallel')   # where a run goes and how fast, not what it computes


def flags_key(flags):
    """The flags (a dict like vars(args)) that decide a run's result: all but NOT_IN_KEY, as JSON stores them.
    A run recorded before --cold_beta1 existed trained both modes with --beta1, and is keyed so."""
    flags = {'cold_beta1': flags['beta1'], **flags} if 'beta1' in flags else flags
    return json.loads(json.dumps({k: v for k, v in sorted(flags.items()) if k not in NOT_IN_KEY}))


# A folder study (spikes.py, sharpness.py) keeps its runs as rows of its JSON; a row is re-used only under the
# abp.py defaults it was made with. Rows recorded before they stored them were made with today's defaults, whose
# warm start takes two Langevin steps of s <= 0.03 per epoch: a change of those re-runs them.
ROWS_WITHOUT_DEFAULTS = {'langevin_num_steps': 2, 'langevin_step_size': 0.03}


def study_defaults(row=None):
    """The abp.py defaults (flags_key, without img_dir) a folder-study row was made with, or, for row None, the
    ones a new row is made with today."""
    today = {k: v for k, v in abp.flag_defaults().items() if k != 'img_dir'}
    if row is None:
        return flags_key(today)
    return row['defaults'] if 'defaults' in row else flags_key({**today, **ROWS_WITHOUT_DEFAULTS})


def gave_up_path(out_dir, start):
    """Where run_cached records a run the guard gave up on (abp.main writes no summary then)."""
    return abp.summary_path(out_dir, start).with_name('gave_up.json')


def checkpoints(out_dir, modes):
    """The modes among `modes` whose OUT_DIR/<mode>/checkpoint.pt exists."""
    return [m for m in modes if (Path(out_dir) / m / 'checkpoint.pt').exists()]


def cached(out_dir, args, need_checkpoints=False):
    """The result a run with exactly args' flags (flags_key) left in out_dir: its summary, or its gave-up
    record; with need_checkpoints, only if the checkpoints it kept are still there. None if there is none."""
    modes = abp.start_modes(args.start)
    for path in (abp.summary_path(out_dir, args.start), gave_up_path(out_dir, args.start)):
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        kept = result.get('checkpoints', modes) if need_checkpoints else []
        if flags_key(result.get('args', {})) == flags_key(vars(args)) and checkpoints(out_dir, kept) == kept:
            return result
    return None


def run_cached(argv, label=None, need_checkpoints=False, also=()):
    """abp.py with the flags argv (abp.main(argv)), unless a run with exactly the same resolved flags (every
    flag in vars(abp.parse_args(argv)) but out_dir, threads and resume, defaults included: a changed default
    re-runs it) already finished in its --out_dir, or in one of the folders `also`, and, with need_checkpoints,
    still holds its modes' checkpoint.pt (git does not keep them); then that run's result is re-used.

    Returns the run's summary (at abp.summary_path: each mode's metrics, 'pca', 'n_images', 'total_seconds',
    'args'), or, when the guard gave up (abp.main exits after abp.Diverged), {'diverged': why, 'stopped':
    abp.py's last word, 'checkpoints': the modes that kept one, 'args'}, which is recorded and re-used too.
    Any other exit of abp.py (bad flags or folder, Ctrl-C) goes on up."""
    args = abp.parse_args(argv)
    label = label or args.out_dir
    for folder in (args.out_dir, *also):
        result = cached(folder, args, need_checkpoints)
        if result is not None:
            print(f'{label}: cached ({abp.summary_path(folder, args.start).parent})')
            return result
    modes, record = abp.start_modes(args.start), gave_up_path(args.out_dir, args.start)
    if not args.resume:              # what is left after this run is this run's: no other run's checkpoints
        for m in checkpoints(args.out_dir, modes):
            (Path(args.out_dir) / m / 'checkpoint.pt').unlink()
    record.unlink(missing_ok=True)
    try:
        abp.main(argv)
    except SystemExit as err:
        if not isinstance(err.__context__, abp.Diverged):
            raise
        result = {'diverged': str(err.__context__), 'stopped': str(err.code),
                  'checkpoints': checkpoints(args.out_dir, modes), 'args': vars(args)}
        abp.write_json(result, record)
        return result
    return json.loads(abp.summary_path(args.out_dir, args.start).read_text())


def mode_metrics(result, mode):
    """One mode's metrics from run_cached's result, or {'diverged': why} if the guard gave up."""
    return {'diverged': result['diverged']} if 'diverged' in result else result[mode]


def finished(result, prog, what):
    """run_cached's result, or, if the guard gave up on that run, exit with prog's error line naming `what`."""
    if 'diverged' in result:
        sys.exit(f"{prog}: {what}: {result['stopped']}")
    return result


def short_run(epochs):
    """Flags that shorten a run to `epochs` epochs, its figures, loss-curve points and log lines scaled to it."""
    return ['--n_epochs', str(epochs), '--n_plot', str(epochs), '--n_stats', str(max(1, epochs // 20)),
            '--n_log', str(max(1, epochs // 5))]


def parser(doc, writes, img_dir=True):
    """A benchmark's argument parser: its docstring's first line, --img_dir (unless not) and --out_dir."""
    p = argparse.ArgumentParser(description=doc.split('\n')[0])
    if img_dir:
        p.add_argument('--img_dir', default='data', help='training images (default: data)')
    p.add_argument('--out_dir', default='output', help=f'where {writes} go (default: output)')
    return p


def folder_study_parser(doc, writes, variants, epochs, seeds):
    """parser() for a study of flag variants on one bench/make_folders.py folder, guard off: --data_dir, --folder,
    --epochs, --seeds, --variants (the keys of `variants`, each (key, flags, ...)) and --threads."""
    p = parser(doc, writes, img_dir=False)
    p.add_argument('--data_dir', default='/tmp/abp_folders', help='where the folders are made (default: /tmp/abp_folders)')
    p.add_argument('--folder', default='faces', help='which of them (default: faces)')
    p.add_argument('--epochs', type=int, default=epochs, help=f'epochs per run (default: {epochs})')
    p.add_argument('--seeds', type=int, nargs='+', default=seeds, help=f"(default: {' '.join(map(str, seeds))})")
    keys = [v[0] for v in variants]
    p.add_argument('--variants', nargs='+', default=keys, choices=keys, help='(default: all)')
    p.add_argument('--threads', type=int, default=0, help='CPU threads for torch, 0 = all (default: 0)')
    return p


def folder_study_setup(a, name):
    """After folder_study_parser's parse_args: the threads set, the folder made (or found); returns (the folder,
    OUT_DIR/<name>.json, the runs it already holds)."""
    from make_folders import make_folders
    if a.threads:
        torch.set_num_threads(a.threads)
    folder = make_folders(a.data_dir, kinds=(a.folder,))[a.folder]
    path = Path(a.out_dir) / f'{name}.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    return folder, path, json.loads(path.read_text())['runs'] if path.exists() else []


def study_parser(doc, writes, epochs, per):
    """parser() with --epochs (`epochs` per `per`), --seeds and --threads: a study of shortened runs."""
    p = parser(doc, writes)
    p.add_argument('--epochs', type=int, default=epochs, help=f'epochs per {per} (default: {epochs})')
    p.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3],
                   help=f'random seeds: each {per} runs once per seed (default: 1 2 3)')
    p.add_argument('--threads', type=int, default=0, help='CPU threads for torch, 0 = all (default: 0)')
    return p


def study_argv(a, out_dir, mode, flags, seed):
    """One study run's flags: a's images, epochs (short_run) and threads, `seed`, start `mode`, then its own."""
    return ['--img_dir', str(a.img_dir), '--out_dir', str(out_dir), '--start', mode, *short_run(a.epochs),
            '--seed', str(seed), '--threads', str(a.threads), *flags]


SEED_METRICS = ('recon_psnr_db', 'sample_nn_psnr_db_median', 'sample_coverage', 'seconds_per_epoch')


def over_seeds(runs):
    """One study row's runs (a mode's metrics per seed, or {'diverged': why}): per metric of SEED_METRICS the
    mean and sample std over the finished runs, the number of runs that diverged and the guard's events of
    each run (its recoveries; a diverged run counts as one more). Quote a difference between two rows as an
    effect only where it is larger than their stds."""
    done = [r for r in runs if 'diverged' not in r]
    out = {'n_runs': len(runs), 'n_diverged': len(runs) - len(done),
           'guard_events': [len(r.get('guard_events', [])) if 'diverged' not in r else 1 for r in runs]}
    for k in SEED_METRICS:
        values = [r[k] for r in done]
        out[k] = round(statistics.mean(values), 4) if values else None
        out[k + '_std'] = round(statistics.stdev(values), 4) if len(values) > 1 else None
    for k in ('z_std', 'first_layer_norm'):            # per-dimension means for z_std
        values = [r[k] for r in done if k in r]
        out[k] = None if not values else [round(statistics.mean(v), 4) for v in zip(*values)] \
            if isinstance(values[0], list) else round(statistics.mean(values), 3)
    return out


def require_images(img_dir, prog):
    """Exit with prog's error line, before any work, unless img_dir holds images."""
    try:
        abp.list_images(img_dir)
    except abp.UserError as e:
        sys.exit(f'{prog}: error: {e}')


def read_checkpoint(mode_dir):
    """A mode's checkpoint.pt (written by abp.save_state), on the CPU."""
    return torch.load(Path(mode_dir) / 'checkpoint.pt', weights_only=False, map_location='cpu')


def load_generator(mode_dir):
    """A finished mode's checkpoint, its flags (abp.with_defaults) and its generator: (ck, args, model)."""
    ck = read_checkpoint(mode_dir)
    args = abp.with_defaults(argparse.Namespace(**ck['args']))
    model = abp.Model(args)
    model.load_state_dict(ck['generator'])
    return ck, args, model
