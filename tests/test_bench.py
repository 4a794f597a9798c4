"""The benchmarks are lists of flag sets: no benchmark reaches into abp, each variant is a different run, the one
cache re-uses a run only while the flags that decide its result are the same (an older abp.py's record
translated), and the timings watch abp.train through its hook."""
import ast
import json
import logging
import shutil
import sys

import pytest
import torch

import abp
from conftest import ROOT, tiny_argv

sys.path.insert(0, str(ROOT / 'bench'))
import ablations  # noqa: E402
import bench  # noqa: E402
import cold_study  # noqa: E402
import common  # noqa: E402
import generalize  # noqa: E402
import handout_cold  # noqa: E402
import seeds  # noqa: E402


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


def key(*flags):
    return common.flags_key(vars(abp.parse_args(list(flags))))


# A record of the abp.py before the rewrite: what it wrote into a study run's summary.json.
OLD = {'start': 'cold', 'img_dir': 'd', 'out_dir': 'o/seed1/x', 'resume': False, 'seed': 1, 'nz': 2, 'img_size': 128,
       'gen_width': 16, 'gen_max_ch': 256, 'batchnorm': False, 'langevin_step_size': 0.03, 'langevin_num_steps': 2,
       'cold_langevin_num_steps': 1, 'cold_langevin_step_size': 0.02, 'cold_init': 'sir', 'cold_proposals': 32,
       'cold_sobol': True, 'cold_chains': 4, 'langevin_step_cap': 1.0, 'curvature_every': 10,
       'langevin_noise_scale': 1.0, 'standardize_z': None, 'mse_sigma': 2.0, 'prior_sigma': 1.0, 'lr': 0.005,
       'beta1': 0.5, 'beta2': 0.999, 'gamma': 0.999, 'n_epochs': 400, 'guard': True, 'ninterp': 12, 'n_log': 80,
       'n_plot': 400, 'n_stats': 20, 'threads': 1, 'parallel': None, 'occlude': 'none'}
TODAY = ['--start', 'cold', '--img_dir', 'd', '--n_epochs', '400', '--n_log', '80', '--n_plot', '400']


def test_an_old_record_is_keyed_as_todays_flags():
    assert common.flags_key(OLD, 11) == key(*TODAY)
    assert common.flags_key({**OLD, 'threads': 0, 'parallel': True, 'cold_beta1': 0.5}, 11) == key(*TODAY)
    assert common.flags_key({**OLD, 'cold_init': 'prior'}, 11) == key(*TODAY, '--cold_proposals', '0')
    assert common.flags_key({**OLD, 'cold_proposals': 64}, 11) == key(*TODAY, '--cold_proposals', '64')
    assert common.flags_key({**OLD, 'lr': 0.01}, 11) == key(*TODAY, '--lr', '0.01') != key(*TODAY)
    assert common.flags_key({**OLD, 'batch_size': 8}, 11) == key(*TODAY, '--batch_size', '8') != key(*TODAY)


@pytest.mark.parametrize('change', [{'cold_init': 'fixed'}, {'cold_init': 'annealed'}, {'cold_init': 'chains'},
                                    {'cold_sobol': False}, {'guard': False}, {'gen_width': 32}, {'gen_max_ch': 512},
                                    {'batchnorm': True}, {'cold_chains': 8}, {'curvature_every': 5},
                                    {'cold_beta1': 0.9}, {'cold_proposals': 16}])
def test_an_old_record_that_no_flag_reproduces_matches_nothing(change):
    """Removed flags away from the value today's code has, and a cold start over fewer proposals than today's
    abp.py draws for 11 images (at least two per image, a power of two: 32)."""
    assert common.flags_key({**OLD, **change}, 11) is None


def test_old_proposals_need_the_number_of_images():
    assert common.flags_key({**OLD, 'cold_proposals': 16}, 8) == key(*TODAY, '--cold_proposals', '16')   # 16 for 8
    assert common.flags_key(OLD, None) is None and common.flags_key(OLD, 17) is None                   # 64 for 17
    warm = {**OLD, 'start': 'warm', 'cold_proposals': 16}                                             # never drawn
    assert common.flags_key(warm, None) == key(*TODAY[2:], '--start', 'warm', '--cold_proposals', '16')


