"""Prior samples of the default generators beside their nearest training image: how many copy one (learned.py)."""
import math

import torch
from matplotlib.figure import Figure

from common import abp
from learned_common import WIDTH, gen, db, save_photo_figure


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
                        'nearest_image_counts': torch.bincount(idx, minlength=len(x)).tolist(),
                        'shown': [{'nearest': names[i], 'nn_psnr_db': db(v), 'copy': bool(c)}   # the figure's pairs
                                  for i, v, c in zip(idx[:a.shown].tolist(), nn_db[:a.shown], copies[:a.shown])]}
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
            ax.text((2 * c + 1) * h + 1, r * h + h - 6, f'{nn_db[k]:.1f} dB', color=colour, fontsize=7.5, ha='center',
                    va='bottom', bbox=dict(facecolor='white', alpha=0.85, pad=0.5, lw=0))
        ax.set(xticks=[], yticks=[])
        ax.set_title(f"{mode} start: prior sample | nearest training image (PSNR; red: within {a.copy_db:g} dB of "
                     f"the image's own reconstruction);\n{100 * result[mode]['copy_share']:.0f}% of {a.samples} "
                     f"samples are red", fontsize=7.5)
    fig.tight_layout()
    result['jpeg_psnr_db'] = save_photo_figure(fig, out / 'learned_neighbours.jpg')
    return result
