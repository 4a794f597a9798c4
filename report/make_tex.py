"""The report's numbers: read output/*.json (written by the runs) and write report/generated/*.tex.

    python report/make_tex.py            # then: cd report && latexmk -pdf report.tex

Every figure the report quotes comes from here as a macro or a table row; nothing is typed by hand.
A JSON file that is missing is skipped with a note (its macros stay undefined and LaTeX says so).
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def macro_name(*words):
    """A TeX macro name from words: letters only (digits spelled), camel case: ('arg', 'beta1') -> argBetaOne."""
    digits = dict(zip('0123456789', ['Zero', 'One', 'Two', 'Three', 'Four', 'Five', 'Six', 'Seven', 'Eight', 'Nine']))
    parts = [p for w in words for p in str(w).replace('-', '_').split('_') if p]
    name = parts[0] + ''.join(p[:1].upper() + p[1:] for p in parts[1:])
    return ''.join(digits.get(c, c) for c in name if c.isalnum())


def define(name, value):
    return f'\\newcommand{{\\{name}}}{{{value}}}'


def vec(values, signed=False):
    """Numbers to two decimals, comma separated; a rounded -0.00 is written +0.00."""
    return ', '.join(f'{round(v, 2) + 0.0:+.2f}' if signed else f'{v:.2f}' for v in values)


def metrics_macros(m):
    """\\newcommand lines for every figure the report quotes from output/metrics.json, e.g. \\warmReconPsnr."""
    lines = []
    for mode in ('warm', 'cold'):
        r = m.get(mode)
        if not r:
            continue
        for key, value in (('ReconPsnr', f"{r['recon_psnr_db']:.2f}"), ('NnPsnr', f"{r['sample_nn_psnr_db_median']:.2f}"),
                           ('Coverage', r['sample_coverage']), ('ZMean', vec(r['z_mean'], True)),
                           ('ZStd', vec(r['z_std'])), ('Epochs', r['epochs']), ('Seconds', f"{r['seconds']:.0f}"),
                           ('MsPerEpoch', f"{1000 * r['seconds_per_epoch']:.0f}"), ('Steps', r['langevin_steps']),
                           ('StepWord', 'step' if r['langevin_steps'] == 1 else 'steps'),
                           ('StepSize', r['langevin_step_size']), ('StepMean', f"{r['langevin_step_mean']:.3f}"),
                           ('InterpD', vec(r['interp_d'])), ('GuardEvents', len(r.get('guard_events', [])))):
            lines.append(define(mode + key, value))
    lines += [define('pcaReconPsnr', f"{m['pca']['recon_psnr_db']:.2f}"), define('nImages', m['n_images']),
              define('totalSeconds', f"{m['total_seconds']:.0f}"), define('totalMinutes', f"{m['total_seconds'] / 60:.1f}")]
    a = m.get('args', {})
    for k in ('lr', 'gamma', 'mse_sigma', 'prior_sigma', 'n_epochs', 'gen_width', 'beta1', 'cold_beta1', 'seed', 'cold_proposals',
              'langevin_step_cap', 'curvature_every'):
        if k in a:
            lines.append(define(macro_name('arg', k), a[k]))
    return '\n'.join(lines) + '\n'


def results_table(m):
    """Rows of the warm / cold / PCA table."""
    rows = []
    for mode in ('warm', 'cold'):
        r = m.get(mode)
        if r:
            rows.append(f"{mode} start & {r['recon_psnr_db']:.2f} & {r['sample_nn_psnr_db_median']:.2f} & "
                        f"{r['sample_coverage']}/{m['n_images']} & ({vec(r['z_mean'], True)}) & ({vec(r['z_std'])}) & "
                        f"{1000 * r['seconds_per_epoch']:.0f} & {r['seconds']:.0f} \\\\")
    rows.append(f"PCA, $k=2$ & {m['pca']['recon_psnr_db']:.2f} & -- & -- & -- & -- & -- & -- \\\\")
    return '\n'.join(rows) + '\n'


def row_cells(r):
    """PSNR, NN-PSNR, coverage, z std, ms/epoch of one run's metrics, or 'diverged'."""
    if 'diverged' in r:
        return None
    return [f"{r['recon_psnr_db']:.2f}", f"{r['sample_nn_psnr_db_median']:.2f}", str(r['sample_coverage']),
            f"({vec(r['z_std'])})", f"{1000 * r['seconds_per_epoch']:.0f}"]


def pm(r, key):
    """A study row's metric over seeds (bench/common.py over_seeds) as 'mean $\\pm$ std', or '--'."""
    if r.get(key) is None:
        return '--'
    sd = r.get(key + '_std')
    return f"{r[key]:.2f}" + (f" $\\pm$ {sd:.2f}" if sd is not None else '')


def seed_cells(r):
    """One multi-seed row: PSNR and NN-PSNR as mean +- std, mean coverage, the guard's events summed over the
    seeds (and the runs it gave up on), the first layer's weight norm (mean). No timing: the studies' runs
    shared the machine with other work, so their seconds compare nothing."""
    cov = '--' if r.get('sample_coverage') is None else f"{r['sample_coverage']:.1f}"
    guard = str(sum(r['guard_events'])) + (f" ({r['n_diverged']} div.)" if r['n_diverged'] else '')
    norm = '--' if r.get('first_layer_norm') is None else f"{r['first_layer_norm']:.0f}"
    return [pm(r, 'recon_psnr_db'), pm(r, 'sample_nn_psnr_db_median'), cov, guard, norm]


