"""Benchmark: the course hyperparameters on our generator against this project's defaults, in one process.

    python bench/bench.py --img_dir ../shared/data/lion_tiger            # about 4 minutes on 2 cores

Prints and writes output/bench.json and output/bench_quality_vs_time.png (report/make_tex.py turns the
JSON into the report's numbers):
  1. seconds per epoch of each configuration (warm start) and their ratio: "course" is the course
     hyperparameters on our generator (at the skeleton's width, 120 steps of s = 0.05, the skeleton's noise
     4 s e), "ours" this project's defaults; and that ratio split into factors: fewer Langevin steps, cheaper
     steps (our generator's widths), the rest (SPLIT);
  2. FLOPs per epoch of ours (torch's FLOP counter), the GFLOP/s achieved, and this machine's fp32
     matmul peak measured in the same run;
  3. reconstruction PSNR reached by each configuration within the same wall-clock budget;
  4. seconds per epoch of each start mode with today's defaults (cold against warm), and of warm start with
     one Langevin step per epoch (ONE_STEP, a lead measured and not taken), one after the other;
  5. the code before the speed work (git ref --before, abp.py as it was) against today's abp.py: the same
     command, `python abp.py --img_dir IMG_DIR --n_epochs PAIR_EPOCHS`, run back to back in fresh
     processes, each with its own defaults; their total_seconds and the ratio (skipped with --pair_epochs 0).
Timings are only compared inside one run: machines are noisy, ratios are the figures to quote.
"""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

from common import abp, parser

# "course": the course hyperparameters on our generator, at the skeleton's width (512 channels at 4 x 4; ours
# has 256 -> 16, see README). The skeleton's own DCGAN-style network is not what is timed here.
# The skeleton's Langevin noise is 4 s e (eq. 6 has s e).
COURSE = ['--gen_width', '32', '--gen_max_ch', '512', '--langevin_num_steps', '120', '--langevin_step_size', '0.05',
          '--langevin_noise_scale', '4', '--lr', '4e-4', '--gamma', '0.996', '--mse_sigma', '1', '--no-standardize_z',
          '--langevin_step_cap', '0']
OURS = []
# The per-epoch speed-up, split into its parts: the course hyperparameters with our warm Langevin steps per
# epoch (fewer steps), then also with our generator's widths (cheaper steps), then ours (the rest: sigma, the
# step cap's curvature measurements, standardisation, learning rate).
STEPS = ['--langevin_num_steps', str(abp.flag_defaults()['langevin_num_steps'])]
SPLIT = [('fewer_steps', COURSE + STEPS),
         ('cheaper_steps', COURSE + STEPS + ['--gen_width', '16', '--gen_max_ch', '256'])]
ROOT = Path(__file__).resolve().parents[1]     # the repository: today's abp.py and its git history
# Warm start with one Langevin step per epoch of s <= 0.03 * sqrt(2) (about the noise of our two steps of s <= 0.03 in
# one): faster, and measured not taken as the default (output/warm_steps_1/); timed in 4. beside the defaults.
ONE_STEP = ['--langevin_num_steps', '1', '--langevin_step_size', '0.042']
LABELS = {'course': 'course hyperparameters on our generator', 'ours': 'ours (defaults)'}


def config(img_dir, extra):
    """A warm-start configuration: its flags and its Chain, resolved once."""
    args = abp.parse_args(['--img_dir', img_dir, '--start', 'warm', *extra])
    return args, abp.chain_for(args, 'warm')


def setup(cfg, x):
    args, chain = cfg
    return abp.new_state(args, x.shape[0], chain)


def epoch(cfg, state, x):
    """One warm-start epoch exactly as abp.train does it (the epoch count schedules the step cap's widths)."""
    args, chain = cfg
    out = abp.train_epoch(state, x, chain, args)
    state['epoch'] += 1
    return out


def seconds_per_epoch(cfg, x, n):
    state = setup(cfg, x)
    epoch(cfg, state, x)                                       # warm-up
    t = time.perf_counter()
    for _ in range(n):
        epoch(cfg, state, x)
    return (time.perf_counter() - t) / n


def flops_per_epoch(cfg, x):
    """K Langevin passes (forward + gradient for z), one learning step and the step cap's share of a
    posterior-width measurement, counted by torch's FLOP counter. Its hooks do not support
    torch.autograd.grad, so the z-gradient is taken with backward(inputs=[z]) here: the same kernels."""
    from torch.utils.flop_counter import FlopCounterMode
    args, chain = cfg
    state = setup(cfg, x)
    model, steps = state['model'], chain.steps
    z = state['z'].clone().requires_grad_(True)
    with FlopCounterMode(display=False) as fc:
        e = abp.energy(model.Gnet(z), x, z, args.mse_sigma, args.prior_sigma)
        torch.autograd.backward(e.sum(), inputs=[z])
    langevin = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        abp.learn_step(model, state['optimizer'], state['z'], x, args.mse_sigma)
    learn = fc.get_total_flops()
    width = 0
    if args.langevin_step_cap > 0:                # the posterior widths, measured every curvature_every epochs
        with FlopCounterMode(display=False) as fc:
            abp.posterior_width(model.Gnet, state['z'], args.mse_sigma, args.prior_sigma)
        width = fc.get_total_flops() / args.curvature_every
    return steps * langevin + learn + width


