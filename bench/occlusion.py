"""Learning from incomplete images: recovery of hidden pixels, ABP against two baselines, cached.

    python bench/occlusion.py --img_dir ../shared/data/lion_tiger        # about 25 minutes on 2 cores

For each kind of occlusion (pixels:0.5, pixels:0.7, pixels:0.9, block:32, block:64) trains both start
modes on the occluded images (`python abp.py --occlude KIND`, --epochs epochs, and any other flag
given here) into OUT_DIR/occlusion/<kind>/, re-used while every resolved flag, defaults included, is
unchanged (and, for the figure's two kinds, its checkpoints are there). Prints the PSNR of the recovered
hidden pixels for warm and cold ABP, the per-pixel mean of the observed values and a rank-2 PCA
fitted to the observed pixels, and the guard's recoveries in each run; writes OUT_DIR/occlusion.json and
OUT_DIR/occlusion.jpg (true images, occluded input, ABP and PCA recoveries for two kinds).
"""
from pathlib import Path

import torch

from common import abp, finished, load_generator, parser, run_cached

KINDS = ['pixels:0.5', 'pixels:0.7', 'pixels:0.9', 'block:32', 'block:64']
FIGURE_KINDS = ['pixels:0.7', 'block:64']


def recoveries(out_dir, kind, img_dir):
    """Rows for the figure from a finished run's checkpoints: true, occluded input, warm, PCA (12 images at most)."""
    ck, args, model = load_generator(Path(out_dir) / 'warm')
    x = abp.load_images(img_dir, abp.default_transform(args.img_size))[0]
    mask, keep = ck['mask'], abp.shown_images(len(x))
    x_obs = torch.where(mask > 0, x, torch.zeros(()))
    return [(f'input: {kind}', abp.blacken_hidden(x, mask)[keep]),
            ('ABP (warm)', abp.generate(model.Gnet, ck['z'])[keep]),
            ('PCA, k=2', abp.pca_fill(x_obs, mask)[keep])], x[keep]


def main():
    p = parser(__doc__, 'occlusion/ and occlusion.json')
    p.add_argument('--epochs', type=int, default=1000, help='epochs per start mode (default: 1000)')
    p.add_argument('--kinds', nargs='+', default=KINDS, help=f'occlusions (default: {" ".join(KINDS)})')
    a, extra = p.parse_known_args()                   # any other flag is passed on to abp.py
    rows = []
    for kind in a.kinds:
        out = Path(a.out_dir) / 'occlusion' / kind.replace(':', '_')
        argv = ['--img_dir', a.img_dir, '--out_dir', str(out), '--occlude', kind, '--n_epochs', str(a.epochs), *extra]
        figure = kind in FIGURE_KINDS                 # its checkpoints are read for occlusion.jpg
        m = finished(run_cached(argv, kind, need_checkpoints=figure), 'occlusion.py', kind)
        occ = {mode: m[mode]['occlusion'] for mode in ('warm', 'cold')}
        rows.append({'kind': kind, 'epochs': a.epochs, 'hidden_fraction': occ['warm']['hidden_fraction'],
                     'warm': occ['warm'], 'cold': occ['cold'],
                     'mean_hidden_psnr_db': occ['warm']['mean_hidden_psnr_db'],
                     'pca_hidden_psnr_db': occ['warm']['pca_hidden_psnr_db'],
                     'guard_events': {mode: len(m[mode]['guard_events']) for mode in ('warm', 'cold')}})
    print(f"\n{'kind':11s} {'hidden':>6s} {'warm':>6s} {'cold':>6s} {'mean':>6s} {'PCA':>6s}   (PSNR of hidden pixels, dB)"
          "  guard recoveries warm/cold")
    for r in rows:
        print(f"{r['kind']:11s} {100 * r['hidden_fraction']:5.1f}% {r['warm']['abp_hidden_psnr_db']:6.2f} "
              f"{r['cold']['abp_hidden_psnr_db']:6.2f} {r['mean_hidden_psnr_db']:6.2f} {r['pca_hidden_psnr_db']:6.2f}   "
              f"{r['guard_events']['warm']}/{r['guard_events']['cold']}")
    abp.write_json(rows, Path(a.out_dir) / 'occlusion.json')
    figure_rows, truth = [], None
    for kind in [k for k in FIGURE_KINDS if k in a.kinds]:
        more, truth = recoveries(Path(a.out_dir) / 'occlusion' / kind.replace(':', '_'), kind, a.img_dir)
        figure_rows += more
    if figure_rows:
        abp.plot_recon_comparison([('true', truth)] + figure_rows, Path(a.out_dir) / 'occlusion.jpg',
                                  f'learning from incomplete images ({a.epochs} epochs): hidden pixels black in the input')
    print(f"wrote {Path(a.out_dir) / 'occlusion.json'} and {Path(a.out_dir) / 'occlusion.jpg'}")


if __name__ == '__main__':
    main()