def test_every_study_variant_is_a_different_run():
    for variants in (ablations.ABLATIONS, cold_study.VARIANTS):
        keys = [str(key('--start', mode, *flags)) for _, _, mode, flags in variants]
        assert len(set(keys)) == len(keys)
    handout = abp.chain_for(abp.parse_args(handout_cold.HANDOUT), 'cold')
    assert (handout.init, handout.steps, handout.step_size, handout.cap) == ('prior', 120, 0.05, 0)


def test_bench_cache_reuses_the_same_flags_and_reruns_a_changed_one(img_dir, tmp_path, monkeypatch, fast_figures):
    calls = []
    real_main = abp.main
    monkeypatch.setattr(abp, 'main', lambda argv: calls.append(argv) or real_main(argv))
    argv = tiny_argv(img_dir, tmp_path / 'run', '--start', 'warm', '--n_epochs', '1')
    first = common.run_cached(argv)
    assert len(calls) == 1 and first['warm']['epochs'] == 1
    assert common.run_cached(tiny_argv(img_dir, tmp_path / 'other', '--start', 'warm', '--n_epochs', '1'),
                             also=[tmp_path / 'run']) == first and len(calls) == 1       # out_dir: not in the key
    changed = common.run_cached(argv + ['--lr', '1e-3'])
    assert len(calls) == 2 and changed['args']['lr'] == 1e-3
    assert common.run_cached(argv + ['--lr', '1e-3']) == changed and len(calls) == 2
    summary = tmp_path / 'run' / 'warm' / 'summary.json'             # the same run, recorded by the old abp.py
    args = {k: v for k, v in changed['args'].items() if k != 'batch_size'}
    summary.write_text(json.dumps({**changed, 'args': {**args, 'cold_init': 'sir', 'gen_width': 16, 'threads': 1}}))
    assert common.run_cached(argv + ['--lr', '1e-3'])['args']['threads'] == 1 and len(calls) == 2
    summary.write_text(json.dumps({**changed, 'args': {**args, 'cold_init': 'sir', 'gen_width': 32}}))
    assert common.cached(tmp_path / 'run', abp.parse_args(argv + ['--lr', '1e-3'])) is None    # another generator


def test_a_run_the_guard_gave_up_on_is_recorded_and_reused(tmp_path, monkeypatch):
    """run_cached records abp.py's last word and what the kept checkpoint says, and re-uses that record."""
    calls = []

    def gives_up(argv):
        calls.append(argv)
        (tmp_path / 'warm').mkdir(parents=True, exist_ok=True)
        torch.save({'stats': {'psnr_db': [10.0, 17.6129]}, 'events': [{}] * 5, 'seconds': 33.0833, 'z': torch.zeros(7, 2)},
                   tmp_path / 'warm' / 'checkpoint.pt')
        try:
            raise abp.Diverged('the PSNR fell')
        except abp.Diverged as e:
            raise SystemExit(f'abp.py: diverged: {e}')

    monkeypatch.setattr(abp, 'main', gives_up)
    argv = ['--img_dir', str(tmp_path), '--out_dir', str(tmp_path), '--start', 'warm']
    r = common.run_cached(argv)
    assert r['diverged'] == 'the PSNR fell' and r['stopped'] == 'abp.py: diverged: the PSNR fell'
    assert r['checkpoints'] == ['warm'] and r['n_images'] == 7
    assert r['kept'] == {'warm': {'recon_psnr_db': 17.613, 'guard_events': 5, 'seconds': 33.08}}
    assert common.run_cached(argv) == r and len(calls) == 1
    (tmp_path / 'warm' / 'output.log').write_text('00:00 warm start: 7 images\n')
    assert generalize.mode_row(tmp_path, 'warm', None, r['kept']['warm'])['gave_up'] is True


def test_a_run_the_guard_acted_on_under_another_rule_is_trained_again(tmp_path, monkeypatch):
    """A record whose guard events came from another guard rule is stale: run_cached trains it again; a record
    the guard never acted on stays valid under any rule."""
    calls = []

    def trains(argv):
        calls.append(argv)
        abp.write_json({'warm': {'guard_events': [{'epoch': 3}]}, 'guard_rule': abp.GUARD_RULE, 'n_images': 7,
                        'args': vars(abp.parse_args(argv))}, tmp_path / 'warm' / 'summary.json')

    monkeypatch.setattr(abp, 'main', trains)
    argv = ['--img_dir', str(tmp_path), '--out_dir', str(tmp_path), '--start', 'warm']
    (tmp_path / 'warm').mkdir()
    old_rule = {**abp.GUARD_RULE, 'patience': 1}
    abp.write_json({'warm': {'guard_events': [{'epoch': 3}]}, 'guard_rule': old_rule, 'n_images': 7,
                    'args': vars(abp.parse_args(argv))}, tmp_path / 'warm' / 'summary.json')
    assert common.run_cached(argv)['guard_rule'] == abp.GUARD_RULE and len(calls) == 1
    assert common.run_cached(argv) and len(calls) == 1                        # today's record is re-used
    assert not common.stale({'warm': {'guard_events': []}})                   # never acted: any rule
    assert common.stale({'diverged': 'x', 'guard_rule': old_rule})


