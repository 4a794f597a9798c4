"""Redraw a finished run's comparison figures from its checkpoints, without training: after a change to how
abp.py draws them, the committed figures can be made again from the same models.

    python bench/redraw.py --out_dir output        # seconds; needs output/warm and output/cold checkpoints

Reads OUT_DIR/<mode>/checkpoint.pt and OUT_DIR/<mode>/metrics.json of both modes (a `--start both` run) and
calls abp.compare, which draws every comparison figure into OUT_DIR exactly as the end of that run did.
metrics.json and the run directories are left as they were.
"""
import json
import sys
from pathlib import Path

import torch

from common import abp, load_generator, parser


def results_from_checkpoints(out_dir):
    """abp.run's result per mode, rebuilt from its checkpoint and metrics.json (what abp.compare reads)."""
    results, args = {}, None
    for mode in ('warm', 'cold'):
        mode_dir = Path(out_dir) / mode
        if not (mode_dir / 'checkpoint.pt').exists():
            sys.exit(f'redraw.py: error: {mode_dir / "checkpoint.pt"} is missing; run python abp.py first')
        ck, args, model = load_generator(mode_dir)
        x, names = abp.load_data(args)
        with torch.no_grad():
            x_hat = abp.generate(model.Gnet, ck['z'])
        results[mode] = {'metrics': json.loads((mode_dir / 'metrics.json').read_text()), 'model': model,
                         'z': ck['z'], 'x': x, 'names': names, 'snapshots': ck['snapshots'],
                         'loss': (ck['stat_epochs'], ck['stats']['loss']), 'z_eval': ck['z_eval'],
                         'traces': ck['traces'], 'events': ck['health']['events'], 'frames': ck['frames'],
                         'mask': ck['mask'], 'x_hat': x_hat}
    return results, args


def main():
    p = parser(__doc__, 'the redrawn figures', img_dir=False)
    a = p.parse_args()
    results, args = results_from_checkpoints(a.out_dir)
    abp.compare(results, args, Path(a.out_dir))
    print(f'redrew the comparison figures in {a.out_dir}')


if __name__ == '__main__':
    main()
