"""Benchmark: the course hyperparameters on our generator against this project's defaults, in one process.

    python bench/bench.py --img_dir ../shared/data/lion_tiger            # about 4 minutes on 2 cores

Prints and writes OUT_DIR/bench/bench.json and bench_quality_vs_time.png (report/make_tex.py turns the JSON into
the report's numbers):
  1. seconds per epoch of each configuration (warm start) and their ratio: "course" is the course hyperparameters
     on our generator (120 Langevin steps of s = 0.05, the skeleton's noise 4 s e, sigma 1, its learning rate and
     decay, no step cap, no standardisation), "ours" this project's defaults;
  2. FLOPs per epoch of each (torch's FLOP counter), the GFLOP/s ours achieves, and this machine's fp32 matmul
     peak measured in the same run;
  3. reconstruction PSNR reached by each configuration within the same wall-clock budget;
  4. seconds per epoch of each start mode with the defaults (cold against warm), one after the other.
Parts 1 and 4 are timed --repeats times (default 3): each figure is the median, each ratio's range is recorded.
Every epoch is abp.train's own, watched through its hook. Timings are only compared inside one run: machines are
noisy, ratios are the figures to quote.
"""
import statistics
import logging
import tempfile
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

from common import abp, parser, require_images

COURSE = ['--langevin_num_steps', '120', '--langevin_step_size', '0.05', '--langevin_noise_scale', '4', '--lr', '4e-4',
          '--gamma', '0.996', '--mse_sigma', '1', '--no-standardize_z', '--langevin_step_cap', '0']
LONG = ['--n_epochs', '1000000', '--n_plot', '1000000', '--n_log', '1000000', '--n_stats', '1000000']   # no end, figures, logs
LABELS = {'course': 'course hyperparameters on our generator', 'ours': 'ours (defaults)'}


class Enough(Exception):
    """Raised by the hook of watch() to end a timed training."""


def config(img_dir, flags, mode='warm'):
    """A configuration to time: its flags (LONG: a run that never ends by itself), its Chain and its images."""
    args = abp.parse_args(['--img_dir', img_dir, '--start', mode, *LONG, *flags])
    return args, abp.chain_for(args, mode), abp.load_data(args)


def watch(cfg, stop):
    """abp.train on a configuration, watched through its hook: (epoch, seconds since the start, PSNR in dB) after
    each epoch the guard kept, until stop(those marks) is true."""
    args, chain, data = cfg
    state, marks, t0 = abp.new_state(args, len(data)), [], time.perf_counter()

    def hook(state, loss, psnr_db):
        marks.append((state.epoch, time.perf_counter() - t0, psnr_db))
        if stop(marks):
            raise Enough

    with tempfile.TemporaryDirectory() as tmp:
        try:
            abp.train(state, data, chain, args, tmp, logging.getLogger('bench'), hook)
        except Enough:
            pass
    return marks


def seconds_per_epoch(cfg, n):
    """Seconds per epoch over n epochs after a warm-up epoch."""
    marks = watch(cfg, lambda m: len(m) > n)
    return (marks[-1][1] - marks[0][1]) / n


def psnr_within(cfg, budget, every=5.0):
    """Train for `budget` seconds; (elapsed, PSNR) about every `every` seconds, and the epochs it ran."""
    marks = watch(cfg, lambda m: m[-1][1] >= budget)
    curve, next_mark = [], 0.0
    for _, t, db in marks:
        if t >= next_mark or t >= budget:
            curve.append((round(t, 2), round(db, 3)))
            next_mark += every
    return curve, len(marks)


def flops_per_epoch(cfg):
    """K Langevin passes (forward + gradient for z), one learning step and the step cap's share of a
    posterior-width measurement, counted by torch's FLOP counter. Its hooks do not support
    torch.autograd.grad, so the z-gradient is taken with backward(inputs=[z]) here: the same kernels."""
    from torch.utils.flop_counter import FlopCounterMode
    args, chain, data = cfg
    state, x = abp.new_state(args, len(data)), data.batch(None)
    z = state.z.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as fc:
        e = abp.energy(state.model.Gnet(z), x, z, chain.sigma, chain.prior_sigma)
        torch.autograd.backward(e.sum(), inputs=[z])
    langevin = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        abp.learn_step(state.model, state.optimizer, state.z, x, chain.sigma)
    learn, width = fc.get_total_flops(), 0
    if chain.cap > 0:                        # the posterior widths, measured every CURVATURE_EVERY epochs
        with FlopCounterMode(display=False) as fc:
            abp.posterior_width(state.model.Gnet, state.z, chain.sigma, chain.prior_sigma)
        width = fc.get_total_flops() / abp.CURVATURE_EVERY
    return chain.steps * langevin + learn + width