def test_collapse_is_read_from_the_last_run_in_the_log(tmp_path):
    """generalize.collapsed: the final PSNR 6 dB or more below the best the log shows since the last start."""
    line = '00:00:01 warm epoch   100 loss 1.0 psnr {:6.2f} dB z mean (+0.00, +0.00)\n'
    log = '00:00:00 warm start: 4 images\n' + line.format(30.0) + '00:00:09 warm start: 4 images\n' + line.format(20.0)
    (tmp_path / 'warm').mkdir()
    (tmp_path / 'warm' / 'output.log').write_text(log)
    assert not generalize.collapsed(tmp_path / 'warm', 19.0)
    assert generalize.collapsed(tmp_path / 'warm', 13.9)


def test_seed_summary_is_mean_and_sample_std():
    """seeds.py's summary of a metric: mean and sample standard deviation (n - 1), against numpy."""
    import numpy as np
    rows = [{'warm': {'recon_psnr_db': v}} for v in (31.0, 31.5, 30.2)]
    got = seeds.spread(rows, 'warm', 'recon_psnr_db')
    assert got['mean'] == round(float(np.mean([31.0, 31.5, 30.2])), 3)
    assert got['std'] == round(float(np.std([31.0, 31.5, 30.2], ddof=1)), 3)
    assert (got['min'], got['max'], got['spread']) == (30.2, 31.5, 1.3)


def test_timing_watches_abp_train_through_its_hook(img_dir, tmp_path):
    """bench.watch runs abp.train's own epochs: the PSNR it sees each epoch is what a plain abp.train reports."""
    cfg = bench.config(str(img_dir), ['--img_size', '16'], 'cold')
    assert cfg[1].mode == 'cold' and len(cfg[2]) == 4
    marks = bench.watch(cfg, lambda m: len(m) == 3)
    args, chain, data = cfg
    seen = []

    def hook(st, loss, psnr_db):
        seen.append((st.epoch, psnr_db))
        if len(seen) == 3:
            raise bench.Enough

    with pytest.raises(bench.Enough):
        abp.train(abp.new_state(args, len(data)), data, chain, args, tmp_path, logging.getLogger('test'), hook)
    assert [(e, db) for e, _, db in marks] == seen and [e for e, _ in seen] == [1, 2, 3]
    assert bench.seconds_per_epoch(cfg, 2) > 0
    curve, n = bench.psnr_within(cfg, 0.2, every=0.05)
    assert n >= 1 and curve[-1][0] >= 0.2 and len(curve) <= n


def test_flops_grow_by_one_langevin_pass_per_step(img_dir):
    f = [bench.flops_per_epoch(bench.config(str(img_dir), ['--img_size', '16', '--langevin_step_cap', '0',
                                                           '--langevin_num_steps', str(k)])) for k in (1, 2, 3)]
    assert f[2] - f[1] == f[1] - f[0] > 0
    capped = bench.flops_per_epoch(bench.config(str(img_dir), ['--img_size', '16', '--langevin_num_steps', '1']))
    assert capped > f[0]                          # the step cap's share of a posterior-width measurement


def test_a_finished_run_is_rebuilt_and_its_figures_redrawn(tiny_run, tmp_path, monkeypatch, fast_figures):
    out = tmp_path / 'out'
    shutil.copytree(tiny_run, out)
    args, state = common.load_run(out / 'warm')
    ck = torch.load(out / 'warm' / 'checkpoint.pt', weights_only=False)
    assert state.epoch == 6 and torch.equal(state.z, ck['z']) and args.img_size == 16
    assert all(torch.equal(v, ck['model'][k]) for k, v in state.model.state_dict().items())
    (out / 'compare_recon.jpg').unlink()
    monkeypatch.setattr(sys, 'argv', ['redraw.py', '--out_dir', str(out)])
    import redraw
    redraw.main()
    assert (out / 'compare_recon.jpg').exists()
