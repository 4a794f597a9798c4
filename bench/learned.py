"""What the generator learned: five measurements of the default models, each with a figure and its numbers.

    python bench/learned.py --img_dir ../shared/data/lion_tiger       # about 25 minutes on 2 cores
    python bench/learned.py --img_dir ../shared/data/lion_tiger --parts neighbours mosaic line   # seconds

The parts (--parts, default all; each writes its key of OUT_DIR/learned/learned.json, keeping the others'):
  neighbours  prior samples of the default run's warm and cold generators beside their nearest training
              image; the share of samples that copy a training image (NN-PSNR at least that image's own
              reconstruction PSNR minus --copy_db) -> learned_neighbours.jpg
  mosaic      the interpolation square of each mode coloured by the training image nearest to g(z), the prior
              mass of each image's cell, and the PSNR between neighbouring tiles of the 12 x 12 panel
              -> learned_mosaic.png
  line        a straight line in z from a tiger's code to a lion's (warm and cold) beside the pixel
              cross-fade of the same two images -> learned_line.jpg
  heldout     trains both modes on the images minus --holdout of them (a folder of links in
              OUT_DIR/learned/images/), then infers each held-out image's z (M Sobol prior proposals, the
              likeliest, then Langevin) and compares its PSNR with the nearest training image, PCA(2) fitted
              on the training images, and its own reconstruction in the default run -> learned_heldout.jpg
  theory      re-trains both modes in this process (abp.train, without the default run's figures) and, through
              its hook, every --every epochs records per image the largest curvature eigenvalue of eq. 3 in z
              (lambda_max), the posterior width w = lambda_max^-1/2 against the step s of eq. 6 the chain takes,
              and the effective sample size of the SIR weights over the cold proposals -> learned_theory.png
The default run comes from run_cached in --run_dir (default OUT_DIR): re-used while its flags and checkpoints are
there (git does not keep checkpoints: a fresh clone trains it, about 8 minutes).
"""
import dataclasses
import io
import json
import logging
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from common import DEFAULTS, abp, finished, flags_key, load_run, parser, require_images, run_cached, short_run

CELL_GRID = 81           # mosaic: the interpolation square sampled CELL_GRID x CELL_GRID times
PRIOR_DRAWS = 4096       # mosaic: prior draws that estimate each cell's prior mass
SAME_DB = (30.0, 35.0)   # mosaic: neighbouring tiles this close (PSNR) count as near-identical
WIDTH = 6.6              # figures are drawn just inside the report's text width (6.77 in), fonts at 7 pt or more
DPI = 200                # ... at about 1.4 px of a 128-px tile per printed pixel: tiles near full resolution


# ---------------------------------------------------------------------------------------------- shared

def default_models(a):
    """The default run (both modes) via run_cached in a.run_dir, and per mode its (args, State), on the CPU."""
    argv = ['--img_dir', a.img_dir, '--out_dir', a.run_dir]
    finished(run_cached(argv, 'default run', need_checkpoints=True), 'learned.py', 'the default run')
    return {m: load_run(Path(a.run_dir) / m) for m in ('warm', 'cold')}


def gen(state, z):
    return abp.generate(state.model.Gnet, z)


def epochs_flags(epochs):
    """abp.py's flags for a run of `epochs` epochs: none for the default count (short_run's otherwise)."""
    return [] if epochs == DEFAULTS['n_epochs'] else short_run(epochs)


def db(v):
    return round(float(v), 3)


def save_photo_figure(fig, path):
    """A figure full of photographs as abp.py stores one (a 4:4:4 JPEG), at DPI; returns its PSNR (dB) to the
    lossless render."""
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=DPI, bbox_inches='tight')
    Image.open(buf).convert('RGB').save(path, format='JPEG', **abp.PHOTO_JPEG)
    a, b = (np.asarray(Image.open(f).convert('RGB'), dtype=np.float64) / 255 for f in (buf, path))
    return db(10 * math.log10(1 / max(np.mean((a - b) ** 2), 1e-12)))


def strip(ax, img, label):
    """One row of images (N, 3, H, W) in [-1, 1], labelled on the left."""
    ax.imshow(abp.grid_image(img, len(img)))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(label, rotation=0, ha='right', va='center', fontsize=7.5)


# ---------------------------------------------------------------------------------------------- neighbours