def seed_row_macros(prefix, name, r):
    """\\<prefix>Psnr<name>, ...PsnrSd, Nn, NnSd, Cov, Guard, Div, Zstd, Norm, Ms of one multi-seed row."""
    def num(key, fmt, scale=1):
        return '--' if r.get(key) is None else f"{scale * r[key]:{fmt}}"
    values = {'Psnr': num('recon_psnr_db', '.2f'), 'PsnrSd': num('recon_psnr_db_std', '.2f'),
              'Nn': num('sample_nn_psnr_db_median', '.2f'), 'NnSd': num('sample_nn_psnr_db_median_std', '.2f'),
              'Cov': num('sample_coverage', '.1f'), 'Guard': sum(r['guard_events']), 'Div': r['n_diverged'],
              'Zstd': vec(r['z_std']) if r.get('z_std') else '--', 'Norm': num('first_layer_norm', '.0f'),
              'Ms': num('seconds_per_epoch', '.0f', 1000)}
    return [define(f'{prefix}{k}{name}', v) for k, v in values.items()]


def ablation_macros(rows, prefix='abl'):
    """Per row i (letters A, B, ...): \\ablPsnrA (mean over seeds), \\ablPsnrSdA (std), \\ablNnA, \\ablNnSdA,
    \\ablCovA, \\ablGuardA (the guard's recoveries over all seeds), \\ablDivA, \\ablZstdA, \\ablNormA, \\ablMsA;
    \\ablEpochs and \\ablSeeds."""
    out = [define(prefix + 'Epochs', rows[0]['epochs']), define(prefix + 'Seeds', ', '.join(map(str, rows[0]['seeds']))),
           define(prefix + 'NSeeds', len(rows[0]['seeds']))]
    for i, r in enumerate(rows):
        out += seed_row_macros(prefix, chr(ord('A') + i), r)
    return '\n'.join(out) + '\n'


def ablation_table(rows):
    """LaTeX rows: letter, start, change, PSNR, NN-PSNR (mean +- std over seeds), coverage, guard, ms/epoch."""
    return '\n'.join(f"{chr(ord('A') + i)} & {r['start']} & {r['label']} & {' & '.join(seed_cells(r))} \\\\"
                     for i, r in enumerate(rows)) + '\n'


def bench_macros(b):
    """The speed benchmark's figures (output/bench.json)."""
    spe, gf = b['seconds_per_epoch'], b['gflop_per_epoch']
    return '\n'.join([
        define('benchCourseSecPerEpoch', f"{spe['course']:.2f}"), define('benchOursSecPerEpoch', f"{spe['ours']:.3f}"),
        define('benchSpeedup', f"{b['speedup_per_epoch']:.0f}"), define('benchCourseGflop', f"{gf['course']:.1f}"),
        define('benchOursGflop', f"{gf['ours']:.2f}"), define('benchAchievedGflops', f"{b['achieved_gflops_ours']:.1f}"),
        define('benchPeakGflops', f"{b['matmul_peak_gflops']:.1f}"),
        define('benchPeakPercent', f"{100 * b['achieved_gflops_ours'] / b['matmul_peak_gflops']:.0f}"),
        define('benchBudget', f"{b['budget_seconds']:.0f}"), define('benchCoursePsnr', f"{within(b, 'course'):.2f}"),
        define('benchOursPsnr', f"{within(b, 'ours'):.2f}"), define('benchThreads', b['threads']),
        *before_after_macros(b), *split_macros(b)]) + '\n'


def split_macros(b):
    """bench.json's per-epoch speed-up split into factors, where it has it: \\benchSplitFewerSteps, ..."""
    split = b.get('speedup_split')
    if not split:
        return []
    return [define(macro_name('bench', 'split', k), f"{v:.2f}") for k, v in split['factors'].items()] + \
        [define(macro_name('bench', 'split', 'ms', k), f"{1000 * v:.0f}") for k, v in split['seconds_per_epoch'].items()]


def within(b, name):
    """The PSNR a configuration had reached within bench.json's budget: its last curve point at or before it."""
    return [v for t, v in b['psnr_curve'][name] if t <= b['budget_seconds']][-1]


def before_after_macros(b):
    """bench.json's cold/warm seconds per epoch and the before/after pair of full runs, where it has them."""
    out = []
    if 'mode_seconds_per_epoch' in b:
        out += [define('benchWarmMsPerEpoch', f"{1000 * b['mode_seconds_per_epoch']['warm']:.0f}"),
                define('benchColdMsPerEpoch', f"{1000 * b['mode_seconds_per_epoch']['cold']:.0f}"),
                define('benchColdOverWarm', f"{b['cold_over_warm']:.2f}")]
        one = b['mode_seconds_per_epoch'].get('warm_one_step')
        if one:                                     # warm start with one Langevin step, timed in the same run
            out += [define('benchWarmOneStepMsPerEpoch', f"{1000 * one:.0f}"),
                    define('benchWarmOverOneStep', f"{b['mode_seconds_per_epoch']['warm'] / one:.2f}")]
    pair = b.get('before_after')
    if pair:
        out += [define('benchBeforeRef', pair['ref']), define('benchPairEpochs', pair['epochs']),
                define('benchBeforeSeconds', f"{pair['before']['total_seconds']:.0f}"),
                define('benchAfterSeconds', f"{pair['after']['total_seconds']:.0f}"),
                define('benchPairSpeedup', f"{pair['speedup']:.2f}")]
    return out


def study_table(rows):
    """The cold-start study: tag (S1, S2, ...), label, PSNR, NN-PSNR (mean +- std over seeds), coverage, guard,
    first-layer norm per variant."""
    return '\n'.join(f"S{i + 1} & {r['label']} & {' & '.join(seed_cells(r))} \\\\" for i, r in enumerate(rows)) + '\n'


