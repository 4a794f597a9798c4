"""The benchmarks are lists of flag sets: no benchmark reaches into abp, each variant is a different run,
and the one cache re-uses a run only while every flag is the same."""
import ast
import sys

import pytest

import abp
from conftest import ROOT, tiny_argv

sys.path.insert(0, str(ROOT / 'bench'))
import cold_study  # noqa: E402
import common  # noqa: E402


def rooted_at(node, name):
    """Is this expression name.something...?"""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return isinstance(node, ast.Name) and node.id == name


@pytest.mark.parametrize('path', sorted((ROOT / 'bench').glob('*.py')), ids=lambda p: p.name)
def test_no_benchmark_assigns_to_abp(path):
    """A benchmark that swaps abp's functions or edits a model's flags mid-run studies something no flag can
    reproduce, and a refactor of abp can silently turn it into the default run."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            assert not rooted_at(t, 'abp'), f"{path.name}:{node.lineno} assigns to abp"
            assert not (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Attribute)
                        and t.value.attr == 'args'), f"{path.name}:{node.lineno} edits a run's args"
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'setattr':
            assert not rooted_at(node.args[0], 'abp'), f"{path.name}:{node.lineno} setattr on abp"


def variant_args(flags):
    return abp.parse_args(['--start', 'cold', '--img_size', '16', '--gen_width', '4', *flags])


def test_every_cold_study_variant_is_a_different_run():
    keys = [common.flags_key(vars(variant_args(flags))) for _, _, flags in cold_study.VARIANTS]
    assert len({str(k) for k in keys}) == len(keys)


def test_cold_study_variants_with_different_starts_start_differently():
    """Same seed, same generator: variants that differ in where the chain starts (--cold_init,
    --cold_proposals, --cold_sobol, --cold_chains) give different starting z."""
    x = abp.torch.rand(5, 3, 16, 16) * 2 - 1
    starts = {}
    for key, _, flags in cold_study.VARIANTS:
        args = variant_args(flags)
        chain = abp.chain_for(args, 'cold')
        how = (chain.init, chain.proposals if chain.init == 'sir' else None, chain.n_chains if chain.init == 'chains' else None,
               chain.steps if chain.init == 'chains' else None, chain.sobol if chain.init == 'sir' else None)
        state = abp.new_state(args, len(x), chain)
        abp.torch.manual_seed(7)
        starts.setdefault(how, abp.chain_start(chain, state, x, args))
    assert len(starts) >= 5                      # prior; sir with 3 Sobol proposal counts; independent draws
    zs = list(starts.values())
    for i in range(len(zs)):
        for j in range(i):
            assert not abp.torch.allclose(zs[i], zs[j]), (list(starts)[i], list(starts)[j])


def test_bench_cache_reuses_the_same_flags_and_reruns_a_changed_one(img_dir, tmp_path, monkeypatch, fast_figures):
    calls = []
    real_main = abp.main
    monkeypatch.setattr(abp, 'main', lambda argv: calls.append(argv) or real_main(argv))
    argv = tiny_argv(img_dir, tmp_path / 'run', '--start', 'warm', '--n_epochs', '2')
    first = common.run_cached(argv)
    assert len(calls) == 1 and first['warm']['epochs'] == 2
    assert common.run_cached(argv + ['--threads', '1']) == first and len(calls) == 1    # threads: not in the key
    changed = common.run_cached(argv + ['--lr', '1e-3'])
    assert len(calls) == 2 and changed['args']['lr'] == 1e-3
    assert common.run_cached(argv + ['--lr', '1e-3']) == changed and len(calls) == 2


def test_seed_summary_is_mean_and_sample_std():
    """seeds.py's summary of a metric: mean and sample standard deviation (n - 1), against numpy."""
    import numpy as np
    import seeds
    rows = [{'warm': {'recon_psnr_db': v}} for v in (31.0, 31.5, 30.2)]
    got = seeds.spread(rows, 'warm', 'recon_psnr_db')
    assert got['mean'] == round(float(np.mean([31.0, 31.5, 30.2])), 3)
    assert got['std'] == round(float(np.std([31.0, 31.5, 30.2], ddof=1)), 3)
    assert (got['min'], got['max'], got['spread']) == (30.2, 31.5, 1.3)