@torch.no_grad()
def neighbours(models, x, names, a, out):
    """Prior samples beside their nearest training image, and how many of them copy one."""
    result, rows = {}, []
    g = torch.Generator().manual_seed(0)
    z = torch.randn(a.samples, 2, generator=g)                # the same prior draws for both modes
    pair_db = abp.psnr(x.unsqueeze(1).expand(-1, len(x), -1, -1, -1).flatten(0, 1),
                       x.unsqueeze(0).expand(len(x), -1, -1, -1, -1).flatten(0, 1)).view(len(x), len(x))
    pair_db.fill_diagonal_(-math.inf)
    for mode, (args, state) in models.items():
        s = gen(state, z * args.prior_sigma)
        nn_db, idx = abp.nearest_neighbours(s, x)
        own = abp.psnr(gen(state, state.z), x)                  # each image's own reconstruction PSNR
        copies = nn_db >= own[idx] - a.copy_db
        result[mode] = {'samples': a.samples, 'nn_psnr_db_median': db(nn_db.median()),
                        'nn_psnr_db_quartiles': [db(q) for q in nn_db.quantile(torch.tensor([0.25, 0.75]))],
                        'copy_share': db(copies.float().mean()), 'copy_db': a.copy_db,
                        'share_above_25db': db((nn_db >= 25).float().mean()),
                        'nearest_image_counts': torch.bincount(idx, minlength=len(x)).tolist()}
        rows.append((mode, s[:a.shown], x[idx[:a.shown]], nn_db[:a.shown], copies[:a.shown]))
    result['closest_two_training_images_db'] = db(pair_db.max())
    result['training_pair_db_median'] = db(pair_db[torch.isfinite(pair_db)].median())
    result['images'] = names

    cols = 6                                                   # pairs per row
    nrow = math.ceil(a.shown / cols)
    fig = Figure(figsize=(WIDTH, len(rows) * (nrow * WIDTH / (2 * cols) + 0.45)))
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (mode, s, nn, nn_db, copies) in zip(axes, rows):
        pairs = torch.stack([s, nn], 1).flatten(0, 1)          # sample, its nearest image, ...
        ax.imshow(abp.grid_image(pairs, 2 * cols))
        h = pairs.shape[-1] + 2
        for c in range(1, cols):                               # a dark line between pairs
            ax.axvline(2 * c * h + 1, color='black', lw=0.8)
        for k in range(len(s)):
            r, c = divmod(k, cols)
            colour = 'red' if copies[k] else 'black'
            ax.text((2 * c + 1) * h + 1, r * h + h - 6, f'{nn_db[k]:.1f} dB', color=colour, fontsize=7, ha='center',
                    va='bottom', bbox=dict(facecolor='white', alpha=0.85, pad=0.5, lw=0))
        ax.set(xticks=[], yticks=[])
        ax.set_title(f"{mode} start: prior sample | nearest training image (PSNR; red: within {a.copy_db:g} dB of "
                     f"the image's own reconstruction);\n{100 * result[mode]['copy_share']:.0f}% of {a.samples} "
                     f"samples are red", fontsize=7.5)
    fig.tight_layout()
    result['jpeg_psnr_db'] = save_photo_figure(fig, out / 'learned_neighbours.jpg')
    return result


# ---------------------------------------------------------------------------------------------- mosaic