def study_macros(rows):
    """Per variant key (e.g. sir64 -> SirSixFour): \\studyPsnrSirSixFour, ...PsnrSd, Nn, NnSd, Cov, Ms, ...;
    \\studyEpochs and \\studySeeds."""
    out = [define('studyEpochs', rows[0]['epochs']), define('studySeeds', ', '.join(map(str, rows[0]['seeds'])))]
    for r in rows:
        out += seed_row_macros('study', macro_name('x', r['key'])[1:], r)
    return '\n'.join(out) + '\n'


def seeds_table(s):
    """One row per mode and seed: recon PSNR, NN-PSNR, coverage, z mean, z std, seconds; then per mode the mean
    and std over the seeds."""
    out = []
    for mode in ('warm', 'cold'):
        for seed, run in zip(s['seeds'], s['runs']):
            r = run[mode]
            out.append(f"{mode} & {seed} & {r['recon_psnr_db']:.2f} & {r['sample_nn_psnr_db_median']:.2f} & "
                       f"{r['sample_coverage']} & ({vec(r['z_mean'], True)}) & ({vec(r['z_std'])}) & {r['seconds']:.0f} \\\\")
        m = s['summary'][mode]
        cell = {k: f"{m[k]['mean']:.2f} $\\pm$ {m[k]['std']:.2f}" for k in ('recon_psnr_db', 'sample_nn_psnr_db_median')}
        out.append(f"\\textit{{{mode}}} & \\textit{{mean $\\pm$ std}} & {cell['recon_psnr_db']} & "
                   f"{cell['sample_nn_psnr_db_median']} & {m['sample_coverage']['mean']:.1f} & & & "
                   f"{m['seconds']['mean']:.0f} $\\pm$ {m['seconds']['std']:.0f} \\\\")
    return '\n'.join(out) + '\n'


def seeds_macros(s, prefix='seed'):
    """\\seedWarmReconMin, ...Max, ...Spread, \\seedWarmNnMin, ..., \\seedColdZStdMax, \\seedWarmSteps, \\seedWarmStepSize,
    \\seedWarmStepMean (the mean capped step at the last epoch), \\seedTotalSecondsMean (a whole run, mean over
    the seeds) and \\seedList."""
    out = [define(f'{prefix}List', ', '.join(map(str, s['seeds'])))]
    for mode in ('warm', 'cold'):
        for key, short in (('recon_psnr_db', 'Recon'), ('sample_nn_psnr_db_median', 'Nn')):
            v = s['summary'][mode][key]
            out += [define(f'{prefix}{mode.capitalize()}{short}{k.capitalize()}', f'{v[k]:.2f}')
                    for k in ('min', 'max', 'spread', 'mean', 'std') if k in v]
        events = s['summary'][mode].get('guard_events')
        if events is not None:
            out.append(define(f'{prefix}{mode.capitalize()}GuardEvents', sum(events)))
        for key, short in (('langevin_steps', 'Steps'), ('langevin_step_size', 'StepSize')):
            values = sorted({r[mode][key] for r in s['runs'] if key in r.get(mode, {})})
            if values:                                  # what the seeds ran with (the same in every seed)
                out.append(define(f'{prefix}{mode.capitalize()}{short}', ', '.join(map(str, values))))
        steps = [r[mode]['langevin_step_mean'] for r in s['runs'] if 'langevin_step_mean' in r.get(mode, {})]
        if steps:                                       # the mean capped step at the last epoch, over the seeds
            out.append(define(f'{prefix}{mode.capitalize()}StepMean', f'{sum(steps) / len(steps):.3f}'))
        stds = [max(r[mode]['z_std']) for r in s['runs'] if 'z_std' in r.get(mode, {})]
        if stds:                                        # the largest per-dimension std of z over the seeds
            out.append(define(f'{prefix}{mode.capitalize()}ZStdMax', f'{max(stds):.2f}'))
    if s.get('total_seconds'):                          # whole runs of abp.py (both modes, every figure)
        out.append(define(f'{prefix}TotalSecondsMean', f"{sum(s['total_seconds']) / len(s['total_seconds']):.0f}"))
    return '\n'.join(out) + '\n'


def beta1_macros(s):
    """The seeds benchmark with --beta1 0.9 (output/beta1_0.9/seeds.json): \\seedBetaOneWarmReconMean, ..."""
    return seeds_macros(s, prefix='seedBetaOne')


def beta1_eight_macros(s):
    """The seeds benchmark with warm start's --beta1 0.8 (output/beta1_0.8/seeds.json): \\seedBetaEightWarmReconMean, ..."""
    return seeds_macros(s, prefix='seedBetaEight')


def beta1_eight_gen_macros(g):
    """The generalisation benchmark with warm start's --beta1 0.8 (output/beta1_0.8/generalize.json):
    \\genBetaEightWarmGuardRuns, \\genBetaEightFacesWarmGuard, ..."""
    return generalize_macros(g, prefix='genBetaEight')


def steps_one_macros(s):
    """The seeds benchmark with warm start's one Langevin step per epoch, a lead not taken
    (output/warm_steps_1/seeds.json): \\seedStepsOneWarmReconMean, ..."""
    return seeds_macros(s, prefix='seedStepsOne')


def width_macros(s):
    """The seeds benchmark with a narrower generator, a lever not taken (output/gen_width_14/seeds.json):
    \\seedWidthWarmReconMean, ..., \\seedWidthTotalSecondsMean and \\seedWidthGenWidth (its --gen_width)."""
    flags = s['flags']
    width = flags[flags.index('--gen_width') + 1]
    return seeds_macros(s, prefix='seedWidth') + define('seedWidthGenWidth', width) + '\n'


