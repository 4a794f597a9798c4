"""What the benchmarks share: abp imported from the repository root, the one cache-or-run helper (run_cached),
the studies' runner and statistics (study, over_seeds), and finished runs rebuilt from their checkpoints.

Every benchmark is a list of flag sets for abp.py: run_cached(argv) trains one with abp.main(argv), or re-uses the
result a run with the same flags (flags_key) left in its folder.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import abp  # noqa: E402

DEFAULTS = vars(abp.build_parser().parse_args([]))
NOT_IN_KEY = ('out_dir', 'resume')            # where a run goes, not what it computes
# flags of an older abp.py, with the value under which it did what today's abp.py does
REMOVED = {'gen_width': 16, 'gen_max_ch': 256, 'batchnorm': False, 'cold_sobol': True, 'cold_chains': 4,
           'curvature_every': abp.CURVATURE_EVERY, 'guard': True, 'z_whiten': None}


def flags_key(flags, n_images=None):
    """The flags (a dict like vars(args)) that decide a run's result: all but NOT_IN_KEY, as JSON stores them; None
    where no flag of today's abp.py reproduces the run. An older abp.py's record is translated: a removed flag goes
    if it held REMOVED's value (--cold_beta1 if it equalled --beta1; --threads and --parallel always), --cold_init
    sir goes and prior becomes --cold_proposals 0 (fixed, annealed and chains match nothing), a missing batch_size
    is the default. Its cold start drew exactly --cold_proposals; today's draws at least two per image (rounded up
    to a power of two), so a record with fewer for its n_images matches nothing."""
    f = {k: v for k, v in flags.items() if k not in ('threads', 'parallel')}
    if f.pop('cold_beta1', f.get('beta1')) != f.get('beta1') or any(f.pop(k, v) != v for k, v in REMOVED.items()):
        return None
    f.setdefault('batch_size', DEFAULTS['batch_size'])
    if 'img_dir' in f:                  # ../shared/data/x and /work/shared/data/x are one folder
        f['img_dir'] = str(Path(f['img_dir']).resolve())
    init = f.pop('cold_init', None)
    if init == 'prior':
        f['cold_proposals'] = 0
    elif init not in (None, 'sir'):
        return None
    elif init == 'sir' and f.get('start') != 'warm':
        cold = abp.chain_for(argparse.Namespace(**{**DEFAULTS, **f}), 'cold')
        if n_images is None or cold.n_proposals(min(n_images, f['batch_size']), n_images) != cold.proposals:
            return None
    return json.loads(json.dumps({k: v for k, v in sorted(f.items()) if k not in NOT_IN_KEY}))


def summary_path(out_dir, start):
    """Where abp.main writes a run's summary: OUT_DIR/metrics.json for --start both, else OUT_DIR/<mode>/summary.json."""
    return Path(out_dir) / ('metrics.json' if start == 'both' else f'{start}/summary.json')


def gave_up_path(out_dir, start):
    """Where run_cached records a run the guard gave up on (abp.main writes no summary then)."""
    return summary_path(out_dir, start).with_name('gave_up.json')


def checkpoints(out_dir, modes):
    """The modes among `modes` whose OUT_DIR/<mode>/checkpoint.pt exists."""
    return [m for m in modes if (Path(out_dir) / m / 'checkpoint.pt').exists()]


def stale(result):
    """Whether the guard acted on a run under another rule than today's abp.GUARD_RULE: today's code would have
    trained it otherwise. (A run it never acted on is today's run: the rules only differ in when they act.)"""
    acted = 'diverged' in result or any(result.get(m, {}).get('guard_events') for m in ('warm', 'cold'))
    return acted and result.get('guard_rule') != abp.GUARD_RULE


