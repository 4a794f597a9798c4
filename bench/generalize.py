"""Generalisation: abp.py's default flags on folders that are not lions and tigers.

    pip install scikit-image                                    # the folders are made from its sample photos
    python bench/generalize.py                                  # about 50 minutes on 2 cores

Makes the folders of bench/make_folders.py (photos, faces, textures, gray, shapes: 12-16 images each) under
--data_dir, runs `python abp.py` with the default flags (and any other flag given here) on each into
OUT_DIR/generalize/<folder>/, re-used while every flag, defaults included, is unchanged, and one more without the
step cap on the photos (warm start); a run the guard gave up on is a row from the state it kept, a run whose final
PSNR is 6 dB or more below the best its log shows is flagged as collapsed. Writes OUT_DIR/generalize/generalize.json
and generalize.jpg (training images and reconstructions per folder) from the runs' checkpoints: where git left
none, the figure stays as it is unless --figure re-trains the runs.
"""
import re
from pathlib import Path

import torch

from common import abp, checkpoints, load_run, parser, run_cached
from make_folders import FOLDERS, make_folders

def collapsed(mode_dir, final_db):
    """Did this mode end 6 dB or more below the best reconstruction PSNR its output.log shows since its last start?"""
    last = (Path(mode_dir) / 'output.log').read_text().rsplit(' start: ', 1)[-1]
    logged = [float(v) for v in re.findall(r' psnr +([\d.]+) dB', last)]
    return final_db is not None and final_db < max(logged, default=final_db) - 6.0


def mode_row(out, mode, m, kept):
    """One mode's cells: from its metrics, or, if the guard gave up before abp.py wrote them, from what it kept."""
    if m is None:
        return {'recon_psnr_db': kept['recon_psnr_db'], 'guard_events': kept['guard_events'], 'gave_up': True,
                'collapsed': collapsed(Path(out) / mode, kept['recon_psnr_db']), 'seconds': kept['seconds']}
    return {**{k: m[k] for k in ('recon_psnr_db', 'sample_nn_psnr_db_median', 'sample_coverage')},
            'guard_events': len(m['guard_events']), 'z_std': m['z_std'], 'first_layer_norm': m['first_layer_norm'],
            'collapsed': collapsed(Path(out) / mode, m['recon_psnr_db']), 'seconds': m['seconds']}


def run_folder(name, folder, out, extra, figure, note='defaults'):
    """abp.py on one folder (cached; with `figure`, only while its checkpoints are there); its row of the table."""
    row = {'folder': name, 'note': note}
    m = run_cached(['--img_dir', str(folder), '--out_dir', str(out), *extra], f'{name} ({note})', need_checkpoints=figure)
    kept = m.get('kept', {})
    if 'diverged' in m:              # abp.py gave up (the guard's last word): what it kept still counts
        row['stopped'] = m['stopped']
        m = {mode: None for mode in m['checkpoints']}
    for mode in [k for k in ('warm', 'cold') if k in m]:
        row[mode] = mode_row(out, mode, m[mode], kept.get(mode))
    row.update({k: m[k] for k in ('n_images', 'total_seconds') if k in m})
    row['pca_psnr_db'] = m['pca']['recon_psnr_db'] if 'pca' in m else None
    if row.get('warm') and row.get('cold'):          # how far cold start ends below warm start
        row['cold_minus_warm_db'] = round(row['cold']['recon_psnr_db'] - row['warm']['recon_psnr_db'], 2)
    return row


def figure(made, out_dir, path, per_folder=3):
    """generalize.jpg: a row per folder: `per_folder` training images, then their warm and their cold
    reconstructions (the modes that were run), the groups apart by a blank tile."""
    rows, shown = [], []
    for name, folder in made.items():
        shown = checkpoints(Path(out_dir) / name, ['warm', 'cold'])
        groups = []
        for mode in shown:
            args, state = load_run(Path(out_dir) / name / mode)
            if not groups:                                  # the training images, once per folder
                data = abp.load_data(args)
                keep = abp.shown_images(len(data), per_folder)
                groups.append(data.batch(keep).cpu())
            groups.append(abp.generate(state.model.Gnet, state.z[keep]))
        blank = torch.ones_like(groups[0][:1])
        rows.append((name, torch.cat([t for g in groups for t in (g, blank)][:-1])))
    abp.plot_recon_comparison(rows, path, f'each row: {per_folder} training images | '
                                          + ' | '.join(f'their {m} reconstructions' for m in shown))


def main():
    p = parser(__doc__, 'generalize/', img_dir=False)
    p.add_argument('--data_dir', default='/tmp/abp_folders', help='where the folders are made (default: /tmp/abp_folders)')
    p.add_argument('--folders', nargs='+', default=list(FOLDERS), help=f'which folders (default: {" ".join(FOLDERS)})')
    p.add_argument('--figure', action='store_true', help='re-train the runs whose checkpoints are missing, to draw the figure')
    a, extra = p.parse_known_args()                   # any other flag is passed on to abp.py
    made, out = make_folders(a.data_dir, kinds=a.folders), Path(a.out_dir) / 'generalize'
    rows = [run_folder(name, folder, out / name, extra, a.figure) for name, folder in made.items()]
    if 'photos' in made and not extra:               # the photos without the step cap, warm start
        rows.append(run_folder('photos', made['photos'], out / 'photos_nocap', ['--start', 'warm', '--langevin_step_cap', '0'],
                               False, 'no step cap'))
    for r in rows:
        cells = [f"{m} {r[m]['recon_psnr_db']:.2f} dB, {r[m]['guard_events']} guard events"
                 + (' (collapsed)' if r[m]['collapsed'] else '') for m in ('warm', 'cold') if m in r]
        print(f"{r['folder']:9s} {r['note']:12s} {'; '.join(cells)}" + (f"; stopped: {r['stopped']}" if 'stopped' in r else ''))
    runs = [r[m] for r in rows if r['note'] == 'defaults' for m in ('warm', 'cold') if m in r]
    totals = {'runs': len(runs), 'runs_with_guard_events': sum(m['guard_events'] > 0 for m in runs),
              'guard_events': sum(m['guard_events'] for m in runs)}
    print(f"default runs: {totals['runs']}, with a guard event: {totals['runs_with_guard_events']} "
          f"({totals['guard_events']} events)")
    abp.write_json({'flags': extra, 'folders': rows, 'defaults': totals}, out / 'generalize.json')
    print(f"wrote {out / 'generalize.json'}")
    if all(checkpoints(out / name, ['warm', 'cold']) for name in made):
        figure(made, out, out / 'generalize.jpg')
        print(f"wrote {out / 'generalize.jpg'}")
    else:
        print(f"{out / 'generalize.jpg'} left as it is: the runs' checkpoints are missing (--figure re-trains them)")


if __name__ == '__main__':
    main()