def steps_one_gen_macros(g):
    """The generalisation benchmark with warm start's one Langevin step per epoch
    (output/warm_steps_1/generalize.json): \\genStepsOneWarmGuardRuns, \\genStepsOnePhotosWarmPsnr, ..."""
    return generalize_macros(g, prefix='genStepsOne')


def steps_folders_table(d):
    """bench/steps_folders.py (output/steps_folders.json): the whole tabular, a row per folder of warm start's PSNR
    with two steps and one per seed, then the means over the folders and the runs with a guard event."""
    seeds, rows, m = d['seeds'], d['folders'], d['summary']
    cells = lambda pairs: ' & '.join(f'{a:.2f} & {b:.2f}' for a, b in pairs)    # noqa: E731
    guard = [(sum(r['two_steps_guard'][i] > 0 for r in rows), sum(r['one_step_guard'][i] > 0 for r in rows))
             for i in range(len(seeds))]
    out = [f"\\begin{{tabular}}{{l{'rr' * len(seeds)}}}\\toprule",
           ' & ' + ' & '.join(f'\\multicolumn{{2}}{{c}}{{seed {s}}}' for s in seeds) + ' \\\\',
           'folder & ' + ' & '.join(['two steps & one step'] * len(seeds)) + ' \\\\\\midrule']
    out += [f"{r['folder']} & {cells(zip(r['two_steps'], r['one_step']))} \\\\" for r in rows]
    out += ['\\midrule', f"mean & {cells(zip(m['two_steps_mean'], m['one_step_mean']))} \\\\",
            'runs with a guard event & ' + ' & '.join(f'{a} & {b}' for a, b in guard) + ' \\\\',
            '\\bottomrule\\end{tabular}']
    return '\n'.join(out) + '\n'


def steps_folders_macros(d):
    """bench/steps_folders.py (output/steps_folders.json): \\sfSeeds, \\sfDiffMean (one step minus two, dB, over every
    run), \\sfDiffSeedOne, ... (mean over the folders, per seed), \\sfLower, \\sfHigher, \\sfRuns (runs where one step
    ends lower / higher), \\sfTwoGuardRuns, \\sfOneGuardRuns (and ...Events), \\sfDiffSeedStd (the per-seed means' std over the seeds),
    \\sfTwoMeanStd, \\sfOneMeanStd (each step count's five-folder mean, std over the seeds), \\sfLowerMin, ...Max,
    \\sfHigherMin, ...Max (by how much one step ends lower / higher), \\sfSpeedupSeedTwo, ... (warm seconds over the
    folders, two steps / one)."""
    m = d['summary']
    out = [define('sfSeeds', ', '.join(map(str, d['seeds']))), define('sfDiffMean', f"{m['one_minus_two_mean']:+.2f}"),
           define('sfLower', m['one_step_lower']), define('sfHigher', m['one_step_higher']), define('sfRuns', m['runs']),
           define('sfTwoGuardRuns', m['two_steps_guard_runs']), define('sfOneGuardRuns', m['one_step_guard_runs'])]
    out += [define(macro_name('sf', 'diff', 'seed', str(s)), f'{v:+.2f}')
            for s, v in zip(d['seeds'], m['one_minus_two_mean_per_seed'])]
    out += [define('sfDiffSeedStd', f"{m['one_minus_two_std_over_seeds']:.2f}"),
            define('sfTwoMeanStd', f"{m['two_steps_mean_std_over_seeds']:.2f}"),
            define('sfOneMeanStd', f"{m['one_step_mean_std_over_seeds']:.2f}"),
            define('sfTwoGuardEvents', m['two_steps_guard_events']), define('sfOneGuardEvents', m['one_step_guard_events'])]
    for key, word in (('lower_by', 'Lower'), ('higher_by', 'Higher')):
        if m[key]:
            out += [define(f'sf{word}Min', f'{m[key][0]:.2f}'), define(f'sf{word}Max', f'{m[key][1]:.2f}')]
    out += [define(macro_name('sf', 'speedup', 'seed', str(s)), f'{v:.2f}')       # warm seconds, two / one
            for s, v in zip(d['seeds'], m['two_over_one_seconds'])]
    return '\n'.join(out) + '\n'


def steps_one_bench_macros(b):
    """bench.py run with warm start's one Langevin step as the default (output/warm_steps_1/bench.json): the
    code before the speed work against that code, back to back (\\benchStepsOneBeforeSeconds, ...AfterSeconds,
    ...PairSpeedup, ...PairEpochs), and its warm epoch against the two steps, timed in the same run
    (\\benchStepsOneWarmMs, \\benchStepsOneTwoStepsMs, \\benchStepsOneEpochSpeedup)."""
    pair, spe = b['before_after'], b['mode_seconds_per_epoch']
    return '\n'.join([
        define('benchStepsOneBeforeSeconds', f"{pair['before']['total_seconds']:.0f}"),
        define('benchStepsOneAfterSeconds', f"{pair['after']['total_seconds']:.0f}"),
        define('benchStepsOnePairSpeedup', f"{pair['speedup']:.2f}"), define('benchStepsOnePairEpochs', pair['epochs']),
        define('benchStepsOneWarmMs', f"{1000 * spe['warm']:.0f}"),
        define('benchStepsOneTwoStepsMs', f"{1000 * spe['warm_former']:.0f}"),
        define('benchStepsOneEpochSpeedup', f"{spe['warm_former'] / spe['warm']:.2f}")]) + '\n'