def test_spike_events_are_episodes_below_the_best_so_far():
    """spikes.py: an event starts 6 dB below the running best (not below the final value) and ends within 3 dB
    of it; the change over the epochs that led into it is split exactly into the Adam steps' part (after - psnr,
    same codes) and the chains' part (next psnr - after, same parameters); the quiet epochs' largest step
    leaves out every event's run-up."""
    import spikes
    psnr = [10, 20, 13, 13.5, 18, 25, 30, 23, 22, 31, 31]
    after = [11, 19, 13, 14, 19, 26, 24, 22, 30, 31, 31]     # epoch 7's Adam step costs 6 dB, its chains gain 1
    step = [1, 1, 1, 1, 1, 1, 9, 1, 1, 2, 1.5]
    series = {'psnr': psnr, 'after': after, 'step': step, 'burst': step}
    ev, rest = spikes.events(series, run_up=2)
    assert [(e['epoch'], e['best_epoch'], e['depth_db']) for e in ev] == [(3, 2, 7.0), (8, 7, 8.0)]
    assert (ev[1]['adam_db'], ev[1]['chain_db'], ev[1]['step_max']) == ((26 - 25) + (24 - 30), (30 - 26) + (23 - 24), 9)
    assert (ev[0]['adam_db'], ev[0]['chain_db']) == ((11 - 10) + (19 - 20), (20 - 11) + (13 - 19))
    for e in ev:        # the split adds up to the change over the run-up
        assert e['adam_db'] + e['chain_db'] == psnr[e['epoch'] - 1] - psnr[max(0, e['epoch'] - 3)]
    assert rest == 2
    flat = {'psnr': [1, 2, 3], 'after': [1, 2, 3], 'step': [1, 2, 3], 'burst': [1, 1, 1]}
    assert spikes.events(flat) == ([], 3)
    row = spikes.score(series)
    assert row['late_adam_db'] == pytest.approx(sum(after[t] - psnr[t] for t in range(5, 10)) / 5, abs=1e-3)
    assert row['late_chain_db'] == pytest.approx(sum(psnr[t + 1] - after[t] for t in range(5, 10)) / 5, abs=1e-3)


def test_adam_step_is_the_step_adam_took_in_units_of_the_lr():
    """spikes.adam_step against the parameters' actual move: with one parameter tensor and no weight decay,
    Adam moves p by lr * m_hat / (sqrt(v_hat) + eps), so RMS(move) / lr is the reported step."""
    import spikes
    torch = pytest.importorskip('torch')
    torch.manual_seed(0)
    p, c = torch.nn.Parameter(torch.randn(50)), torch.randn(50)
    opt = torch.optim.Adam([p], lr=1e-2, betas=(0.5, 0.999))
    for scale in [1.0] * 3 + [0.01] * 3000 + [1.0]:   # a long quiet stretch, then a burst
        before = p.detach().clone()
        opt.zero_grad()
        (scale * (c * p).sum()).backward()
        opt.step()
        step, burst = spikes.adam_step(opt)
        if scale == 1.0:
            assert step == pytest.approx((p.detach() - before).pow(2).mean().sqrt().item() / 1e-2, rel=1e-4)
    # v_hat still remembers the quiet gradients while m_hat holds half the new one: near (1 - b1) / sqrt(1 - b2)
    assert 10 < step <= 0.5 / 0.001 ** 0.5 and burst > 10


def test_spike_rows_merge_by_run():
    """spikes.py keeps the runs of an earlier invocation that this one did not redo, and never a stale copy of
    one it did."""
    import spikes
    key = dict(flags='', seed=1, epochs=800, folder='faces')
    new = [{**key, 'variant': 'defaults', 'mode': 'warm', 'late_adam_db': 0.1}]
    old = [{**key, 'variant': 'defaults', 'mode': 'warm'}, {**key, 'variant': 'beta1_0.9', 'mode': 'warm'}]
    assert spikes.merged(new, old) == [new[0], old[1]]


def test_folder_study_rows_are_reused_only_under_the_defaults_they_were_made_with():
    """A spikes.py / sharpness.py row stores the abp.py defaults it was made with and is re-used only under those;
    a row recorded before that was made with ROWS_WITHOUT_DEFAULTS' warm Langevin steps."""
    today = common.study_defaults()
    assert common.study_defaults({'defaults': today}) == today
    other = {**today, 'langevin_num_steps': today['langevin_num_steps'] + 1}
    assert common.study_defaults({'defaults': other}) != today
    legacy = common.study_defaults({})
    assert {k: legacy[k] for k in common.ROWS_WITHOUT_DEFAULTS} == common.ROWS_WITHOUT_DEFAULTS
    assert {k: v for k, v in legacy.items() if k not in common.ROWS_WITHOUT_DEFAULTS} == \
        {k: v for k, v in today.items() if k not in common.ROWS_WITHOUT_DEFAULTS}