def speedup_split(img_dir, x, spe_course, spe_ours, n):
    """1b. The course's seconds per epoch over ours as a product of factors (SPLIT, in turn): the course's 120
    Langevin steps against ours, the skeleton-width generator against ours at our steps, and the rest."""
    spe = {'course': spe_course}
    for name, flags in SPLIT:
        spe[name] = seconds_per_epoch(config(img_dir, flags), x, n)
    spe['ours'] = spe_ours
    factors = {'fewer_steps': spe['course'] / spe['fewer_steps'], 'cheaper_steps': spe['fewer_steps'] / spe['cheaper_steps'],
               'rest': spe['cheaper_steps'] / spe['ours']}
    return {'seconds_per_epoch': {k: round(v, 5) for k, v in spe.items()},
            'factors': {k: round(v, 3) for k, v in factors.items()}}


def mode_seconds_per_epoch(img_dir, x, n):
    """4. Seconds per epoch of warm and of cold start with the defaults, and of warm start with one Langevin step
    per epoch (ONE_STEP), timed one after the other."""
    out = {}
    for name, mode, flags in (('warm', 'warm', []), ('cold', 'cold', []), ('warm_one_step', 'warm', ONE_STEP)):
        args = abp.parse_args(['--img_dir', img_dir, '--start', mode, *flags])
        out[name] = seconds_per_epoch((args, abp.chain_for(args, mode)), x, n)
    return out


def timed_default_run(script, img_dir, out_dir, epochs):
    """`python SCRIPT --img_dir IMG_DIR --out_dir OUT_DIR --n_epochs EPOCHS` in a fresh process: its
    total_seconds and each mode's recon PSNR, from the metrics.json it wrote."""
    subprocess.run([sys.executable, str(script), '--img_dir', str(img_dir), '--out_dir', str(out_dir),
                    '--n_epochs', str(epochs)], check=True, stdout=subprocess.DEVNULL)
    m = json.loads((Path(out_dir) / 'metrics.json').read_text())
    return {'total_seconds': m['total_seconds'], 'parallel': m.get('parallel', False),
            **{f'{mode}_recon_psnr_db': m[mode]['recon_psnr_db'] for mode in ('warm', 'cold')}}


def before_and_after(ref, img_dir, epochs):
    """5. The abp.py of git ref `ref`, then today's, each run once with its defaults, back to back."""
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / 'abp.py'
        old.write_bytes(subprocess.run(['git', 'show', f'{ref}:abp.py'], cwd=ROOT, check=True,
                                       capture_output=True).stdout)
        before = timed_default_run(old, img_dir, Path(tmp) / 'before', epochs)
        after = timed_default_run(ROOT / 'abp.py', img_dir, Path(tmp) / 'after', epochs)
    return {'ref': ref, 'epochs': epochs, 'before': before, 'after': after,
            'speedup': round(before['total_seconds'] / after['total_seconds'], 3)}


def matmul_peak_gflops(n=2048, reps=10):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def psnr_within(cfg, x, budget, every=5.0):
    """Train for `budget` seconds; (elapsed, PSNR) every `every` seconds."""
    state = setup(cfg, x)
    curve, t0, next_mark, epochs = [], time.perf_counter(), 0.0, 0
    while True:
        _, x_hat = epoch(cfg, state, x)
        epochs += 1
        el = time.perf_counter() - t0
        if el >= next_mark or el >= budget:
            curve.append((round(el, 2), round(abp.psnr(x_hat, x).mean().item(), 3)))
            next_mark += every
        if el >= budget:
            return curve, epochs


def at_budget(curves, budget):
    """{configuration: the PSNR of its last curve point at or before `budget` seconds}."""
    return {k: [db for t, db in v if t <= budget][-1] for k, v in curves.items()}


