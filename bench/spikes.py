"""Warm-start spikes: how far the reconstruction PSNR falls below its best so far, epoch by epoch, guard off.

    pip install scikit-image
    python bench/spikes.py                                       # about 25 minutes on 2 cores

On a folder where the guard had to step in on a default run (bench/make_folders.py's faces: 12 faces, 25 px
upscaled), runs `python abp.py --start warm --no-guard --n_stats 1` for --epochs epochs with each variant's
flags (cached like every benchmark), reads every epoch's PSNR from the loss curve its checkpoint keeps, and
prints and writes OUT_DIR/spikes.json: per variant the final PSNR, the largest drop below the best so far and
its epoch, and how many epochs sat 3 dB or more below the best. A drop of 6 dB is what the guard acts on.
"""
from pathlib import Path

from common import abp, parser, read_checkpoint, run_cached
from make_folders import make_folders

VARIANTS = [  # (key, flags changed from the defaults): the optimiser and the step cap's schedule
    ('defaults', []),
    ('beta1_0.7', ['--beta1', '0.7']),
    ('beta1_0.9', ['--beta1', '0.9']),
    ('beta2_0.99', ['--beta2', '0.99']),
    ('curvature_every_5', ['--curvature_every', '5']),
    ('curvature_every_2', ['--curvature_every', '2']),
]


def drops(curve, below=3.0):
    """(largest drop below the best so far, its 1-based index, how many points are `below` dB or more under it)."""
    best, worst, at, n = -float('inf'), 0.0, 0, 0
    for i, v in enumerate(curve):
        best = max(best, v)
        worst, at = (best - v, i + 1) if best - v > worst else (worst, at)
        n += best - v >= below
    return worst, at, n


def main():
    p = parser(__doc__, 'spikes/ and spikes.json', img_dir=False)
    p.add_argument('--data_dir', default='/tmp/abp_folders', help='where the folders are made (default: /tmp/abp_folders)')
    p.add_argument('--folder', default='faces', help='which of them (default: faces)')
    p.add_argument('--epochs', type=int, default=1000, help='epochs per variant (default: 1000)')
    p.add_argument('--threads', type=int, default=0, help='CPU threads for torch, 0 = all (default: 0)')
    a = p.parse_args()
    folder = make_folders(a.data_dir, kinds=(a.folder,))[a.folder]
    rows = []
    for key, flags in VARIANTS:
        out = Path(a.out_dir) / 'spikes' / key
        run_cached(['--img_dir', str(folder), '--out_dir', str(out), '--start', 'warm', '--no-guard', '--n_epochs',
                    str(a.epochs), '--n_stats', '1', '--n_plot', str(a.epochs), '--threads', str(a.threads), *flags],
                   key, need_checkpoints=True)
        stats = read_checkpoint(out / 'warm')['stats']
        worst, at, n = drops(stats['psnr_db'])
        rows.append({'key': key, 'flags': ' '.join(flags), 'final_psnr_db': round(stats['psnr_db'][-1], 2),
                     'largest_drop_db': round(worst, 2), 'at_epoch': at, 'epochs_3db_below_best': n})
        print(f"{key:18s} final {rows[-1]['final_psnr_db']:6.2f} dB  largest drop {worst:5.2f} dB at epoch {at:4d}  "
              f"{n:4d} epochs >= 3 dB below the best")
    abp.write_json({'folder': a.folder, 'epochs': a.epochs, 'runs': rows}, Path(a.out_dir) / 'spikes.json')
    print(f"wrote {Path(a.out_dir) / 'spikes.json'}")


if __name__ == '__main__':
    main()
