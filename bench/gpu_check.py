"""The CUDA path, checked on a GPU (bench/gpu_check.sh runs it after the tests): prints one line per check.

    python bench/gpu_check.py            # about a minute on one GPU
    CUDA_VISIBLE_DEVICES= python bench/gpu_check.py --cpu      # the same checks rehearsed on the CPU

Both modes fresh on small synthetic images; --occlude; a run stopped at epoch 10 and resumed to 20 against one of
20; a GPU checkpoint read on the CPU and a CPU checkpoint resumed on the GPU; two identical runs; the step cap's
posterior widths with TF32 on against off; seconds per epoch and peak GPU memory of a 128-px run of 11 images.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests'))     # make_images: the tests' synthetic folder
import abp  # noqa: E402
from conftest import make_images  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMALL = ['--img_size', '16', '--n_plot', '10', '--n_log', '10', '--n_stats', '5', '--ninterp', '4']


def run(folder, out, *extra, epochs=20):
    """abp.main on the folder; returns (metrics.json or summary.json, wall seconds)."""
    t = time.perf_counter()
    abp.main(['--img_dir', str(folder), '--out_dir', str(out), *SMALL, '--n_epochs', str(epochs), *extra])
    path = out / 'metrics.json' if (out / 'metrics.json').exists() else next(out.glob('*/summary.json'))
    return json.loads(path.read_text()), time.perf_counter() - t


def same_model(a, b):
    """Largest absolute difference between two checkpoints' generator weights."""
    ka, kb = (abp.read_checkpoint(p)['model'] for p in (a, b))
    return max((ka[k] - kb[k]).abs().max().item() for k in ka)


def check(name, ok, detail):
    print(f"gpu_check: {'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--cpu', action='store_true', help='rehearse on the CPU (no GPU needed)')
    a = p.parse_args()
    gpu = abp.device
    if gpu != 'cuda' and not a.cpu:
        sys.exit('gpu_check: skipped: no CUDA GPU here')
    tmp = Path(tempfile.mkdtemp(prefix='gpu_check-'))
    imgs = make_images(tmp / 'imgs', n=6, size=40)
    results = []

    m, sec = run(imgs, tmp / 'fresh')
    results.append(check('both modes, fresh', all(m[k]['recon_psnr_db'] > 15 for k in ('warm', 'cold')) and m['device'] == gpu,
                         f"warm {m['warm']['recon_psnr_db']} dB, cold {m['cold']['recon_psnr_db']} dB, {sec:.1f} s"))

    m, _ = run(imgs, tmp / 'occ', '--occlude', 'pixels:0.5', '--start', 'warm')
    occ = m['warm']['occlusion']
    results.append(check('--occlude pixels:0.5', occ['abp_hidden_psnr_db'] > 10 and (tmp / 'occ' / 'warm' / 'occlusion.jpg').exists(),
                         f"hidden {occ['abp_hidden_psnr_db']} dB, observed {occ['abp_observed_psnr_db']} dB"))

    run(imgs, tmp / 'again', '--start', 'warm')                 # determinism: the same run twice
    run(imgs, tmp / 'again2', '--start', 'warm')
    diff = same_model(tmp / 'again' / 'warm' / 'checkpoint.pt', tmp / 'again2' / 'warm' / 'checkpoint.pt')
    results.append(check('two identical runs', diff == 0, f'largest weight difference {diff:g}'))

    run(imgs, tmp / 'cut', '--start', 'warm', epochs=10)         # stopped at 10, resumed to 20
    run(imgs, tmp / 'cut', '--start', 'warm', '--resume')
    diff = same_model(tmp / 'cut' / 'warm' / 'checkpoint.pt', tmp / 'again' / 'warm' / 'checkpoint.pt')
    results.append(check('interrupt at 10, resume to 20', diff == 0, f'largest weight difference to one run of 20: {diff:g}'))

    args = abp.parse_args(['--img_dir', str(imgs), *SMALL, '--start', 'warm'])    # the GPU's checkpoint, read on the CPU
    state = abp.new_state(args, 6, dev='cpu')
    note = abp.load_state(state, tmp / 'again' / 'warm' / 'checkpoint.pt', args, abp.chain_for(args, 'warm'))
    x = abp.generate(state.model.Gnet, state.z)
    m_gpu = json.loads((tmp / 'again' / 'warm' / 'metrics.json').read_text())['recon_psnr_db']
    results.append(check('GPU checkpoint on the CPU', bool(torch.isfinite(x).all()) and state.z.device.type == 'cpu',
                         f"generated on the CPU; note: {note or '-'}; the GPU run's recon {m_gpu} dB"))

    subprocess.run([sys.executable, str(ROOT / 'abp.py'), '--img_dir', str(imgs), '--out_dir', str(tmp / 'moved'),
                    *SMALL, '--n_epochs', '10', '--start', 'warm'], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''})   # a CPU checkpoint, resumed on the GPU
    run(imgs, tmp / 'moved', '--start', 'warm', '--resume')
    log = (tmp / 'moved' / 'warm' / 'output.log').read_text()
    ck = abp.read_checkpoint(tmp / 'moved' / 'warm' / 'checkpoint.pt')
    results.append(check('CPU checkpoint resumed on the GPU', ck['epoch'] == 20, next(
        (line.split(' ', 1)[1] for line in log.splitlines() if 'resumed from' in line), 'no resume line')))

    gen = state.model.Gnet.to(gpu)                               # TF32 on against off, in the step cap's widths
    z = state.z.to(gpu)
    widths = {}
    for tf32 in (True, False):
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        widths[tf32] = abp.posterior_width(gen, z, args.mse_sigma, args.prior_sigma)
    abp.set_cuda()
    rel = ((widths[True] - widths[False]).abs() / widths[False]).max().item()
    results.append(check('TF32 on against off (set_cuda turns it off)', not torch.backends.cudnn.allow_tf32,
                         f'posterior widths differ by up to {100 * rel:.1f}% with TF32 on'))

    big = make_images(tmp / 'big', n=11, size=128, seed=3)       # a course-sized run: 11 images of 128 px
    if gpu == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    m, sec = run(big, tmp / 'big_run', '--img_size', '128', '--start', 'warm', '--n_plot', '200', epochs=200)
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if gpu == 'cuda' else float('nan')
    results.append(check('128 px, 11 images, 200 warm epochs', m['warm']['recon_psnr_db'] > 15,
                         f"{m['warm']['seconds_per_epoch'] * 1000:.1f} ms per epoch, peak GPU memory {peak:.0f} MiB, "
                         f"recon {m['warm']['recon_psnr_db']} dB"))
    print(f'gpu_check: {sum(results)} of {len(results)} checks passed')
    sys.exit(0 if all(results) else 1)


if __name__ == '__main__':
    main()