def matmul_peak_gflops(n=2048, reps=10, dev=None):
    """fp32 matrix products per second on the device training runs on (abp.device), in GFLOP/s."""
    dev = dev or abp.device
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    a @ b
    sync = torch.cuda.synchronize if str(dev).startswith('cuda') else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def at_budget(curves, budget):
    """{configuration: the PSNR of its last curve point at or before `budget` seconds (None: no epoch ended by then)}."""
    return {k: next((db for t, db in reversed(v) if t <= budget), None) for k, v in curves.items()}


def plot_curves(result, path):
    """bench.json's PSNR-against-time curves (part 3), the budget marked."""
    fig = Figure(figsize=(5.5, 3.4))
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


def main():
    p = parser(__doc__, 'bench/')
    p.add_argument('--budget', type=float, default=60.0, help='wall-clock seconds per configuration for 3. (default: 60)')
    p.add_argument('--epochs', type=int, default=3,
                   help='timed epochs of the course hyperparameters in 1.; ours runs 20x more (default: 3)')
    p.add_argument('--repeats', type=int, default=3, help='timings of parts 1 and 4, median and range (default: 3)')
    a = p.parse_args()
    out = Path(a.out_dir) / 'bench'
    require_images(a.img_dir, 'bench.py')
    out.mkdir(parents=True, exist_ok=True)
    course, ours, cold = config(a.img_dir, COURSE), config(a.img_dir, []), config(a.img_dir, [], 'cold')
    runs = []                                   # per repeat: parts 1 and 4, back to back
    for _ in range(a.repeats):
        runs.append({'course': seconds_per_epoch(course, a.epochs), 'ours': seconds_per_epoch(ours, 20 * a.epochs),
                     'warm': seconds_per_epoch(ours, 20 * a.epochs), 'cold': seconds_per_epoch(cold, 20 * a.epochs)})
    spe = {k: statistics.median(r[k] for r in runs) for k in ('course', 'ours')}
    per_mode = {k: statistics.median(r[k] for r in runs) for k in ('warm', 'cold')}
    speedups = [r['course'] / r['ours'] for r in runs]
    cold_over_warm = [r['cold'] / r['warm'] for r in runs]
    print(f"1. seconds/epoch  course {spe['course']:.3f}  ours {spe['ours']:.4f}  ratio {statistics.median(speedups):.1f}x "
          f"(median of {a.repeats}, range {min(speedups):.1f}-{max(speedups):.1f})")
    flops = {'course': flops_per_epoch(course), 'ours': flops_per_epoch(ours)}
    peak, achieved = matmul_peak_gflops(), flops['ours'] / spe['ours'] / 1e9
    print(f"2. GFLOP/epoch    course {flops['course'] / 1e9:.1f}  ours {flops['ours'] / 1e9:.2f}; ours runs at "
          f"{achieved:.1f} GFLOP/s = {100 * achieved / peak:.0f}% of the fp32 matmul peak {peak:.1f} GFLOP/s")
    curves = {}
    for name, cfg in (('course', course), ('ours', ours)):
        curves[name], n = psnr_within(cfg, a.budget)
        print(f'3. {name:6s} PSNR within {a.budget:g} s: {at_budget(curves, a.budget)[name]} dB ({n} epochs)')
    print(f"4. seconds/epoch  warm {per_mode['warm']:.4f}  cold {per_mode['cold']:.4f}  cold/warm "
          f"{statistics.median(cold_over_warm):.2f} (median of {a.repeats}, range {min(cold_over_warm):.2f}-"
          f"{max(cold_over_warm):.2f})")
    result = {'device': abp.device, 'threads': torch.get_num_threads(), 'torch': torch.__version__,
              'seconds_per_epoch': {'course': round(spe['course'], 4), 'ours': round(spe['ours'], 5)},
              'repeats': a.repeats, 'speedup_per_epoch': round(statistics.median(speedups), 2),
              'speedup_per_epoch_range': [round(min(speedups), 2), round(max(speedups), 2)],
              'gflop_per_epoch': {'course': round(flops['course'] / 1e9, 3), 'ours': round(flops['ours'] / 1e9, 4)},
              'achieved_gflops_ours': round(achieved, 2), 'matmul_peak_gflops': round(peak, 2),
              'budget_seconds': a.budget, 'psnr_curve': curves, 'psnr_at_budget': at_budget(curves, a.budget),
              'mode_seconds_per_epoch': {k: round(v, 5) for k, v in per_mode.items()},
              'cold_over_warm': round(statistics.median(cold_over_warm), 3),
              'cold_over_warm_range': [round(min(cold_over_warm), 3), round(max(cold_over_warm), 3)],
              'timings': [{k: round(v, 5) for k, v in r.items()} for r in runs]}
    abp.write_json(result, out / 'bench.json')
    plot_curves(result, out / 'bench_quality_vs_time.png')
    print(f"wrote {out / 'bench.json'} and {out / 'bench_quality_vs_time.png'}")


if __name__ == '__main__':
    main()
