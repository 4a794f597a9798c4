"""Learning from incomplete images: recovery of hidden pixels, ABP against two baselines, cached.

    python bench/occlusion.py --img_dir ../shared/data/lion_tiger        # about 25 minutes on 2 cores

For each kind of occlusion (pixels:0.5, pixels:0.7, pixels:0.9, block:32, block:64) trains both start modes on
the occluded images (`python abp.py --occlude KIND`, --epochs epochs, and any other flag given here) into
OUT_DIR/occlusion/<kind>/, re-used while every flag, defaults included, is unchanged. Prints the PSNR of the
recovered hidden pixels for warm and cold ABP, the per-pixel mean of the observed values and a rank-2 PCA fitted
to the observed pixels, and the guard's recoveries in each run; writes OUT_DIR/occlusion/occlusion.json and
occlusion.jpg (true images, occluded input, ABP and PCA recoveries for two kinds), the figure from the runs'
checkpoints: where git left none, it stays as it is unless --figure re-trains those two kinds.
"""
from pathlib import Path

import torch

from common import abp, checkpoints, finished, load_run, parser, run_cached

KINDS = ['pixels:0.5', 'pixels:0.7', 'pixels:0.9', 'block:32', 'block:64']
FIGURE_KINDS = ['pixels:0.7', 'block:64']


def mean_fill(x, mask):
    """Baseline: each hidden pixel gets its mean over the images where it is observed (the mean of all
    observed values where it is observed in none)."""
    m = (mask > 0).expand_as(x).to(x.dtype)
    count, total = m.sum(0), (x * m).sum(0)
    pixel_mean = torch.where(count > 0, total / count.clamp_min(1), total.sum() / count.sum().clamp_min(1))
    return torch.where(m > 0, x, pixel_mean)


def pca_fill(x, mask, k=2, iters=100):
    """Baseline: hidden pixels filled by a rank-k PCA of the observed ones, by iterative imputation
    (fill with mean_fill, fit PCA, refill the hidden pixels from its reconstruction, repeat)."""
    m, filled = (mask > 0).expand_as(x), mean_fill(x, mask)
    for _ in range(iters):
        filled = torch.where(m, x, abp.pca_recon(filled, k))
    return filled


def baselines(argv):
    """PSNR on the hidden pixels of the true images for the two baselines, on the images and masks of the run argv:
    {'mean_hidden_psnr_db', 'pca_hidden_psnr_db'}."""
    args = abp.parse_args(argv)
    x = abp.load_data(args).batch(None).cpu()
    mask = abp.make_masks(args.occlude, len(x), args.img_size, args.seed).float()
    x_obs = torch.where(mask > 0, x, torch.zeros(()))
    return {f'{k}_hidden_psnr_db': round(abp.psnr(fill(x_obs, mask), x, 1 - mask).mean().item(), 3)
            for k, fill in (('mean', mean_fill), ('pca', pca_fill))}


def recoveries(run_dir, kind):
    """Rows for the figure from a finished run's warm checkpoint: occluded input, warm (the recovery its metrics
    measure), PCA (12 images at most), and the true images."""
    args, state = load_run(Path(run_dir) / 'warm')
    data = abp.load_data(args)
    x, mask, keep = data.batch(None).cpu(), state.mask.float(), abp.shown_images(len(data))
    return [(f'input: {kind}', abp.blacken_hidden(x, mask)[keep]),
            ('ABP (warm)', state.recon),                  # the last epoch's g(z), as abp.py's metrics measure it
            ('PCA, k=2', pca_fill(torch.where(mask > 0, x, torch.zeros(())), mask)[keep])], x[keep]


def main():
    p = parser(__doc__, 'occlusion/')
    p.add_argument('--epochs', type=int, default=1000, help='epochs per start mode (default: 1000)')
    p.add_argument('--kinds', nargs='+', default=KINDS, help=f'occlusions (default: {" ".join(KINDS)})')
    p.add_argument('--figure', action='store_true', help="re-train the figure's runs if their checkpoints are missing")
    a, extra = p.parse_known_args()                   # any other flag is passed on to abp.py
    out, rows = Path(a.out_dir) / 'occlusion', []
    for kind in a.kinds:
        argv = ['--img_dir', a.img_dir, '--out_dir', str(out / kind.replace(':', '_')), '--occlude', kind,
                '--n_epochs', str(a.epochs), *extra]
        m = finished(run_cached(argv, kind, need_checkpoints=a.figure and kind in FIGURE_KINDS), 'occlusion.py', kind)
        occ = {mode: m[mode]['occlusion'] for mode in ('warm', 'cold')}
        rows.append({'kind': kind, 'epochs': a.epochs, 'hidden_fraction': occ['warm']['hidden_fraction'],
                     'warm': occ['warm'], 'cold': occ['cold'], **baselines(argv),
                     'guard_events': {mode: len(m[mode]['guard_events']) for mode in ('warm', 'cold')}})
    print(f"\n{'kind':11s} {'hidden':>6s} {'warm':>6s} {'cold':>6s} {'mean':>6s} {'PCA':>6s}   (PSNR of hidden pixels, dB)"
          "  guard recoveries warm/cold")
    for r in rows:
        print(f"{r['kind']:11s} {100 * r['hidden_fraction']:5.1f}% {r['warm']['abp_hidden_psnr_db']:6.2f} "
              f"{r['cold']['abp_hidden_psnr_db']:6.2f} {r['mean_hidden_psnr_db']:6.2f} {r['pca_hidden_psnr_db']:6.2f}   "
              f"{r['guard_events']['warm']}/{r['guard_events']['cold']}")
    abp.write_json(rows, out / 'occlusion.json')
    print(f"wrote {out / 'occlusion.json'}")
    shown = [k for k in FIGURE_KINDS if k in a.kinds]
    if shown and all(checkpoints(out / k.replace(':', '_'), ['warm']) for k in shown):
        figure_rows, truth = [], None
        for kind in shown:
            more, truth = recoveries(out / kind.replace(':', '_'), kind)
            figure_rows += more
        abp.plot_recon_comparison([('true', truth)] + figure_rows, out / 'occlusion.jpg',
                                  f'learning from incomplete images ({a.epochs} epochs): hidden pixels black in the input')
        print(f"wrote {out / 'occlusion.jpg'}")
    elif shown:
        print(f"{out / 'occlusion.jpg'} left as it is: the runs' checkpoints are missing (--figure re-trains them)")


if __name__ == '__main__':
    main()