def sharpness_macros(d):
    """bench/sharpness.py (output/sharpness.json): \\shpFolder, \\shpEpochs, \\shpEvery, \\shpIters; per variant
    (beta1_0.5 -> BetaOneZeroFive) \\shp<V>Median, ...Max, ...Share (% of measurements above 0.9 of the
    threshold), ...ShareOne (% above the threshold), ...Fall (largest fall, dB), ...Shortfall (mean shortfall below the best so far, dB), ...Final."""
    r0 = d['runs'][0]
    out = [define('shpFolder', d['folder']), define('shpEpochs', r0['epochs']), define('shpEvery', r0['every']),
           define('shpIters', r0['iters']), define('shpSeed', r0['seed']), define('shpMode', r0['mode'])]
    for r in d['runs']:
        name = macro_name('x', r['variant'].replace('.', '_'))[1:]
        out += [define(f'shp{name}Median', f"{r['ratio_median']:.2f}"), define(f'shp{name}Max', f"{r['ratio_max']:.2f}"),
                define(f'shp{name}Share', f"{100 * r['share_above_0.9']:.0f}"),
                define(f'shp{name}ShareOne', f"{100 * r['share_above_1']:.0f}"),
                define(f'shp{name}Fall', f"{r['largest_fall_db']:.2f}"),
                define(f'shp{name}Shortfall', f"{r['mean_shortfall_db']:.2f}"),
                define(f'shp{name}Final', f"{r['final_psnr_db']:.2f}")]
    return '\n'.join(out) + '\n'


def big(v):
    """A number to one decimal, or as m x 10^e (in math mode) once it has five digits or more."""
    if abs(v) < 1e4:
        return f'{v:.1f}'
    m, e = f'{v:.1e}'.split('e')
    return f'${m}\\times10^{{{int(e)}}}$'


def gen_cells(r, mode, key, fmt):
    return format(r[mode][key], fmt) if mode in r and key in r[mode] else '--'


def generalize_table(g):
    """One row per folder run: folder, run, images, warm and cold PSNR, PCA, coverage, guard recoveries, collapse
    (and whether the guard gave up: abp.py stopped after its last recovery, keeping the best checkpoint)."""
    out = []
    for r in g['folders']:
        gone = any(r.get(m, {}).get('collapsed') for m in ('warm', 'cold'))
        same = next((d for d in g['folders'] if d['folder'] == r['folder'] and d['note'] == 'defaults'), {})
        n, pca = r.get('n_images') or same.get('n_images'), r.get('pca_psnr_db') or same.get('pca_psnr_db')  # same images
        out.append(f"{r['folder']} & {r['note']} & {n or '--'} & {gen_cells(r, 'warm', 'recon_psnr_db', '.2f')} & "
                   f"{gen_cells(r, 'cold', 'recon_psnr_db', '.2f')} & "
                   f"{'--' if pca is None else format(pca, '.2f')} & "
                   f"{gen_cells(r, 'warm', 'sample_coverage', 'd')}/{gen_cells(r, 'cold', 'sample_coverage', 'd')} & "
                   f"{gen_cells(r, 'warm', 'guard_events', 'd')}/{gen_cells(r, 'cold', 'guard_events', 'd')} & "
                   f"{'yes' if gone else 'no'}{', guard gave up' if 'stopped' in r else ''} \\\\")
    return '\n'.join(out) + '\n'


def generalize_macros(g, prefix='gen'):
    """Per folder run (photos; photos with note 'no step cap'): \\genPhotosWarmPsnr, \\genPhotosNoStepCapWarmPsnr,
    ...ColdPsnr, ...WarmNorm, ...WarmGuard; over the default runs: \\genGuardTotal (guard recoveries),
    \\genWarmGuardRuns, \\genColdGuardRuns (runs of the mode with a recovery), \\genWarmGuardTotal, ... (recoveries),
    \\genCollapses, and the warm - cold gap \\genGapMin, \\genGapMax, \\genGapWithinTwoFive (folders within 2.5 dB)."""
    runs = [r for r in g['folders'] if r['note'] == 'defaults']
    both = [r for r in runs if 'warm' in r and 'cold' in r]
    gaps = [r['warm']['recon_psnr_db'] - r['cold']['recon_psnr_db'] for r in both]
    out = [define(f'{prefix}Folders', len(runs)),
           define(f'{prefix}GuardTotal', sum(r[m]['guard_events'] for r in runs for m in ('warm', 'cold') if m in r)),
           define(f'{prefix}Collapses', sum(1 for r in runs for m in ('warm', 'cold') if r.get(m, {}).get('collapsed'))),
           define(f'{prefix}GapMin', f'{min(gaps):.1f}' if gaps else '--'), define(f'{prefix}GapMax', f'{max(gaps):.1f}' if gaps else '--'),
           define(f'{prefix}GapWithinTwoFive', sum(1 for v in gaps if v <= 2.5))]
    for mode in ('warm', 'cold'):                   # runs of this mode in which the guard acted
        out += [define(f'{prefix}{mode.capitalize()}GuardRuns', sum(1 for r in runs if r.get(mode, {}).get('guard_events'))),
                define(f'{prefix}{mode.capitalize()}GuardTotal', sum(r.get(mode, {}).get('guard_events', 0) for r in runs))]
    for r in g['folders']:
        name = macro_name('x', r['folder'], *([] if r['note'] == 'defaults' else r['note'].replace(',', ' ').split()))[1:]
        for mode in ('warm', 'cold'):
            for key, short, fmt in (('recon_psnr_db', 'Psnr', '{:.2f}'.format), ('first_layer_norm', 'Norm', big),
                                    ('guard_events', 'Guard', str)):
                if mode in r and key in r[mode]:
                    out.append(define(f'{prefix}{name}{mode.capitalize()}{short}', fmt(r[mode][key])))
    return '\n'.join(out) + '\n'


