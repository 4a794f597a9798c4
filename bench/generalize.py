"""Generalisation: abp.py's default flags on folders that are not lions and tigers.

    pip install scikit-image                                    # the folders are made from its sample photos
    python bench/generalize.py                                  # about 40 minutes on 2 cores

Makes the folders of bench/make_folders.py (photos, faces, textures, gray, shapes: 12-16 images each,
numbered and unusual file names among them) under --data_dir, runs `python abp.py` with the default
flags (and any other flag given here) on each into OUT_DIR/generalize/<folder>/, re-used while every
resolved flag, defaults included, is unchanged and its checkpoints are there (the figure reads them), and
prints per folder warm and cold PSNR, sample coverage, guard recoveries and seconds; a run the guard gave
up on is a row from the checkpoints it kept. A run whose final PSNR is 6 dB or more below its best is
flagged as collapsed. Two more runs take the safety features away on the photos folder (warm start
without the Langevin step cap, with and without the guard). Writes OUT_DIR/generalize.json and
OUT_DIR/generalize.jpg (training images and reconstructions per folder).
"""
from pathlib import Path

import torch

from common import abp, load_generator, parser, read_checkpoint, run_cached
from make_folders import FOLDERS, make_folders


def collapsed(out_dir, mode):
    """Did this mode's reconstruction PSNR end far below its best (the loss curve's PSNR points)?"""
    curve = read_checkpoint(Path(out_dir) / mode)['stats']['psnr_db']
    return bool(curve) and curve[-1] < max(curve) - 6.0


WITHOUT = [  # (tag, flags, note): the photos folder, warm start, with the safety features taken away
    ('nocap_noguard', ['--start', 'warm', '--langevin_step_cap', '0', '--no-guard'], 'no step cap, no guard'),
    ('nocap', ['--start', 'warm', '--langevin_step_cap', '0'], 'no step cap'),
]


def mode_row(out, mode, metrics):
    """One mode's cells: from its metrics, or, if abp.py gave up before writing them, from its checkpoint."""
    if metrics is not None:
        return {'recon_psnr_db': metrics['recon_psnr_db'], 'sample_nn_psnr_db_median': metrics['sample_nn_psnr_db_median'],
                'sample_coverage': metrics['sample_coverage'], 'guard_events': len(metrics['guard_events']),
                'z_std': metrics['z_std'], 'first_layer_norm': metrics['first_layer_norm'],
                'collapsed': collapsed(out, mode), 'seconds': metrics['seconds']}
    ck = read_checkpoint(Path(out) / mode)
    return {'recon_psnr_db': round(ck['stats']['psnr_db'][-1], 3), 'guard_events': len(ck['health']['events']),
            'gave_up': True, 'collapsed': collapsed(out, mode), 'seconds': ck['seconds']}


def run_folder(name, folder, out, extra, note='defaults'):
    """abp.py on one folder (cached; its figure needs the checkpoints); its row of the table."""
    row = {'folder': name, 'note': note}
    m = run_cached(['--img_dir', str(folder), '--out_dir', str(out), *extra], f'{name} ({note})', need_checkpoints=True)
    if 'diverged' in m:              # abp.py gave up (the guard's last word): what it kept still counts
        row['stopped'] = m['stopped']
        m = {mode: None for mode in m['checkpoints']}
    for mode in [k for k in ('warm', 'cold') if k in m]:
        row[mode] = mode_row(out, mode, m[mode])
    row.update({k: m[k] for k in ('n_images', 'total_seconds') if k in m})
    row['pca_psnr_db'] = m['pca']['recon_psnr_db'] if 'pca' in m else None
    if row.get('warm') and row.get('cold'):          # how far cold start ends below warm start
        row['cold_minus_warm_db'] = round(row['cold']['recon_psnr_db'] - row['warm']['recon_psnr_db'], 2)
    return row


def cell(row, mode, key, fmt):
    return format(row[mode][key], fmt) if mode in row and key in row[mode] else '-'


