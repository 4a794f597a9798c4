"""Redraw a finished run's comparison figures from its checkpoints, without training: after a change to how
abp.py draws them, the committed figures can be made again from the same models.

    python bench/redraw.py --out_dir output        # seconds; needs output/warm and output/cold checkpoints

Rebuilds each mode's State from OUT_DIR/<mode>/checkpoint.pt (common.load_run) and reads its metrics.json, then
calls abp.draw_figures, which draws every figure into OUT_DIR as the end of that `--start both` run did.
metrics.json and the run directories are left as they were.
"""
import json
import sys
from pathlib import Path

from common import abp, load_run, parser


def main():
    a = parser(__doc__, 'the redrawn figures', img_dir=False).parse_args()
    results = {}
    for mode in ('warm', 'cold'):
        mode_dir = Path(a.out_dir) / mode
        if not (mode_dir / 'checkpoint.pt').exists():
            sys.exit(f'redraw.py: error: {mode_dir / "checkpoint.pt"} is missing; run python abp.py first')
        args, state = load_run(mode_dir)
        results[mode] = {'metrics': json.loads((mode_dir / 'metrics.json').read_text()), 'state': state}
    abp.draw_figures(results, abp.load_data(args), args, Path(a.out_dir))
    print(f'redrew the comparison figures in {a.out_dir}')


if __name__ == '__main__':
    main()