def occlusion_table(rows):
    """One row per occlusion kind: hidden %, PSNR of the hidden pixels for warm, cold, mean and PCA baselines,
    warm's PSNR on the observed pixels, the guard's recoveries warm / cold."""
    return '\n'.join(f"\\texttt{{{r['kind']}}} & {100 * r['hidden_fraction']:.0f}\\% & "
                     f"{r['warm']['abp_hidden_psnr_db']:.2f} & {r['cold']['abp_hidden_psnr_db']:.2f} & "
                     f"{r['mean_hidden_psnr_db']:.2f} & {r['pca_hidden_psnr_db']:.2f} & "
                     f"{r['warm']['abp_observed_psnr_db']:.2f} & "
                     f"{r['guard_events']['warm']}\\,/\\,{r['guard_events']['cold']} \\\\" for r in rows) + '\n'


def occlusion_macros(rows):
    """Per kind (pixels:0.7 -> PixelsZeroSeven): \\occWarmPixelsZeroSeven, ...Cold..., ...Pca..., ...Mean...; \\occEpochs."""
    out = [define('occEpochs', rows[0]['epochs'] if rows else '--')]
    for r in rows:
        kind = macro_name('x', r['kind'].replace(':', '_').replace('.', '_'))[1:]
        out += [define(f'occWarm{kind}', f"{r['warm']['abp_hidden_psnr_db']:.2f}"),
                define(f'occCold{kind}', f"{r['cold']['abp_hidden_psnr_db']:.2f}"),
                define(f'occMean{kind}', f"{r['mean_hidden_psnr_db']:.2f}"),
                define(f'occPca{kind}', f"{r['pca_hidden_psnr_db']:.2f}")]
    return '\n'.join(out) + '\n'


def sweep_table(d):
    """The proposal sweep (output/proposal_sweep.json): label, PSNR, NN-PSNR, coverage per run."""
    return '\n'.join(f"{r['label']} & {r['recon_psnr_db']:.2f} & {r['sample_nn_psnr_db_median']:.2f} & "
                     f"{r['sample_coverage']} \\\\" for r in d['runs']) + '\n'


def sweep_macros(d):
    """Per run key (a, b, ...): \\sweepPsnrA, \\sweepNnA; \\sweepEpochs."""
    out = [define('sweepEpochs', d['runs'][0]['epochs'])]
    for r in d['runs']:
        out += [define(f"sweepPsnr{r['key'].upper()}", f"{r['recon_psnr_db']:.2f}"),
                define(f"sweepNn{r['key'].upper()}", f"{r['sample_nn_psnr_db_median']:.2f}")]
    return '\n'.join(out) + '\n'


def pct(v):
    return f"{100 * v:.0f}"


def stem(name):
    return Path(name).stem.replace('_', '\\_')