def figure(made, out_dir, path, per_folder=3):
    """output/generalize.jpg: a row per folder: `per_folder` training images, then their warm and their cold
    reconstructions (the modes that were run, e.g. warm only with --start warm), the groups apart by a blank tile."""
    rows, shown = [], []
    for name, folder in made.items():
        shown = [m for m in ('warm', 'cold') if (Path(out_dir) / name / m / 'checkpoint.pt').exists()]
        groups = []
        for mode in shown:
            ck, args, model = load_generator(Path(out_dir) / name / mode)
            if not groups:                                  # the training images, once per folder
                x = abp.load_images(folder, abp.default_transform(args.img_size))[0]
                keep = abp.shown_images(len(x), per_folder)
                groups.append(x[keep])
            groups.append(abp.generate(model.Gnet, ck['z'][keep]))
        blank = torch.ones_like(groups[0][:1])
        rows.append((name, torch.cat([t for g in groups for t in (g, blank)][:-1])))
    abp.plot_recon_comparison(rows, path, f'each row: {per_folder} training images | '
                                          + ' | '.join(f'their {m} reconstructions' for m in shown))


def main():
    p = parser(__doc__, 'generalize/ and generalize.json', img_dir=False)
    p.add_argument('--data_dir', default='/tmp/abp_folders', help='where the folders are made (default: /tmp/abp_folders)')
    p.add_argument('--folders', nargs='+', default=list(FOLDERS), help=f'which folders (default: {" ".join(FOLDERS)})')
    a, extra = p.parse_known_args()                   # any other flag is passed on to abp.py
    made = make_folders(a.data_dir, kinds=a.folders)
    rows = [run_folder(name, folder, Path(a.out_dir) / 'generalize' / name, extra) for name, folder in made.items()]
    if 'photos' in made and not set(extra) - {'--parallel'}:              # the collapse the step cap and the guard are there for
        rows += [run_folder('photos', made['photos'], Path(a.out_dir) / 'generalize' / f'photos_{tag}', flags, note)
                 for tag, flags, note in WITHOUT]
    print(f"\n{'folder':9s} {'run':22s} {'warm dB':>8s} {'cold dB':>8s} {'cover w/c':>10s} {'guard w/c':>9s} "
          f"{'collapse':>8s} {'s':>5s}")
    for r in rows:
        gone = any(r.get(m, {}).get('collapsed') for m in ('warm', 'cold'))
        print(f"{r['folder']:9s} {r['note']:22s} {cell(r, 'warm', 'recon_psnr_db', '8.2f'):>8s} "
              f"{cell(r, 'cold', 'recon_psnr_db', '8.2f'):>8s} "
              f"{cell(r, 'warm', 'sample_coverage', 'd'):>4s}/{cell(r, 'cold', 'sample_coverage', 'd'):<4s} "
              f"{cell(r, 'warm', 'guard_events', 'd'):>4s}/{cell(r, 'cold', 'guard_events', 'd'):<4s} "
              f"{str(gone):>8s} {r.get('total_seconds', 0):5.0f}" + (f"  stopped: {r['stopped']}" if 'stopped' in r else ''))
    out = Path(a.out_dir) / 'generalize.json'
    defaults = [r for r in rows if r['note'] == 'defaults']
    totals = {'runs': sum(m in r for r in defaults for m in ('warm', 'cold')),
              'runs_with_guard_events': sum(r[m].get('guard_events', 0) > 0 for r in defaults
                                            for m in ('warm', 'cold') if m in r),
              'guard_events': sum(r[m].get('guard_events', 0) for r in defaults for m in ('warm', 'cold') if m in r)}
    print(f"default runs: {totals['runs']}, with a guard event: {totals['runs_with_guard_events']} "
          f"({totals['guard_events']} events)")
    abp.write_json({'flags': extra, 'folders': rows, 'defaults': totals}, out)
    figure(made, Path(a.out_dir) / 'generalize', Path(a.out_dir) / 'generalize.jpg')
    print(f"wrote {out} and {Path(a.out_dir) / 'generalize.jpg'}")


if __name__ == '__main__':
    main()