def tile_neighbour_db(panel, n, size):
    """PSNR (dB) between horizontally and vertically adjacent tiles of an n x n panel (H x W x 3 in [0, 1],
    tiles of size px with 2-px padding, as abp.save_interp writes it)."""
    t = torch.as_tensor(panel, dtype=torch.float64)[2:2 + n * (size + 2), 2:2 + n * (size + 2)]
    tiles = t.reshape(n, size + 2, n, size + 2, 3)[:, :size, :, :size].transpose(1, 2)   # (n, n, size, size, 3)
    mse = torch.cat([(tiles[1:] - tiles[:-1]).pow(2).flatten(2).mean(2).flatten(),
                     (tiles[:, 1:] - tiles[:, :-1]).pow(2).flatten(2).mean(2).flatten()])
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def label_points(fig, ax, points, fontsize, bbox=None):
    """Name each (label, (x, y)) point beside it, at the first of a few offsets where the label's box is free (inside
    the axes, clear of every point and placed label), else where it clashes least; bbox: the labels' box style."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    dots = [ax.transData.transform(xy) for _, xy in points]
    placed = []
    offsets = [(4, 3, 'left'), (4, -10, 'left'), (-4, 3, 'right'), (-4, -10, 'right'), (0, 7, 'center'),
               (0, -14, 'center'), (4, 10, 'left'), (-4, 10, 'right'), (4, -17, 'left'), (-4, -17, 'right')]
    for label, xy in points:
        tried = []
        for dx, dy, ha in offsets:
            t = ax.annotate(label, xy, xytext=(dx, dy), textcoords='offset points', ha=ha, fontsize=fontsize,
                            bbox=bbox)
            box = t.get_window_extent(renderer).padded(3)          # a gap of 3 px: short labels stay apart
            clash = 100 * (not (ax.bbox.contains(box.x0, box.y0) and ax.bbox.contains(box.x1, box.y1))) \
                + sum(box.contains(*d) for d in dots) + sum(box.overlaps(b) for b in placed)
            tried.append((clash, len(tried), dx, dy, ha, box))
            t.remove()
            if tried[-1][0] == 0:
                break
        _, _, dx, dy, ha, box = min(tried)
        ax.annotate(label, xy, xytext=(dx, dy), textcoords='offset points', ha=ha, fontsize=fontsize, bbox=bbox)
        placed.append(box)


@torch.no_grad()
def mosaic(models, x, names, a, out):
    """Cell maps of the interpolation square, prior mass per cell, near-identical neighbours in the panel."""
    result, maps = {}, {}
    g = torch.Generator().manual_seed(1)
    prior = torch.randn(PRIOR_DRAWS, 2, generator=g)
    for mode, (args, state) in models.items():
        d = abp.interp_half_width(state.z)
        # the square, in the panel's layout: row i <-> z[0], column j <-> z[1] (abp.interp_grid)
        grid = abp.interp_grid(2, CELL_GRID, d, 'cpu')
        nn_db, idx = abp.nearest_neighbours(gen(state, grid), x)
        _, prior_idx = abp.nearest_neighbours(gen(state, prior * args.prior_sigma), x)
        tiles = gen(state, abp.interp_grid(2, args.ninterp, d, 'cpu'))
        nb = tile_neighbour_db(abp.grid_image(tiles, args.ninterp), args.ninterp, args.img_size)
        mass = torch.bincount(prior_idx, minlength=len(x)).float() / PRIOR_DRAWS
        result[mode] = {'interp_d': [db(v) for v in d],
                        'panel_neighbours': {'median_db': db(nb.median()),
                                             **{f'share_above_{t:g}db': db((nb > t).float().mean()) for t in SAME_DB}},
                        'cell_prior_mass': dict(zip(names, [db(v) for v in mass])),
                        'cells_in_square': int(idx.unique().numel()),
                        'square_share_within_3db_of_nearest_image_recon':
                            db((nn_db >= abp.psnr(gen(state, state.z), x)[idx] - 3).float().mean())}
        maps[mode] = (idx.view(CELL_GRID, CELL_GRID), nn_db.view(CELL_GRID, CELL_GRID), d, state.z)
    result['images'], result['same_db'] = names, list(SAME_DB)

    colours = colormaps['tab20'].colors
    fig = Figure(figsize=(WIDTH, 3.75))
    axes = fig.subplots(1, 2)
    codes = {}
    for ax, (mode, (idx, nn_db, d, z)) in zip(axes, maps.items()):
        rgb = torch.tensor([colours[i % 20] for i in idx.flatten().tolist()]).view(CELL_GRID, CELL_GRID, 3)
        shade = ((nn_db - 15) / 15).clamp(0.25, 1).unsqueeze(-1)   # darker where g(z) is far from every image
        # image rows are z[0] from -d to d downwards, columns z[1] from -d to d: as the 12 x 12 panel is laid out
        d0, d1 = float(d[0]), float(d[1])
        ax.imshow((rgb * shade).numpy(), extent=(-d1, d1, d0, -d0))
        codes[mode] = [(Path(names[i]).stem, (z1, z0)) for i, (z0, z1) in enumerate(abp.first_two_dims(z).tolist())]
        for _, (z1, z0) in codes[mode]:
            ax.plot(z1, z0, 'o', color='white', mec='black', ms=4, mew=0.8)
        pn = result[mode]['panel_neighbours']
        ax.set_title(f"{mode}: training image nearest to g(z)\npanel neighbours above 35 dB: "
                     f"{100 * pn['share_above_35db']:.0f}%", fontsize=8)
        ax.set_xlabel('z[1] (panel columns)', fontsize=8)
        ax.set_ylabel('z[0] (panel rows)', fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    for ax, mode in zip(axes, maps):                   # each image's name beside its code, clear of the others
        label_points(fig, ax, codes[mode], fontsize=7, bbox=dict(facecolor='white', alpha=0.7, pad=0.5, lw=0))
    abp.save_fig(fig, out / 'learned_mosaic.png')
    return result


# ---------------------------------------------------------------------------------------------- line

def line_pair(names, z):
    """(i, j): a tiger and a lion (the first two name groups of abp.image_groups) whose codes are closest;
    with no two groups, the two images whose codes are farthest apart."""
    groups = abp.image_groups(names)
    kinds = sorted(set(groups), reverse=True)                 # tiger before lion
    dist = torch.cdist(z, z)
    if len(kinds) >= 2:
        a_idx = [i for i, g in enumerate(groups) if g == kinds[0]]
        b_idx = [i for i, g in enumerate(groups) if g == kinds[1]]
        k = int(dist[a_idx][:, b_idx].argmin())
        return a_idx[k // len(b_idx)], b_idx[k % len(b_idx)]
    k = int(dist.argmax())
    return k // len(z), k % len(z)


@torch.no_grad()
def line(models, x, names, a, out):
    """g on a straight line between two images' codes, per mode, and the pixel cross-fade of the two images."""
    i, j = line_pair(names, models['warm'][1].z)
    t = torch.linspace(0, 1, a.frames).unsqueeze(1)
    rows, result = [], {'from': names[i], 'to': names[j], 'frames': a.frames}
    for mode, (args, state) in models.items():
        z = state.z
        frames = gen(state, (1 - t) * z[i] + t * z[j])
        nn_db, idx = abp.nearest_neighbours(frames, x)
        step_db = abp.psnr(frames[1:], frames[:-1])
        result[mode] = {'z_from': [db(v) for v in z[i]], 'z_to': [db(v) for v in z[j]],
                        'nearest_image_per_frame': [Path(names[k]).stem for k in idx.tolist()],
                        'nn_psnr_db_per_frame': [db(v) for v in nn_db],
                        'min_consecutive_frame_db': db(step_db.min()), 'median_consecutive_frame_db': db(step_db.median())}
        rows.append((f'{mode}: g(z) on the line', frames))
    fade = (1 - t.view(-1, 1, 1, 1)) * x[i] + t.view(-1, 1, 1, 1) * x[j]
    nn_db, _ = abp.nearest_neighbours(fade, x)
    result['crossfade'] = {'nn_psnr_db_per_frame': [db(v) for v in nn_db],
                           'median_consecutive_frame_db': db(abp.psnr(fade[1:], fade[:-1]).median())}
    rows.append(('pixel cross-fade', fade))
    fig = Figure(figsize=(WIDTH, len(rows) * (WIDTH - 1.1) / a.frames + 0.35))
    axes = fig.subplots(len(rows), 1)
    for ax, (label, img) in zip(axes, rows):
        ax.imshow(abp.grid_image(img, len(img)))
        ax.set(xticks=[], yticks=[])
        ax.set_ylabel(label.replace(': ', ':\n'), rotation=0, ha='right', va='center', fontsize=7.5)
    axes[0].set_title(f'{Path(names[i]).stem} to {Path(names[j]).stem}, {a.frames} evenly spaced points', fontsize=8)
    fig.tight_layout()
    result['jpeg_psnr_db'] = save_photo_figure(fig, out / 'learned_line.jpg')
    return result