def cached(out_dir, args, need_checkpoints=False):
    """The result a run with args' flags (flags_key) left in out_dir: its summary or its gave-up record, unless
    stale; with need_checkpoints, only if the checkpoints it kept are still there. None if there is none."""
    modes = ['warm', 'cold'] if args.start == 'both' else [args.start]
    for path in (summary_path(out_dir, args.start), gave_up_path(out_dir, args.start)):
        if path.exists():
            result = json.loads(path.read_text())
            kept = result.get('checkpoints', modes) if need_checkpoints else []
            if flags_key(result.get('args', {}), result.get('n_images')) == flags_key(vars(args)) \
                    and checkpoints(out_dir, kept) == kept and not stale(result):
                return result
    return None


def run_cached(argv, label=None, need_checkpoints=False, also=()):
    """abp.main(argv), unless a run with the same flags (flags_key, defaults included) finished in its --out_dir or
    in one of the folders `also` (and, with need_checkpoints, still holds its checkpoints, which git does not keep).
    Returns the run's summary (abp.main's), or, when the guard gave up, a record re-used as well: {'diverged',
    'stopped': abp.py's last word, 'checkpoints': modes that kept one, 'kept': per such mode its last PSNR point,
    guard recoveries and seconds, 'n_images', 'args'}. Any other exit of abp.py (bad flags, Ctrl-C) goes on up."""
    args = abp.parse_args(argv)
    for folder in (args.out_dir, *also):
        result = cached(folder, args, need_checkpoints)
        if result is not None:
            print(f'{label or args.out_dir}: cached ({summary_path(folder, args.start).parent})')
            return result
    modes, record = (['warm', 'cold'] if args.start == 'both' else [args.start]), gave_up_path(args.out_dir, args.start)
    if not args.resume:              # what is left after this run is this run's: no other run's checkpoints
        for m in checkpoints(args.out_dir, modes):
            (Path(args.out_dir) / m / 'checkpoint.pt').unlink()
    record.unlink(missing_ok=True)
    try:
        abp.main(argv)
    except SystemExit as err:
        if not isinstance(err.__context__, abp.Diverged):
            raise
        kept = {m: abp.read_checkpoint(Path(args.out_dir) / m / 'checkpoint.pt')
                for m in checkpoints(args.out_dir, modes)}
        result = {'diverged': str(err.__context__), 'stopped': str(err.code), 'checkpoints': list(kept),
                  'kept': {m: {'recon_psnr_db': round(ck['stats']['psnr_db'][-1], 3) if ck['stats']['psnr_db'] else None,
                               'guard_events': len(ck['events']), 'seconds': round(ck['seconds'], 2)}
                           for m, ck in kept.items()},
                  'n_images': next((len(ck['z']) for ck in kept.values()), None), 'args': vars(args),
                  'guard_rule': abp.GUARD_RULE}
        abp.write_json(result, record)
        return result
    return json.loads(summary_path(args.out_dir, args.start).read_text())


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


def require_images(img_dir, prog):
    """Exit with prog's error line, before any work, unless img_dir holds images."""
    try:
        if not abp.list_images(img_dir):
            raise abp.UserError(f'no images in {img_dir}')
    except abp.UserError as e:
        sys.exit(f'{prog}: error: {e}')


SEED_METRICS = ('recon_psnr_db', 'sample_nn_psnr_db_median', 'sample_coverage', 'seconds_per_epoch')


def over_seeds(runs):
    """One study row's runs (a mode's metrics per seed, or {'diverged': why}): per metric the mean and sample std
    over the finished runs, the runs that diverged and each run's guard recoveries (one more for a diverged run)."""
    done = [r for r in runs if 'diverged' not in r]
    out = {'n_runs': len(runs), 'n_diverged': len(runs) - len(done),
           'guard_events': [len(r.get('guard_events', [])) if 'diverged' not in r else 1 for r in runs]}
    for k in SEED_METRICS:
        values = [r[k] for r in done]
        out[k] = round(statistics.mean(values), 4) if values else None
        out[k + '_std'] = round(statistics.stdev(values), 4) if len(values) > 1 else None
    z_stds = [r['z_std'] for r in done if 'z_std' in r]           # per dimension
    out['z_std'] = [round(statistics.mean(v), 4) for v in zip(*z_stds)] if z_stds else None
    out['z_std_std'] = [round(statistics.stdev(v), 4) for v in zip(*z_stds)] if len(z_stds) > 1 else None
    norms = [r['first_layer_norm'] for r in done if 'first_layer_norm' in r]
    out['first_layer_norm'] = round(statistics.mean(norms), 3) if norms else None
    out['first_layer_norm_std'] = round(statistics.stdev(norms), 3) if len(norms) > 1 else None
    return out


