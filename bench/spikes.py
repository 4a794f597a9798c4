"""Why default runs still spike: each PSNR drop split into what the chains did and what Adam did, guard off.

    pip install scikit-image
    python bench/spikes.py                                   # about 40 minutes on 2 cores

On a folder where the guard had to step in on default runs (bench/make_folders.py's faces: 12 faces, 25 px
upscaled, fitted to 40 dB and more), trains each variant's flags for --epochs epochs per mode and seed with
abp's own epoch (abp.train_epoch: Langevin on z, then one Adam step on theta), the guard off, and records
every epoch t:
  psnr        PSNR of g(z_t; theta_{t-1}), the epoch's reconstruction as the guard sees it;
  after       PSNR of g(z_t; theta_t), the same codes after the Adam step;
  step        Adam's step in units of the lr: the RMS over all parameters of m_hat / (sqrt(v_hat) + eps);
  burst       the current gradient against Adam's memory of it: RMS(g) / sqrt(mean v_hat).
The PSNR's change from epoch t to t+1 is exactly the Adam step's part (after_t - psnr_t) plus the chains'
part (psnr_{t+1} - after_t: warm, the epoch's Langevin steps from z_t; cold, a new start from the prior and a step).

Adam moves each parameter by lr * m_hat / sqrt(v_hat). If the gradient jumped after a quiet stretch, v_hat
(beta2 = 0.999) would still hold the small gradients while m_hat (beta1 = 0.5) holds half the new one, and the
step could reach (1 - beta1) / sqrt(1 - beta2) = 15.8 lr where a steady run takes about 1 lr: the first
suspect for the spikes. The split tests it.

An event is an episode of the PSNR 6 dB or more below its best so far (what the guard acts on), ended when it
comes back within 3 dB. For each, the change over the 5 epochs that led into it is split into the Adam steps'
part and the chains' part, with the largest Adam step and burst in them; for each run, the mean of both parts
per epoch over the second half. Prints and writes OUT_DIR/spikes.json; the per-epoch series go to
OUT_DIR/spikes/<variant>_<mode>_<seed>.json (not committed; a row is re-scored from its series while it is
there). A run with the same flags, epochs and folder is re-used from spikes.json.
"""
import json
import math
import time
from pathlib import Path

import torch

from common import abp, folder_study_parser, folder_study_setup, study_defaults

VARIANTS = [  # (key, flags changed from the defaults, the modes they change)
    ('beta1_0.5', ['--beta1', '0.5'], ('warm', 'cold')),           # the defaults
    ('beta1_0.8', ['--beta1', '0.8', '--cold_beta1', '0.8'], ('warm', 'cold')),   # Adam's momentum over 5 steps
    ('beta1_0.9', ['--beta1', '0.9', '--cold_beta1', '0.9'], ('warm', 'cold')),   # over 10 steps, not 2
    ('proposals_64', ['--cold_proposals', '64'], ('cold',)),       # cold chains start nearer each image's code
]
DROP_DB, BACK_DB = abp.GUARD_DROP_DB, 3.0   # an event starts 6 dB below the best so far, ends within 3 dB of it
RUN_UP = 5                                  # epochs before an event whose PSNR change is split


def adam_step(optimizer):
    """(RMS over all parameters of Adam's last step in units of the lr, RMS(grad) / sqrt(mean v_hat))."""
    group = optimizer.param_groups[0]
    b1, b2, eps = *group['betas'], group['eps']
    num, g2, v2, n = 0.0, 0.0, 0.0, 0
    for p in group['params']:
        s = optimizer.state.get(p)
        if not s or p.grad is None:
            continue
        t = float(s['step'])
        m_hat, v_hat = s['exp_avg'] / (1 - b1 ** t), s['exp_avg_sq'] / (1 - b2 ** t)
        num += (m_hat / (v_hat.sqrt() + eps)).pow(2).sum().item()
        g2 += p.grad.pow(2).sum().item()
        v2 += v_hat.sum().item()
        n += p.numel()
    return math.sqrt(num / n), math.sqrt(g2 / max(v2, 1e-30))