def main():
    p = parser(__doc__, 'bench.json and the plot')
    p.add_argument('--budget', type=float, default=60.0, help='wall-clock seconds per configuration for 3. (default: 60)')
    p.add_argument('--epochs', type=int, default=3,
                   help='timed epochs of the course hyperparameters for 1.; ours runs 20x more (default: 3)')
    p.add_argument('--before', default='c5e5031',
                   help='git ref of the abp.py to time against today\'s in 5. (default: c5e5031, the code before '
                        'the speed work)')
    p.add_argument('--pair_epochs', type=int, default=2000,
                   help='epochs per mode of each run of 5.; 0 skips it and keeps the pair bench.json already holds '
                        '(default: 2000, a full default run)')
    p.add_argument('--replot', action='store_true', help='only redraw the plot from OUT_DIR/bench.json')
    a = p.parse_args()
    if a.replot:                                      # the figure, and the PSNR within the budget, from the curves
        result = json.loads((Path(a.out_dir) / 'bench.json').read_text())
        result['psnr_at_budget'] = at_budget(result['psnr_curve'], result['budget_seconds'])
        abp.write_json(result, Path(a.out_dir) / 'bench.json')
        plot_curves(result, Path(a.out_dir) / 'bench_quality_vs_time.png')
        return
    course, ours = config(a.img_dir, COURSE), config(a.img_dir, OURS)
    try:
        x = abp.load_data(ours[0])[0]                     # as abp.run holds it: on the device, channels-last
    except abp.UserError as e:
        sys.exit(f'bench.py: error: {e}')
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    spe_course = seconds_per_epoch(course, x, a.epochs)
    spe_ours = seconds_per_epoch(ours, x, 20 * a.epochs)
    print(f'1. seconds/epoch  course {spe_course:.3f}  ours {spe_ours:.4f}  ratio {spe_course / spe_ours:.1f}x')
    split = speedup_split(a.img_dir, x, spe_course, spe_ours, 20 * a.epochs)
    print('   split: ' + ', '.join(f'{k} {v:.2f}x' for k, v in split['factors'].items()))
    f_course, f_ours = flops_per_epoch(course, x), flops_per_epoch(ours, x)
    peak = matmul_peak_gflops()
    achieved = f_ours / spe_ours / 1e9
    print(f'2. GFLOP/epoch    course {f_course / 1e9:.1f}  ours {f_ours / 1e9:.2f}; ours runs at {achieved:.1f} GFLOP/s '
          f'= {100 * achieved / peak:.0f}% of the fp32 matmul peak {peak:.1f} GFLOP/s')
    curves = {}
    for name, cfg in (('course', course), ('ours', ours)):
        curves[name], n_ep = psnr_within(cfg, x, a.budget)
        print(f'3. {name:6s} PSNR within {a.budget:.0f} s: {[db for t, db in curves[name] if t <= a.budget][-1]:.2f} dB '
              f'({n_ep} epochs, the last ending at {curves[name][-1][0]:.0f} s)')

    per_mode = mode_seconds_per_epoch(a.img_dir, x, 20 * a.epochs)
    print(f'4. seconds/epoch  warm {per_mode["warm"]:.4f}  cold {per_mode["cold"]:.4f}  '
          f'cold/warm {per_mode["cold"] / per_mode["warm"]:.2f}; warm with {" ".join(ONE_STEP)} '
          f'{per_mode["warm_one_step"]:.4f} ({per_mode["warm"] / per_mode["warm_one_step"]:.2f}x faster)')
    if a.pair_epochs > 0:
        pair = before_and_after(a.before, a.img_dir, a.pair_epochs)
    else:                                   # skipped: the pair already recorded in bench.json is kept
        old = out / 'bench.json'
        pair = json.loads(old.read_text()).get('before_after') if old.exists() else None
    if pair:
        print(f'5. python abp.py --n_epochs {pair["epochs"]}: {pair["ref"]} {pair["before"]["total_seconds"]:.0f} s, '
              f'today {pair["after"]["total_seconds"]:.0f} s: {pair["speedup"]:.2f}x faster')

    result = {'device': abp.device, 'threads': torch.get_num_threads(), 'torch': torch.__version__,
              'seconds_per_epoch': {'course': round(spe_course, 4), 'ours': round(spe_ours, 5)},
              'speedup_per_epoch': round(spe_course / spe_ours, 2), 'speedup_split': split,
              'gflop_per_epoch': {'course': round(f_course / 1e9, 3), 'ours': round(f_ours / 1e9, 4)},
              'achieved_gflops_ours': round(achieved, 2), 'matmul_peak_gflops': round(peak, 2),
              'budget_seconds': a.budget, 'psnr_curve': curves,
              'psnr_at_budget': at_budget(curves, a.budget),
              'mode_seconds_per_epoch': {k: round(v, 5) for k, v in per_mode.items()},
              'cold_over_warm': round(per_mode['cold'] / per_mode['warm'], 3), 'before_after': pair}
    abp.write_json(result, out / 'bench.json')
    plot_curves(result, out / 'bench_quality_vs_time.png')
    print(f'wrote {out / "bench.json"} and {out / "bench_quality_vs_time.png"}')


def plot_curves(result, path):
    """bench.json's PSNR-against-time curves (part 3), the budget marked."""
    fig = Figure(figsize=(5.5, 3.4))                   # the object API, as abp.py draws
    ax = fig.subplots()
    for name, c in result['psnr_curve'].items():
        ax.plot([t for t, _ in c], [v for _, v in c], marker='.',
                label=f'{LABELS[name]}: {result["seconds_per_epoch"][name]:.3f} s/epoch')
    ax.axvline(result['budget_seconds'], color='grey', ls=':', lw=1)
    ax.set_xlabel('wall-clock seconds (warm start, same process)')
    ax.set_ylabel('reconstruction PSNR (dB)')
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right', bbox_to_anchor=(1, 0.2), fontsize=8)   # between the two curves
    abp.save_fig(fig, path)


if __name__ == '__main__':
    main()
