"""The interpolation square coloured by the nearest training image, the prior mass of its cells, and near-identical
tiles of the panel (learned.py)."""
from pathlib import Path

import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from common import abp
from learned_common import WIDTH, gen, db

CELL_GRID = 81           # the interpolation square sampled CELL_GRID x CELL_GRID times
PRIOR_DRAWS = 4096       # prior draws that estimate each cell's prior mass
SAME_DB = (30.0, 35.0)   # neighbouring tiles this close (PSNR) count as near-identical


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
                            db((nn_db >= abp.psnr(gen(state, state.z), x)[idx] - a.copy_db).float().mean())}
        maps[mode] = (idx.view(CELL_GRID, CELL_GRID), nn_db.view(CELL_GRID, CELL_GRID), d, state.z)
    result['images'], result['same_db'], result['identical_db'] = names, list(SAME_DB), SAME_DB[-1]
    result['copy_db'] = a.copy_db

    colours = colormaps['tab20'].colors[4:]           # 16 colours without tab:blue and tab:orange, which mark the modes
    fig = Figure(figsize=(WIDTH, 3.75))
    axes = fig.subplots(1, 2)
    codes = {}
    for ax, (mode, (idx, nn_db, d, z)) in zip(axes, maps.items()):
        rgb = torch.tensor([colours[i % len(colours)] for i in idx.flatten().tolist()]).view(CELL_GRID, CELL_GRID, 3)
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
        ax.tick_params(labelsize=7.5)
    fig.tight_layout()
    for ax, mode in zip(axes, maps):                   # each image's name beside its code, clear of the others
        label_points(fig, ax, codes[mode], fontsize=7.5, bbox=dict(facecolor='white', alpha=0.7, pad=0.5, lw=0))
    abp.save_fig(fig, out / 'learned_mosaic.png')
    return result