def test_preconditioned_sharpness_matches_the_explicit_hessian():
    """sharpness.top_eigenvalue against an independent computation: on a generator small enough to form
    its Hessian (torch.autograd.functional.hessian over all parameters as one vector), the largest
    eigenvalue of P^-1/2 H P^-1/2, with P Adam's preconditioner after 5 steps computed here from its state;
    run long enough, the power iteration reaches it. And Adam's threshold."""
    import sharpness
    torch = pytest.importorskip('torch')
    torch.manual_seed(0)
    model = abp.Model(abp.parse_args(['--img_size', '8', '--gen_width', '1', '--gen_max_ch', '2']))
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-2, betas=(0.8, 0.999))
    z, x = torch.randn(3, 2), torch.rand(3, 3, 8, 8) * 2 - 1
    for _ in range(5):
        opt.zero_grad()
        abp.recon_loss(model(z), x, 2.0).backward()
        opt.step()
    shapes, sizes = [p.shape for p in params], [p.numel() for p in params]

    def loss_of(flat):
        ws = [w.view(s) for w, s in zip(flat.split(sizes), shapes)]
        return abp.recon_loss(torch.func.functional_call(model, dict(zip(
            [n for n, _ in model.named_parameters()], ws)), (z.double(),)), x.double(), 2.0)
    flat = torch.cat([p.detach().flatten() for p in params]).double()
    model.double()
    h = torch.autograd.functional.hessian(loss_of, flat)
    b1, b2 = opt.param_groups[0]['betas']                  # P = (1 - b1^t) (sqrt(v_hat) + eps), from Adam's state
    d = torch.cat([((1 - b1 ** 5) * ((opt.state[p]['exp_avg_sq'] / (1 - b2 ** 5)).sqrt() + 1e-8)).rsqrt().flatten()
                   for p in params]).double()
    expected = torch.linalg.eigvalsh(d[:, None] * h * d[None, :])[-1].item()
    u = [torch.randn(p.shape, dtype=torch.float64) for p in params]
    lam, _ = sharpness.top_eigenvalue(model, opt, z.double(), x.double(), 2.0, u, 300)
    assert lam == pytest.approx(expected, rel=1e-3)
    assert sharpness.threshold(0.5, 0.1) == pytest.approx(60.0) and sharpness.threshold(0.9, 1.0) == pytest.approx(38.0)


def test_steps_folders_sets_each_folder_and_seed_side_by_side(tmp_path):
    """bench/steps_folders.py: per folder and seed, one step's warm PSNR minus two steps', their means and the
    guard's runs, checked against sums written out here; a seed missing either file is left out."""
    import json
    import steps_folders
    psnr = {(1, 'two'): [30.0, 40.0], (1, 'one'): [29.0, 41.0], (2, 'two'): [31.0, 38.0], (2, 'one'): [31.5, 38.5]}
    guard = {(1, 'two'): [0, 1], (1, 'one'): [1, 1], (2, 'two'): [0, 0], (2, 'one'): [0, 0]}
    for (seed, steps), values in psnr.items():
        rows = [{'folder': f, 'note': 'defaults', 'warm': {'recon_psnr_db': v, 'guard_events': g, 'seconds': 10.0}}
                for f, v, g in zip(('a', 'b'), values, guard[seed, steps])]
        rows.append({'folder': 'a', 'note': 'no step cap', 'warm': {'recon_psnr_db': 5.0, 'guard_events': 3, 'seconds': 1.0}})
        path = tmp_path / steps_folders.RUNS[seed][steps == 'one']
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({'folders': rows}))
    (tmp_path / steps_folders.RUNS[3][0]).parent.mkdir(parents=True)
    (tmp_path / steps_folders.RUNS[3][0]).write_text(json.dumps({'folders': []}))   # seed 3 without its one-step file
    r = steps_folders.compare(tmp_path)
    assert r['seeds'] == [1, 2] and [f['folder'] for f in r['folders']] == ['a', 'b']
    assert r['folders'][0]['one_minus_two'] == [-1.0, 0.5] and r['folders'][1]['one_minus_two'] == [1.0, 0.5]
    m = r['summary']
    assert m['one_minus_two_mean_per_seed'] == [0.0, 0.5] and m['one_minus_two_mean'] == 0.25
    assert m['one_minus_two_median'] == 0.5                     # of -1, 1, 0.5, 0.5
    assert m['two_steps_mean'] == [35.0, 34.5] and m['one_step_mean'] == [35.0, 35.0]
    assert (m['one_step_lower'], m['one_step_higher'], m['runs']) == (1, 3, 4)
    assert m['two_steps_guard_runs'] == 1 and m['one_step_guard_runs'] == 2 and m['one_step_guard_events'] == 2
    assert m['lower_by'] == [1.0, 1.0] and m['higher_by'] == [0.5, 1.0] and m['two_steps_warm_seconds'] == [20.0, 20.0]
    assert m['two_over_one_seconds'] == [1.0, 1.0]
    assert m['one_minus_two_std_over_seeds'] == round(0.125 ** 0.5, 3)           # sample std of 0, 0.5
    assert m['two_steps_mean_std_over_seeds'] == round(0.125 ** 0.5, 3)          # of 35, 34.5
    assert r['folders'][0]['two_steps_seed_std'] == round((0.5 ** 2 * 2) ** 0.5, 3)     # values 30, 31
    with pytest.raises(SystemExit, match='no seed has both'):
        steps_folders.compare(tmp_path / 'empty')
