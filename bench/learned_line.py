"""A straight line in z from a tiger's code to a lion's, beside the pixel cross-fade (learned.py)."""
from pathlib import Path

import torch
from matplotlib.figure import Figure

from common import abp
from learned_common import WIDTH, gen, db, save_photo_figure


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
                        'length': db((z[j] - z[i]).norm()),       # longer lines take longer steps between frames
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