# ---------------------------------------------------------------------------------------------- heldout

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
        axes.text(c * h + h / 2, -6, label, ha='center', va='bottom', fontsize=7)
    for r in range(len(held)):
        vals = [None, result['nearest_training_image_db'][r], result['pca2_db'][r], result['warm']['heldout_db'][r],
                result['warm']['own_recon_db'][r], result['cold']['heldout_db'][r], result['cold']['own_recon_db'][r]]
        for c, v in enumerate(vals):
            if v is not None:
                axes.text(c * h + h / 2, r * h + h - 6, f'{v:.1f} dB', ha='center', fontsize=7,
                          bbox=dict(facecolor='white', alpha=0.8, pad=0.5, lw=0))
    axes.set(xticks=[], yticks=[])
    fig.tight_layout()
    result['jpeg_psnr_db'] = save_photo_figure(fig, out / 'learned_heldout.jpg')
    return result


# ---------------------------------------------------------------------------------------------- theory

@torch.no_grad()
def sir_ess(gen_net, x, cold):
    """Effective sample size (sum w)^2 / sum w^2 per image of the SIR weights over the cold chain's proposals,
    drawn from a copy of the RNG state: training's own next draws are left as they were."""
    saved = torch.get_rng_state()
    zeta = abp.quasi_prior(cold.n_proposals(len(x), len(x)), gen_net.nz, cold.prior_sigma)
    torch.set_rng_state(saved)
    w = torch.softmax(-abp.sq_dists(x, abp.generate(gen_net, zeta)) / (2 * cold.sigma ** 2), 1)
    return 1 / w.pow(2).sum(1)


