"""Benchmark: the course skeleton's configuration against this project's defaults, in one process.

    python bench/bench.py --img_dir ../shared/data/lion_tiger            # about 4 minutes on 2 cores

Prints and writes output/bench.json and output/bench_quality_vs_time.png (report/make_tex.py turns the
JSON into the report's numbers):
  1. seconds per epoch of each configuration (warm start) and their ratio;
  2. FLOPs per epoch of ours (torch's FLOP counter), the GFLOP/s achieved, and this machine's fp32
     matmul peak measured in the same run;
  3. reconstruction PSNR reached by each configuration within the same wall-clock budget.
Timings are only compared inside one run: machines are noisy, ratios are the figures to quote.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import abp  # noqa: E402

# The skeleton's generator is a 512-channel DCGAN-style stack; ours is 256 -> 16 channels (see README).
COURSE = ['--gen_width', '32', '--gen_max_ch', '512', '--langevin_num_steps', '120', '--langevin_step_size', '0.05',
          '--lr', '4e-4', '--gamma', '0.996', '--mse_sigma', '1', '--no-z_whiten', '--langevin_step_cap', '0']
OURS = []


def config(img_dir, extra):
    return abp.parse_args(['--img_dir', img_dir, '--start', 'warm', *extra])


def setup(args, x):
    return abp.new_state(args, x.shape[0])


def epoch(args, state, x):
    """One warm-start epoch exactly as abp.train does it (the epoch count schedules the step cap's widths)."""
    out = abp.train_epoch(state, x, args, 'warm')
    state['epoch'] += 1
    return out


def seconds_per_epoch(args, x, n):
    state = setup(args, x)
    epoch(args, state, x)                                      # warm-up
    t = time.perf_counter()
    for _ in range(n):
        epoch(args, state, x)
    return (time.perf_counter() - t) / n


def flops_per_epoch(args, x):
    """K Langevin passes (forward + gradient for z), one learning step and the step cap's share of a
    posterior-width measurement, counted by torch's FLOP counter. Its hooks do not support
    torch.autograd.grad, so the z-gradient is taken with backward(inputs=[z]) here: the same kernels."""
    from torch.utils.flop_counter import FlopCounterMode
    state = setup(args, x)
    model, steps = state['model'], abp.chain_settings('warm', args)[0]
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


def matmul_peak_gflops(n=2048, reps=10):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def psnr_within(args, x, budget, every=5.0):
    """Train for `budget` seconds; (elapsed, PSNR) every `every` seconds."""
    state = setup(args, x)
    curve, t0, next_mark, epochs = [], time.perf_counter(), 0.0, 0
    while True:
        _, x_hat = epoch(args, state, x)
        epochs += 1
        el = time.perf_counter() - t0
        if el >= next_mark or el >= budget:
            curve.append((round(el, 2), round(abp.psnr(x_hat, x).mean().item(), 3)))
            next_mark += every
        if el >= budget:
            return curve, epochs


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--img_dir', default='data', help='training images (default: data)')
    p.add_argument('--out_dir', default='output', help='where bench.json and the plot go (default: output)')
    p.add_argument('--budget', type=float, default=60.0, help='wall-clock seconds per configuration for 3. (default: 60)')
    p.add_argument('--epochs', type=int, default=3, help='timed epochs of the course configuration for 1.; ours runs 20x more (default: 3)')
    a = p.parse_args()
    try:
        x = abp.load_images(a.img_dir, abp.default_transform(128))[0].to(abp.device)
        x = x.contiguous(memory_format=torch.channels_last)              # as abp.run holds it
    except abp.UserError as e:
        sys.exit(f'bench.py: error: {e}')
    course, ours = config(a.img_dir, COURSE), config(a.img_dir, OURS)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    spe_course = seconds_per_epoch(course, x, a.epochs)
    spe_ours = seconds_per_epoch(ours, x, 20 * a.epochs)
    print(f'1. seconds/epoch  course {spe_course:.3f}  ours {spe_ours:.4f}  ratio {spe_course / spe_ours:.1f}x')
    f_course, f_ours = flops_per_epoch(course, x), flops_per_epoch(ours, x)
    peak = matmul_peak_gflops()
    achieved = f_ours / spe_ours / 1e9
    print(f'2. GFLOP/epoch    course {f_course / 1e9:.1f}  ours {f_ours / 1e9:.2f}; ours runs at {achieved:.1f} GFLOP/s '
          f'= {100 * achieved / peak:.0f}% of the fp32 matmul peak {peak:.1f} GFLOP/s')
    curves = {}
    for name, args in (('course', course), ('ours', ours)):
        curves[name], n_ep = psnr_within(args, x, a.budget)
        print(f'3. {name:6s} PSNR after {a.budget:.0f} s: {curves[name][-1][1]:.2f} dB ({n_ep} epochs)')

    result = {'device': abp.device, 'threads': torch.get_num_threads(), 'torch': torch.__version__,
              'seconds_per_epoch': {'course': round(spe_course, 4), 'ours': round(spe_ours, 5)},
              'speedup_per_epoch': round(spe_course / spe_ours, 2),
              'gflop_per_epoch': {'course': round(f_course / 1e9, 3), 'ours': round(f_ours / 1e9, 4)},
              'achieved_gflops_ours': round(achieved, 2), 'matmul_peak_gflops': round(peak, 2),
              'budget_seconds': a.budget, 'psnr_curve': curves,
              'psnr_at_budget': {k: v[-1][1] for k, v in curves.items()}}
    abp.write_json(result, out / 'bench.json')
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for name, c in curves.items():
        ax.plot([t for t, _ in c], [v for _, v in c], marker='.', label=f'{name} ({result["seconds_per_epoch"][name]:.3f} s/epoch)')
    ax.set_xlabel('wall-clock seconds (warm start, same process)')
    ax.set_ylabel('reconstruction PSNR (dB)')
    ax.grid(alpha=0.3)
    ax.legend()
    abp.save_fig(fig, out / 'bench_quality_vs_time.png')
    print(f'wrote {out / "bench.json"} and {out / "bench_quality_vs_time.png"}')


if __name__ == '__main__':
    main()