def study(doc, name, variants, epochs, cli=None):
    """A study of flag variants: each (key, label, start mode, flags) runs for --epochs epochs once per seed
    (--seeds) into OUT_DIR/<name>/seedS/<key>/ (run_cached, so a finished run is re-used); writes
    OUT_DIR/<name>/<name>.json, one row per variant: its runs' metrics ('runs'), their mean and std (over_seeds)."""
    p = parser(doc, f'{name}/')
    p.add_argument('--epochs', type=int, default=epochs, help=f'epochs per run (default: {epochs})')
    p.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3], help='random seeds (default: 1 2 3)')
    p.add_argument('--threads', type=int, default=0, help='CPU threads for torch, 0 = all (default: 0)')
    a = p.parse_args(cli)
    require_images(a.img_dir, f'{name}.py')
    if a.threads:
        torch.set_num_threads(a.threads)
    runs = {key: [] for key, *_ in variants}
    for seed in a.seeds:                              # seed by seed: an interrupted study keeps whole seeds
        for key, label, mode, flags in variants:
            out = Path(a.out_dir) / name / f'seed{seed}' / key
            argv = ['--img_dir', a.img_dir, '--out_dir', str(out), '--start', mode, '--seed', str(seed),
                    *short_run(a.epochs), *flags]
            runs[key].append(mode_metrics(run_cached(argv, f'seed {seed} {key}'), mode))
    rows = [{'key': key, 'label': label, 'start': mode, 'flags': ' '.join(flags), 'seeds': a.seeds,
             'epochs': a.epochs, **over_seeds(runs[key]), 'runs': runs[key]} for key, label, mode, flags in variants]
    for r in rows:
        print(f"{r['key']:14s} {r['recon_psnr_db'] or 0:6.2f} +- {r['recon_psnr_db_std'] or 0:4.2f} dB  "
              f"NN {r['sample_nn_psnr_db_median'] or 0:6.2f} +- {r['sample_nn_psnr_db_median_std'] or 0:4.2f}  "
              f"{1000 * (r['seconds_per_epoch'] or 0):4.0f} ms/epoch  diverged {r['n_diverged']}  guard {r['guard_events']}")
    path = Path(a.out_dir) / name / f'{name}.json'
    abp.write_json(rows, path)
    print(f'wrote {path}')
    return rows


def load_run(mode_dir):
    """A finished mode's flags and State, rebuilt from its checkpoint (abp.new_state + abp.load_state) on the CPU,
    wherever the checkpoint was written and whatever abp.device is: the benchmarks' analyses run there, on images
    they take with .cpu(). The one place where a benchmark chooses a device."""
    path = Path(mode_dir) / 'checkpoint.pt'
    ck = abp.read_checkpoint(path)
    args = abp.with_defaults(argparse.Namespace(**ck['args']))
    state = abp.new_state(args, len(ck['z']), dev='cpu')
    abp.load_state(state, path, args, abp.Chain(**ck['chain']))
    return args, state


def default_models(img_dir, run_dir, seed, prog):
    """The default run of `seed` (both modes) via run_cached in run_dir, with its checkpoints (trained if they are
    not there: git does not keep them), and per mode its (args, State) on the CPU (load_run)."""
    argv = ['--img_dir', img_dir, '--out_dir', run_dir, '--seed', str(seed)]
    finished(run_cached(argv, 'default run', need_checkpoints=True), prog, 'the default run')
    return {m: load_run(Path(run_dir) / m) for m in ('warm', 'cold')}
