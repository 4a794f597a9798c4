"""Folders of any size: memory, time and learning in mini-batches, on folders generated from photo crops.

    pip install scikit-image                     # the crops come from its bundled sample photos
    python bench/scale.py                        # about 100 minutes on 2 cores (--parts to run some)

The parts (--parts, default all; each writes its key of OUT_DIR/scale/scale.json, keeping the others'):
  memory  one warm epoch (`python abp.py --start warm --n_epochs 1 --batch_size 64`, a fresh process each) on
          1,000 and on 10,000 crops at 128 px: its peak resident memory and seconds per epoch, and their ratio
  large   both modes on 5,000 crops at 64 px for --epochs epochs (`python abp.py --img_size 64`): PSNR per
          epoch, images per second, PCA(2); its reconstruction and interpolation figures -> large_*.jpg
  photos  both modes with every default on 100 crops at 128 px (--photos_epochs, default the default 2,000):
          warm, cold and PCA(2) reconstruction PSNR, each mode's seconds per epoch and samples' coverage;
          its reconstruction figure -> photos_recon.jpg
  occlude the memory part's epoch on 10,000 crops with `--occlude pixels:0.5` and without: peak memory, ratio
The crops (--data_dir) are random squares of 20-90% of a photo's shorter side, mirrored and brightened at
random (bench/make_folders.py), so that no two images are alike; the same seed makes the same files.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import abp
from make_folders import COLOUR, jitter, random_crop, skimage_data

ROOT = Path(__file__).resolve().parents[1]
# peak memory of a child process, in MiB (ru_maxrss is in KiB on Linux), read by a process that starts only it
PEAK_RSS = ('import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); '
            'print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); sys.exit(r.returncode)')


def crops(folder, n, size, seed=0):
    """n crops of the sample photos at size x size in folder (made once; re-used while n files are there)."""
    folder = Path(folder)
    if folder.is_dir() and len(list(folder.glob('*.jpg'))) == n:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng, src = np.random.default_rng(seed), skimage_data()
    photos = [Image.open(src / name).convert('RGB') for name in COLOUR]
    for i in range(n):
        img = jitter(rng, random_crop(rng, photos[i % len(photos)], size, scale=(0.2, 0.9)))
        img.save(folder / f'{i:05d}.jpg', quality=92)
    return folder


def abp_py(argv, out_dir, measure_memory=False):
    """`python abp.py ARGV --out_dir OUT_DIR` in a fresh process: its summary (metrics.json for both modes,
    <mode>/summary.json for one) and, with measure_memory, its peak resident memory in MiB."""
    cmd = [sys.executable, str(ROOT / 'abp.py'), *argv, '--out_dir', str(out_dir)]
    if measure_memory:
        cmd = [sys.executable, '-c', PEAK_RSS, *cmd]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, text=True)
    start = argv[argv.index('--start') + 1] if '--start' in argv else 'both'
    summary = json.loads((Path(out_dir) / ('metrics.json' if start == 'both' else f'{start}/summary.json')).read_text())
    return summary, (float(done.stdout.strip().splitlines()[-1]) if measure_memory else None)


def memory(a, out):
    """Peak memory and seconds of one warm epoch on 1,000 and 10,000 images, B = 64."""
    rows = {}
    for n in (1000, 10000):
        folder = crops(Path(a.data_dir) / f'crops{n}_128', n, 128)
        summary, rss = abp_py(['--img_dir', str(folder), '--start', 'warm', '--n_epochs', '1', '--batch_size', '64'],
                              out / f'memory_{n}', measure_memory=True)
        rows[str(n)] = {'images': n, 'peak_rss_mib': round(rss, 1), 'seconds_per_epoch': summary['warm']['seconds']}
        print(f'memory  {n:6d} images: peak {rss:7.1f} MiB, {summary["warm"]["seconds"]:.1f} s per epoch')
    rows['time_ratio'] = round(rows['10000']['seconds_per_epoch'] / rows['1000']['seconds_per_epoch'], 3)
    return rows


def per_mode(summary, out_dir):
    """Reconstruction PSNR, coverage, seconds per epoch and images per second of each mode of a run, and its
    PSNR per loss-curve point (the checkpoint's stats)."""
    rows = {}
    for mode in ('warm', 'cold'):
        m, stats = summary[mode], abp.read_checkpoint(Path(out_dir) / mode / 'checkpoint.pt')['stats']
        rows[mode] = {'recon_psnr_db': m['recon_psnr_db'], 'sample_coverage': m['sample_coverage'],
                      'seconds_per_epoch': m['seconds_per_epoch'],
                      'images_per_second': round(summary['n_images'] / m['seconds_per_epoch'], 1),
                      'guard_events': len(m['guard_events']),
                      'curve': {'epoch': stats['epoch'], 'psnr_db': [round(v, 3) for v in stats['psnr_db']]}}
    return rows


def large(a, out):
    """Both modes on 5,000 crops at 64 px for a.epochs epochs, in mini-batches of 64."""
    folder, run_dir = crops(Path(a.data_dir) / 'crops5000_64', 5000, 64, seed=1), out / 'large'
    summary, _ = abp_py(['--img_dir', str(folder), '--img_size', '64', '--n_epochs', str(a.epochs), '--n_stats', '1',
                         '--n_log', '1', '--n_plot', str(a.epochs)], run_dir)
    for src, dst in (('compare_recon.jpg', 'large_recon.jpg'), ('interp_warm.jpg', 'large_interp_warm.jpg')):
        shutil.copyfile(run_dir / src, out / dst)
    rows = {'images': summary['n_images'], 'img_size': 64, 'epochs': a.epochs, 'batch_size': 64,
            'pca_recon_psnr_db': summary['pca']['recon_psnr_db'], **per_mode(summary, run_dir)}
    print(f'large   {rows["images"]} images, {a.epochs} epochs: warm {rows["warm"]["recon_psnr_db"]:.2f} dB '
          f'({rows["warm"]["images_per_second"]:.0f} images/s), cold {rows["cold"]["recon_psnr_db"]:.2f} dB, '
          f'PCA {rows["pca_recon_psnr_db"]:.2f} dB')
    return rows


def photos(a, out):
    """Both modes with the defaults on 100 crops at 128 px."""
    folder, run_dir = crops(Path(a.data_dir) / 'crops100_128', 100, 128, seed=2), out / 'photos'
    summary, _ = abp_py(['--img_dir', str(folder), '--n_epochs', str(a.photos_epochs)], run_dir)
    shutil.copyfile(run_dir / 'compare_recon.jpg', out / 'photos_recon.jpg')
    rows = {'images': summary['n_images'], 'epochs': a.photos_epochs, 'pca_recon_psnr_db': summary['pca']['recon_psnr_db'],
            **per_mode(summary, run_dir)}
    rows['cold_minus_warm_db'] = round(rows['cold']['recon_psnr_db'] - rows['warm']['recon_psnr_db'], 3)
    rows['cold_over_warm_seconds'] = round(rows['cold']['seconds_per_epoch'] / rows['warm']['seconds_per_epoch'], 3)
    print(f'photos  100 images: warm {rows["warm"]["recon_psnr_db"]:.2f} dB, cold {rows["cold"]["recon_psnr_db"]:.2f} '
          f'dB, PCA {rows["pca_recon_psnr_db"]:.2f} dB; cold/warm seconds per epoch {rows["cold_over_warm_seconds"]:.2f}')
    return rows


def occlude(a, out):
    """Peak memory of one warm epoch on 10,000 images at 128 px, B = 64, with --occlude pixels:0.5 against without."""
    folder, rows = crops(Path(a.data_dir) / 'crops10000_128', 10000, 128), {}
    for kind in ('none', 'pixels:0.5'):
        summary, rss = abp_py(['--img_dir', str(folder), '--start', 'warm', '--n_epochs', '1', '--batch_size', '64',
                               '--occlude', kind], out / f'occlude_{kind.replace(":", "_")}', measure_memory=True)
        rows[kind] = {'peak_rss_mib': round(rss, 1), 'seconds_per_epoch': summary['warm']['seconds']}
        print(f'occlude {kind:10s}: peak {rss:7.1f} MiB, {summary["warm"]["seconds"]:.1f} s per epoch')
    rows['memory_ratio'] = round(rows['pixels:0.5']['peak_rss_mib'] / rows['none']['peak_rss_mib'], 3)
    print(f'occlude: {rows["memory_ratio"]:.3f} x the memory of the same epoch without --occlude')
    return rows


PARTS = {'memory': memory, 'large': large, 'photos': photos, 'occlude': occlude}


def main():
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out_dir', default=str(ROOT / 'output'), help='results go to OUT_DIR/scale/ (default: output)')
    p.add_argument('--data_dir', default='/tmp/abp_scale', help='where the generated folders go (default: /tmp/abp_scale)')
    p.add_argument('--parts', nargs='+', choices=list(PARTS), default=list(PARTS), help='parts to run (default: all)')
    p.add_argument('--epochs', type=int, default=20, help='epochs of the large run (default: 20)')
    p.add_argument('--photos_epochs', type=int, default=abp.build_parser().get_default('n_epochs'),
                   help="epochs of the photos run (default: abp.py's)")
    a = p.parse_args()
    out = Path(a.out_dir) / 'scale'
    out.mkdir(parents=True, exist_ok=True)
    path = out / 'scale.json'
    for name in a.parts:
        rows = PARTS[name](a, out)
        result = json.loads(path.read_text()) if path.exists() else {}      # re-read: parts may run side by side
        result.update({name: rows}, device=abp.device, threads=torch.get_num_threads(), torch=torch.__version__)
        abp.write_json(result, path)
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
