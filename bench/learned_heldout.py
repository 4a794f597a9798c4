"""Images the generator never saw: their inferred z against the nearest training image and PCA(2) (learned.py)."""
import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from common import abp, finished, load_run, run_cached
from learned_common import WIDTH, gen, epochs_flags, db, save_photo_figure


def split(names, k):
    """Indices of k held-out images, evenly spread over the sorted names (lions and tigers both), and the rest."""
    out = sorted(set(np.linspace(1, len(names) - 2, k).round().astype(int).tolist())) if k < len(names) - 1 else []
    return out, [i for i in range(len(names)) if i not in out]


def link_folder(src, names, keep, folder):
    """folder/ holding links to src's images `keep` (the images are never copied), and nothing else."""
    folder.mkdir(parents=True, exist_ok=True)
    want = {names[i] for i in keep}
    for f in folder.iterdir():
        if f.name not in want:
            f.unlink()
    for n in want:
        if not (folder / n).exists():
            os.symlink(Path(src).resolve() / n, folder / n)
    return folder


@torch.no_grad()
def best_proposal(gen_net, x, n, sigma, prior_sigma):
    """Per image the likeliest of n Sobol prior draws (eq. 1), in chunks."""
    zeta = abp.quasi_prior(n, gen_net.nz, prior_sigma).cpu()
    d = torch.cat([abp.sq_dists(x, abp.generate(gen_net, zeta[k:k + 512])) for k in range(0, n, 512)], 1)
    return zeta[d.argmin(1)]


def infer(args, state, x, a):
    """z for images the generator never saw: the best of a.proposals prior draws, then a.steps Langevin steps of
    the warm chain, each image's step capped at its posterior width (as training does)."""
    gen_net, chain = state.model.Gnet, dataclasses.replace(abp.chain_for(args, 'warm'), steps=a.steps)
    z = best_proposal(gen_net, x, a.proposals, chain.sigma, chain.prior_sigma)
    return abp.langevin(gen_net, z, x, chain, chain.step(abp.posterior_width(gen_net, z, chain.sigma, chain.prior_sigma)))


def heldout(models, x, names, a, out):
    """Leave images out, train on the rest, infer the left-out images' z; PSNR against three references."""
    held, kept = split(names, a.holdout)
    if not held:
        return {'skipped': f'{len(names)} images: too few to hold {a.holdout} out'}
    folder = link_folder(a.img_dir, names, kept, out / 'images')
    argv = ['--img_dir', str(folder), '--out_dir', str(out / 'heldout'), '--seed', str(a.seed),
            '--img_size', str(models['warm'][0].img_size), *epochs_flags(a.epochs)]     # the default run's size
    run = finished(run_cached(argv, 'held-out run', need_checkpoints=True), 'learned.py', 'the held-out run')
    xh, xk = x[held], x[kept]
    pca = abp.pca_recon(xh, fit=abp.pca_fit(xk, 2))              # PCA(2) of the training images only
    nn_db, nn_idx = abp.nearest_neighbours(xh, xk)
    result = {'held_out': [names[i] for i in held], 'trained_on': [names[i] for i in kept],
              'proposals': a.proposals, 'langevin_steps': a.steps,
              'nearest_training_image': [names[kept[k]] for k in nn_idx.tolist()],
              'nearest_training_image_db': [db(v) for v in nn_db], 'pca2_db': [db(v) for v in abp.psnr(pca, xh)]}
    rows = [('held-out\nimage', xh), ('nearest\ntraining image', xk[nn_idx]), ('PCA(2) of\ntraining images', pca)]
    for mode in ('warm', 'cold'):
        args, state = load_run(out / 'heldout' / mode)
        torch.manual_seed(a.seed)
        z = infer(args, state, xh, a)
        rec = gen(state, z)
        own = gen(models[mode][1], models[mode][1].z[held])     # the default run, trained on all images
        result[mode] = {'heldout_db': [db(v) for v in abp.psnr(rec, xh)],
                        'trained_on_recon_db': [db(v) for v in abp.psnr(gen(state, state.z), xk)],
                        'own_recon_db': [db(v) for v in abp.psnr(own, xh)],
                        'train_recon_psnr_db': run[mode]['recon_psnr_db'], 'z': [[db(u) for u in v] for v in z]}
        rows += [(f'{mode}: held out,\nz inferred', rec), (f'{mode}: trained\non it (default run)', own)]
    for key in ('nearest_training_image_db', 'pca2_db'):
        result[key + '_mean'] = db(np.mean(result[key]))
    for mode in ('warm', 'cold'):
        for key in ('heldout_db', 'own_recon_db'):
            result[mode][key + '_mean'] = db(np.mean(result[mode][key]))
    fig = Figure(figsize=(WIDTH, len(held) * WIDTH / len(rows) + 0.45))
    axes = fig.subplots(1, 1)
    grid = torch.stack([r[1] for r in rows], 1).flatten(0, 1)   # image by image, one column per reference
    axes.imshow(abp.grid_image(grid, len(rows)))
    h = x.shape[-1] + 2
    for c, (label, _) in enumerate(rows):
        axes.text(c * h + h / 2, -6, label, ha='center', va='bottom', fontsize=7.5)
    for r in range(len(held)):
        vals = [None, result['nearest_training_image_db'][r], result['pca2_db'][r], result['warm']['heldout_db'][r],
                result['warm']['own_recon_db'][r], result['cold']['heldout_db'][r], result['cold']['own_recon_db'][r]]
        for c, v in enumerate(vals):
            if v is not None:
                axes.text(c * h + h / 2, r * h + h - 6, f'{v:.1f} dB', ha='center', fontsize=7.5,
                          bbox=dict(facecolor='white', alpha=0.8, pad=0.5, lw=0))
    axes.set(xticks=[], yticks=[])
    fig.tight_layout()
    result['jpeg_psnr_db'] = save_photo_figure(fig, out / 'learned_heldout.jpg')
    return result