def probe(argv, epochs):
    """Train abp's flags argv for `epochs` epochs of the one mode --start names, guard off; returns per-epoch
    lists {'psnr', 'after', 'step', 'burst'} (see the module's docstring)."""
    args = abp.with_defaults(abp.parse_args(argv + ['--no-guard']))
    chain = abp.chain_for(args, args.start)
    x, _ = abp.load_data(args)
    state = abp.new_state(args, len(x), chain)
    series = {'psnr': [], 'after': [], 'step': [], 'burst': []}
    for _ in range(epochs):
        loss, x_hat = abp.train_epoch(state, x, chain, args)          # (1) Langevin on z, (2) one Adam step
        state['epoch'] += 1
        if not torch.isfinite(loss):
            break
        step, burst = adam_step(state['optimizer'])
        after = abp.generate(state['model'].Gnet, state['z'])
        for k, v in (('psnr', abp.psnr(x_hat, x).mean().item()), ('after', abp.psnr(after, x).mean().item()),
                     ('step', step), ('burst', burst)):
            series[k].append(round(v, 4))
    return series


def events(series, run_up=RUN_UP):
    """The episodes of the PSNR DROP_DB below its best so far, each {'epoch' (1-based, where it starts),
    'best_epoch', 'depth_db' (deepest fall), 'adam_db', 'chain_db' (the change over the `run_up` epochs up to
    the event, split: their sum is psnr[epoch] - psnr[epoch - run_up]), 'step_max', 'burst_max' (Adam's, in
    them)}; and the largest step of the epochs outside every episode and its run-up."""
    p, a = series['psnr'], series['after']
    best, best_at, out, inside, quiet = -math.inf, 0, [], False, [True] * len(p)
    for i, v in enumerate(p):
        if inside and v >= best - BACK_DB:
            inside = False
        if not inside and v < best - DROP_DB:
            inside = True
            span = range(max(0, i - run_up), i)                        # the epochs that led into it
            out.append({'epoch': i + 1, 'best_epoch': best_at + 1, 'depth_db': round(best - v, 2),
                        'adam_db': round(sum(a[t] - p[t] for t in span), 2),
                        'chain_db': round(sum(p[t + 1] - a[t] for t in span), 2),
                        'step_max': max(series['step'][t] for t in span),
                        'burst_max': max(series['burst'][t] for t in span)})
            for t in span:
                quiet[t] = False
        if inside:
            out[-1]['depth_db'] = max(out[-1]['depth_db'], round(best - v, 2))
            quiet[i] = False
        if v > best:
            best, best_at = v, i
    rest = [s for s, q in zip(series['step'], quiet) if q]
    return out, max(rest) if rest else None