def learned_macros(d):
    """bench/learned.py's figures (output/learned.json), part by part: \\lrnHeld..., \\lrnNb..., \\lrnMos...,
    \\lrnLine..., \\lrnTh...; a part not in the file is skipped."""
    out = []
    h = d.get('heldout')
    if h and 'skipped' not in h:
        out += [define('lrnHeldNames', ', '.join(stem(n) for n in h['held_out'])), define('lrnHeldN', len(h['held_out'])),
                define('lrnHeldTrainN', len(h['trained_on'])), define('lrnHeldProposals', h['proposals']),
                define('lrnHeldSteps', h['langevin_steps']),
                define('lrnHeldNnDb', f"{h['nearest_training_image_db_mean']:.2f}"), define('lrnHeldPcaDb', f"{h['pca2_db_mean']:.2f}")]
        for mode in ('warm', 'cold'):
            m, M = h[mode], mode.capitalize()
            out += [define(f'lrnHeld{M}Db', f"{m['heldout_db_mean']:.2f}"), define(f'lrnHeld{M}OwnDb', f"{m['own_recon_db_mean']:.2f}"),
                    define(f'lrnHeld{M}TrainDb', f"{m['train_recon_psnr_db']:.2f}"),
                    define(f'lrnHeld{M}Min', f"{min(m['heldout_db']):.2f}"), define(f'lrnHeld{M}Max', f"{max(m['heldout_db']):.2f}")]
    n = d.get('neighbours')
    if n:
        out += [define('lrnNbSamples', n['warm']['samples']), define('lrnNbCopyDb', f"{n['warm']['copy_db']:g}"),
                define('lrnNbClosestPair', f"{n['closest_two_training_images_db']:.1f}"),
                define('lrnNbPairMedian', f"{n['training_pair_db_median']:.1f}")]
        for mode in ('warm', 'cold'):
            m, M = n[mode], mode.capitalize()
            out += [define(f'lrnNb{M}Copy', pct(m['copy_share'])), define(f'lrnNb{M}Median', f"{m['nn_psnr_db_median']:.1f}"),
                    define(f'lrnNb{M}Above', pct(m['share_above_25db'])),
                    define(f'lrnNb{M}CountMin', min(m['nearest_image_counts'])),
                    define(f'lrnNb{M}CountMax', max(m['nearest_image_counts']))]
    mo = d.get('mosaic')
    if mo:
        for mode in ('warm', 'cold'):
            m, M = mo[mode], mode.capitalize()
            nb, mass = m['panel_neighbours'], list(m['cell_prior_mass'].values())
            out += [define(f'lrnMos{M}ThirtyFive', pct(nb['share_above_35db'])), define(f'lrnMos{M}Thirty', pct(nb['share_above_30db'])),
                    define(f'lrnMos{M}Median', f"{nb['median_db']:.1f}"),
                    define(f'lrnMos{M}Within', pct(m['square_share_within_3db_of_nearest_image_recon'])),
                    define(f'lrnMos{M}MassMin', f'{100 * min(mass):.1f}'), define(f'lrnMos{M}MassMax', f'{100 * max(mass):.1f}'),
                    define(f'lrnMos{M}Cells', m['cells_in_square'])]
        for r in mo.get('studies', []):     # e.g. \\lrnMosColdStudySirThreeTwo, \\lrnMosAblationsColdFixed
            out.append(define('lrnMos' + macro_name('x', r['study'])[1:] + macro_name('x', r['row'])[1:],
                              pct(r['share_above_35db'])))
    li = d.get('line')
    if li:
        out += [define('lrnLineFrom', stem(li['from'])), define('lrnLineTo', stem(li['to'])), define('lrnLineFrames', li['frames']),
                define('lrnLineFadeMinNn', f"{min(li['crossfade']['nn_psnr_db_per_frame']):.1f}")]
        for mode in ('warm', 'cold'):
            m, M = li[mode], mode.capitalize()
            path = [k for i, k in enumerate(m['nearest_image_per_frame']) if i == 0 or k != m['nearest_image_per_frame'][i - 1]]
            out += [define(f'lrnLine{M}MinStep', f"{m['min_consecutive_frame_db']:.1f}"),
                    define(f'lrnLine{M}MinNn', f"{min(m['nn_psnr_db_per_frame']):.1f}"),
                    define(f'lrnLine{M}Path', ' $\\to$ '.join(k.replace('_', '\\_') for k in path))]
    t = d.get('theory')
    if t:
        out += [define('lrnThEvery', t['every']), define('lrnThProposals', t['proposals'])]
        for mode in ('warm', 'cold'):
            m, M = t[mode], mode.capitalize()
            late = [v for r in m['series'] if r['epoch'] >= 100 for v in r['ess']]
            out += [define(f'lrnTh{M}Psnr', f"{m['final_recon_psnr_db']:.2f}"), define(f'lrnTh{M}Lam', f"{m['final_lambda_max_median']:.0f}"),
                    define(f'lrnTh{M}W', f"{m['final_width_median']:.3f}"), define(f'lrnTh{M}Step', f"{m['final_step_median']:.3f}"),
                    define(f'lrnTh{M}StepSize', m['configured_step']), define(f'lrnTh{M}Capped', pct(m['share_capped_final'])),
                    define(f'lrnTh{M}Ess', f"{m['final_ess_median']:.2f}"),
                    define(f'lrnTh{M}EssLate', f"{sorted(late)[len(late) // 2]:.2f}" if late else '--'),
                    define(f'lrnTh{M}ZWander', f"{m['z_std_late_median']:.3f}"), define(f'lrnTh{M}WLate', f"{m['width_late_median']:.3f}"),
                    define(f'lrnTh{M}WanderInWidths', f"{m['z_std_late_median'] / m['width_late_median']:.0f}")]
    return '\n'.join(out) + '\n'


def mosaic_table(d):
    """Per study row whose panels were measured (output/learned.json, mosaic.studies): tag, start, change, share of
    neighbouring panel tiles above 35 dB and recon PSNR, each mean +- std over seeds."""
    rows = []
    for r in (d.get('mosaic') or {}).get('studies', []):
        share = f"{pct(r['share_above_35db'])}" + (f" $\\pm$ {pct(r['share_above_35db_std'])}" if r['share_above_35db_std'] is not None else '')
        rows.append(f"{r.get('tag', '')} & {r['start']} & {r['label']} & {r['runs']} & {share} & "
                    f"{pm(r, 'recon_psnr_db')} \\\\")
    return '\n'.join(rows) + '\n'


def handout_macros(d):
    """bench/handout_cold.py (output/handout_cold.json): per run key (handout, ours, ours_same_time -> Handout,
    Ours, OursSameTime) \\hoPsnr..., \\hoNn..., \\hoCov..., \\hoEpochs..., \\hoSeconds...; \\hoSeed."""
    out = [define('hoSeed', d['seed']), define('hoSpeedup', f"{d['speedup_per_epoch']:.0f}"),
           define('hoEpochsInHandoutTime', d['epochs_in_handout_time']),
           define('hoMsHandoutTimed', f"{1000 * d['seconds_per_epoch']['handout']:.0f}"),
           define('hoMsOursTimed', f"{1000 * d['seconds_per_epoch']['ours']:.0f}")]
    for r in d['runs']:
        k = macro_name('x', r['key'])[1:]
        out += [define(f'hoPsnr{k}', f"{r['recon_psnr_db']:.2f}"), define(f'hoNn{k}', f"{r['sample_nn_psnr_db_median']:.2f}"),
                define(f'hoCov{k}', r['sample_coverage']), define(f'hoEpochs{k}', r['epochs']),
                define(f'hoSeconds{k}', f"{r['seconds']:.0f}"), define(f'hoMs{k}', f"{1000 * r['seconds_per_epoch']:.0f}")]
    return '\n'.join(out) + '\n'