def measure(state, x, chain, cold):
    """Per image: lambda_max and w at the chains' current z, the step s the next epoch takes, the SIR ESS."""
    gen_net = state.model.Gnet
    w = abp.posterior_width(gen_net, state.z, chain.sigma, chain.prior_sigma)
    s = torch.as_tensor(chain.step(w, state.step_scale)).flatten().expand(len(w))
    return {'epoch': state.epoch, 'lambda_max': [round(float(v), 2) for v in w.flatten().pow(-2)],
            'width': [round(float(v), 5) for v in w.flatten()], 'step': [round(float(v), 5) for v in s],
            'ess': [round(float(v), 2) for v in sir_ess(gen_net, x, cold)],
            'z': [[round(float(u), 4) for u in v] for v in state.z]}


def theory_run(args, data, mode, every):
    """A default training run of one mode in this process (abp.train), measured every `every` epochs through its
    hook; returns the measurements and the final reconstruction PSNR."""
    chain, cold, x = abp.chain_for(args, mode), abp.chain_for(args, 'cold'), data.batch(None)
    state = abp.new_state(args, len(data))
    series = [measure(state, x, chain, cold)]

    def hook(state, loss, psnr_db):
        if state.epoch % every == 0 or state.epoch == args.n_epochs:
            series.append(measure(state, x, chain, cold))

    with tempfile.TemporaryDirectory() as tmp:
        abp.train(state, data, chain, args, tmp, logging.getLogger('learned'), hook)
    return series, db(state.psnr.mean())