def score(series):
    """A run's row from its series: final and best PSNR, events, the largest step outside them, and the mean
    Adam and chain parts per epoch over the second half of training."""
    p, a = series['psnr'], series['after']
    ev, rest = events(series)
    half = range(len(p) // 2, len(p) - 1)
    return {'final_psnr_db': p[-1], 'best_psnr_db': max(p), 'epochs_run': len(p), 'events': ev,
            'largest_step_outside': rest, 'late_adam_db': round(sum(a[t] - p[t] for t in half) / len(half), 3),
            'late_chain_db': round(sum(p[t + 1] - a[t] for t in half) / len(half), 3)}


RUN_KEY = ('variant', 'flags', 'mode', 'seed', 'epochs', 'folder')


def summary(rows):
    """Per variant and mode over its seeds: events (summed), the mean final PSNR and second-half parts, and over
    its events the mean 5-epoch split and the largest step; the largest step outside events, per variant."""
    def mean(v):
        return round(sum(v) / len(v), 3) if v else None
    out = {}
    for key in dict.fromkeys(r['variant'] for r in rows):
        out[key] = {}
        for mode in ('warm', 'cold'):
            rs = [r for r in rows if r['variant'] == key and r['mode'] == mode]
            ev = [e for r in rs for e in r['events']]
            if rs:
                out[key][mode] = {'seeds': [r['seed'] for r in rs], 'events': len(ev),
                                  'final_psnr_db': mean([r['final_psnr_db'] for r in rs]),
                                  'late_adam_db': mean([r['late_adam_db'] for r in rs]),
                                  'late_chain_db': mean([r['late_chain_db'] for r in rs]),
                                  'event_adam_db': mean([e['adam_db'] for e in ev]),
                                  'event_chain_db': mean([e['chain_db'] for e in ev]),
                                  'event_step_max': max([e['step_max'] for e in ev], default=None),
                                  'event_burst_max': max([e['burst_max'] for e in ev], default=None),
                                  'step_outside_max': max([r['largest_step_outside'] for r in rs
                                                           if r['largest_step_outside'] is not None], default=None)}
        out[key]['largest_step_outside'] = max([r['largest_step_outside'] for r in rows if r['variant'] == key
                                                and r['largest_step_outside'] is not None], default=None)
    return out


def merged(rows, old):
    """rows, then the rows of old that are runs rows does not have (by RUN_KEY)."""
    have = {tuple(r.get(k) for k in RUN_KEY) for r in rows}
    return rows + [r for r in old if tuple(r.get(k) for k in RUN_KEY) not in have]


def main():
    p = folder_study_parser(__doc__, 'spikes/ and spikes.json', VARIANTS, epochs=800, seeds=[1, 2])
    p.add_argument('--modes', nargs='+', default=['warm', 'cold'], choices=['warm', 'cold'], help='(default: both)')
    a = p.parse_args()
    folder, path, old = folder_study_setup(a, 'spikes')
    out = Path(a.out_dir) / 'spikes'
    out.mkdir(parents=True, exist_ok=True)
    rows, defaults = [], study_defaults()
    for key, flags, modes in [v for v in VARIANTS if v[0] in a.variants]:
        for mode in [m for m in a.modes if m in modes]:
            for seed in a.seeds:
                what = dict(zip(RUN_KEY, (key, ' '.join(flags), mode, seed, a.epochs, a.folder)))
                done = [r for r in old if all(r.get(k) == v for k, v in what.items()) and study_defaults(r) == defaults]
                file = out / f'{key}_{mode}_{seed}.json'
                if done:                                      # re-scored from its series where it is kept
                    rows.append({**done[0], **(score(json.loads(file.read_text())) if file.exists() else {})})
                    continue
                t = time.perf_counter()
                series = probe(['--img_dir', str(folder), '--start', mode, '--seed', str(seed), *flags], a.epochs)
                abp.write_json(series, file)
                rows.append({**what, **score(series), 'seconds': round(time.perf_counter() - t, 1), 'defaults': defaults})
                r = rows[-1]
                print(f"{key:12s} {mode} seed {seed}: final {r['final_psnr_db']:6.2f} dB, {len(r['events'])} events "
                      + ' '.join(f"(ep {e['epoch']}, -{e['depth_db']:.1f} dB; {RUN_UP} epochs before: Adam "
                                 f"{e['adam_db']:+.1f}, chains {e['chain_db']:+.1f}, step {e['step_max']:.2f})"
                                 for e in r['events'])
                      + f"; largest step elsewhere {r['largest_step_outside']}; 2nd half per epoch: Adam "
                        f"{r['late_adam_db']:+.2f}, chains {r['late_chain_db']:+.2f}", flush=True)
                abp.write_json({'folder': a.folder, 'runs': merged(rows, old)}, path)
    runs = merged(rows, old)
    table = summary(runs)
    abp.write_json({'folder': a.folder, 'run_up': RUN_UP, 'summary': table, 'runs': runs}, path)
    for key, modes in table.items():
        print(f"{key:12s} " + '; '.join(f"{m}: {v['events']} events, final {v['final_psnr_db']:.2f} dB, 2nd half "
                                        f"Adam {v['late_adam_db']:+.2f} dB/epoch" for m, v in modes.items()
                                        if isinstance(v, dict)))
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