def spikes_macros(d):
    """bench/spikes.py (output/spikes.json, its summary): \\spkFolder, \\spkEpochs, \\spkSeeds; per variant and
    mode (beta1_0.5, warm -> BetaOneZeroFiveWarm) \\spk<V><M>Events (summed over seeds), ...Final (mean final PSNR),
    ...LateAdam, ...LateChain (the second half's per-epoch parts); over beta1_0.5's events (the defaults before --cold_beta1) \\spk<M>EventAdam,
    \\spk<M>EventChain (mean 5-epoch split; ...PerEpoch: divided by the run-up), \\spk<M>EventStep (largest
    Adam step in the run-ups) and \\spk<M>QuietStep (the largest outside any event)."""
    runs = d['runs']
    out = [define('spkFolder', d['folder']), define('spkEpochs', runs[0]['epochs']), define('spkRunUp', d['run_up']),
           define('spkSeeds', ', '.join(map(str, sorted({r['seed'] for r in runs}))))]
    for key, modes in d['summary'].items():
        for mode in ('warm', 'cold'):
            v = modes.get(mode)
            if v is None:
                continue
            name = macro_name('x', key.replace('.', '_'), mode)[1:]
            out += [define(f'spk{name}Events', v['events']), define(f'spk{name}Final', f"{v['final_psnr_db']:.2f}"),
                    define(f'spk{name}LateAdam', f"${v['late_adam_db']:+.2f}$"),
                    define(f'spk{name}LateChain', f"${v['late_chain_db']:+.2f}$")]
            if key == 'beta1_0.5' and v['events']:
                m, k = mode.capitalize(), d['run_up']
                out += [define(f'spk{m}EventAdam', f"${v['event_adam_db']:+.1f}$"),
                        define(f'spk{m}EventChain', f"${v['event_chain_db']:+.1f}$"),
                        define(f'spk{m}EventAdamPerEpoch', f"${v['event_adam_db'] / k:+.2f}$"),
                        define(f'spk{m}EventChainPerEpoch', f"${v['event_chain_db'] / k:+.2f}$"),
                        define(f'spk{m}EventStep', f"{v['event_step_max']:.2f}"),
                        define(f'spk{m}EventBurst', f"{v['event_burst_max']:.2f}"),
                        define(f'spk{m}QuietStep', f"{v['step_outside_max']:.2f}")]
    return '\n'.join(out) + '\n'


GENERATORS = [  # (input JSON in output/, output .tex in report/generated/, function)
    ('proposal_sweep.json', 'sweep.tex', sweep_table),
    ('proposal_sweep.json', 'sweep_macros.tex', sweep_macros),
    ('metrics.json', 'metrics.tex', metrics_macros),
    ('metrics.json', 'results_table.tex', results_table),
    ('ablations.json', 'ablations.tex', ablation_table),
    ('ablations.json', 'ablations_macros.tex', ablation_macros),
    ('bench.json', 'bench.tex', bench_macros),
    ('cold_study.json', 'study.tex', study_table),
    ('cold_study.json', 'study_macros.tex', study_macros),
    ('seeds.json', 'seeds.tex', seeds_table),
    ('seeds.json', 'seeds_macros.tex', seeds_macros),
    ('generalize.json', 'generalize.tex', generalize_table),
    ('generalize.json', 'generalize_macros.tex', generalize_macros),
    ('occlusion.json', 'occlusion.tex', occlusion_table),
    ('occlusion.json', 'occlusion_macros.tex', occlusion_macros),
    ('learned.json', 'learned_macros.tex', learned_macros),
    ('learned.json', 'mosaic.tex', mosaic_table),
    ('handout_cold.json', 'handout_macros.tex', handout_macros),
    ('spikes.json', 'spikes_macros.tex', spikes_macros),
    ('beta1_0.9/seeds.json', 'beta1_macros.tex', beta1_macros),
    ('beta1_0.8/seeds.json', 'beta1_eight_macros.tex', beta1_eight_macros),
    ('beta1_0.8/generalize.json', 'beta1_eight_gen_macros.tex', beta1_eight_gen_macros),
    ('sharpness.json', 'sharpness_macros.tex', sharpness_macros),
    ('warm_steps_1/seeds.json', 'steps_one_macros.tex', steps_one_macros),
    ('warm_steps_1/generalize.json', 'steps_one_gen_macros.tex', steps_one_gen_macros),
    ('warm_steps_1/bench.json', 'steps_one_bench_macros.tex', steps_one_bench_macros),
    ('gen_width_14/seeds.json', 'width_macros.tex', width_macros),
    ('steps_folders.json', 'steps_folders.tex', steps_folders_table),
    ('steps_folders.json', 'steps_folders_macros.tex', steps_folders_macros),
]


def make_all(out_dir, gen_dir):
    """Write every generated .tex whose JSON exists; returns {tex name: text}."""
    gen_dir.mkdir(parents=True, exist_ok=True)
    made = {}
    for src, dst, fn in GENERATORS:
        path = out_dir / src
        if not path.exists():
            print(f'make_tex.py: note: {path} is missing; {dst} not written', file=sys.stderr)
            continue
        made[dst] = fn(json.loads(path.read_text()))
        tmp = gen_dir / f'.tmp-{dst}'
        tmp.write_text(made[dst])
        tmp.replace(gen_dir / dst)
    return made


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out_dir', default=str(ROOT / 'output'), help='where the runs wrote their JSON (default: output/)')
    p.add_argument('--gen_dir', default=str(ROOT / 'report' / 'generated'),
                   help='where the .tex files go (default: report/generated/)')
    a = p.parse_args()
    made = make_all(Path(a.out_dir), Path(a.gen_dir))
    print(f"wrote {', '.join(made)} in {a.gen_dir}")


if __name__ == '__main__':
    main()