def theory(models, x, names, a, out):
    """lambda_max, w against s, and the SIR ESS over a default training run of each mode."""
    args = abp.parse_args(['--img_dir', a.img_dir, '--seed', str(a.seed), *epochs_flags(a.epochs)])
    data = abp.load_data(args)
    result = {'every': a.every, 'proposals': abp.chain_for(args, 'cold').n_proposals(len(data), len(data)), 'images': names,
              'flags': flags_key(vars(args))}
    path = out / 'learned.json'              # the same training already measured there: re-use its series
    before = json.loads(path.read_text()).get('theory', {}) if path.exists() else {}
    same = flags_key(before.get('flags', {}), len(data)) == result['flags'] and before.get('every') == a.every
    for mode in ('warm', 'cold'):
        series, final = (before[mode]['series'], before[mode]['final_recon_psnr_db']) if same else \
            theory_run(args, data, mode, a.every)
        last = series[-1]
        result[mode] = {'series': series, 'final_recon_psnr_db': final,
                        'configured_step': abp.chain_for(args, mode).step_size,
                        'final_lambda_max_median': db(np.median(last['lambda_max'])),
                        'final_width_median': round(float(np.median(last['width'])), 5),
                        'final_step_median': round(float(np.median(last['step'])), 5),
                        'share_capped_final': db(np.mean([s < abp.chain_for(args, mode).step_size - 1e-9 for s in last['step']])),
                        'final_ess_median': db(np.median(last['ess']))}
        # how far each image's z moves between measurements over the last quarter of training; the codes
        # themselves are not kept in learned.json (they would double its size)
        late = [r for r in series if r['epoch'] >= 0.75 * args.n_epochs]
        result[mode]['z_std_late_median'] = before[mode]['z_std_late_median'] if same and 'z' not in late[0] else \
            round(float(torch.tensor([r['z'] for r in late]).std(0).norm(dim=1).median()), 4)    # (T, N, 2) -> N
        result[mode]['series'] = [{k: v for k, v in r.items() if k != 'z'} for r in series]
        result[mode]['width_late_median'] = round(float(np.median([r['width'] for r in series if r['epoch'] >= 0.75 * args.n_epochs])), 5)
        print(f"theory {mode}: recon {final:.2f} dB, lambda_max {result[mode]['final_lambda_max_median']:.0f}, "
              f"w {result[mode]['final_width_median']:.4f}, step {result[mode]['final_step_median']:.4f}, "
              f"ESS {result[mode]['final_ess_median']:.2f}, late z std {result[mode]['z_std_late_median']}")
    fig = Figure(figsize=(WIDTH, 2.9))
    axes = fig.subplots(1, 3)
    for mode, colour in (('warm', 'tab:orange'), ('cold', 'tab:blue')):
        series = result[mode]['series']
        ep = [r['epoch'] for r in series]
        for ax, key in zip(axes, ('lambda_max', 'width', 'ess')):
            v = np.array([r[key] for r in series])
            ax.fill_between(ep, v.min(1), v.max(1), color=colour, alpha=0.2)
            ax.plot(ep, np.median(v, 1), color=colour, lw=1, label=f'{mode} (median, min-max)')
        axes[1].plot(ep, [np.median(r['step']) for r in series], '--', color=colour, lw=1, label=f'{mode}: step s')
    axes[0].set_yscale('log')
    axes[0].set_title('lambda_max of eq. 3 in z', fontsize=8)
    axes[1].set_yscale('log')
    axes[1].set_title('width w and step s (dashed)', fontsize=8)
    axes[2].set_yscale('log')
    axes[2].set_title(f"SIR ESS over {result['proposals']} proposals", fontsize=8)
    for ax in axes:
        ax.set_xlabel('epoch', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.legend(*axes[1].get_legend_handles_labels(), loc='lower center', ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))                 # one legend below the panels, over no curve
    abp.save_fig(fig, out / 'learned_theory.png')
    return result


# ---------------------------------------------------------------------------------------------- main

PARTS = {'neighbours': neighbours, 'mosaic': mosaic, 'line': line, 'heldout': heldout, 'theory': theory}


def main():
    p = parser(__doc__, 'learned/')
    p.add_argument('--run_dir', help='the default run: its folder (default: OUT_DIR)')
    p.add_argument('--parts', nargs='+', default=list(PARTS), choices=PARTS, help='which parts (default: all)')
    p.add_argument('--samples', type=int, default=1000, help='neighbours: prior samples measured (default: 1000)')
    p.add_argument('--shown', type=int, default=12, help='neighbours: samples shown (default: 12)')
    p.add_argument('--copy_db', type=float, default=3.0,
                   help="neighbours: a sample copies an image within this many dB of the image's reconstruction "
                        "PSNR (default: 3)")
    p.add_argument('--frames', type=int, default=9, help='line: points on the line (default: 9)')
    p.add_argument('--holdout', type=int, default=3, help='heldout: images left out (default: 3)')
    p.add_argument('--proposals', type=int, default=4096, help='heldout: prior proposals per image (default: 4096)')
    p.add_argument('--steps', type=int, default=200, help='heldout: Langevin steps after them (default: 200)')
    p.add_argument('--every', type=int, default=20, help='theory: epochs between measurements (default: 20)')
    p.add_argument('--seed', type=int, default=1, help='theory and heldout: seed (default: 1)')
    p.add_argument('--epochs', type=int, default=2000, help='theory and heldout: epochs per mode (default: 2000)')
    a = p.parse_args()
    a.run_dir = a.run_dir or a.out_dir
    require_images(a.img_dir, 'learned.py')
    out = Path(a.out_dir) / 'learned'
    out.mkdir(parents=True, exist_ok=True)
    models = default_models(a)
    data = abp.load_data(models['warm'][0])
    x, names = data.batch(None).cpu(), data.names
    path = out / 'learned.json'
    result = json.loads(path.read_text()) if path.exists() else {}
    for part, study in PARTS.items():
        if part in a.parts:
            result[part] = study(models, x, names, a, out)
            abp.write_json(result, path)
            print(f'{part}: written to {path}')


if __name__ == '__main__':
    main()
