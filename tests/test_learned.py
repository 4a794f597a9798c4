"""The measurements of bench/learned.py (its studies in bench/learned_*.py) and the studies' statistics, against independent computations; its
parts that re-train (heldout, theory) on tiny images."""
import argparse
import json
import statistics
import sys

import numpy as np
import pytest
import torch

import abp
from conftest import ROOT, tiny_argv

sys.path.insert(0, str(ROOT / 'bench'))
import common  # noqa: E402
import learned_heldout  # noqa: E402
import learned_line  # noqa: E402
import learned_mosaic  # noqa: E402
import learned_theory  # noqa: E402


def test_over_seeds_is_mean_and_sample_std_of_the_finished_runs():
    runs = [{'recon_psnr_db': v, 'sample_nn_psnr_db_median': 20 + v, 'sample_coverage': c, 'seconds_per_epoch': 0.1,
             'z_std': [v, 1.0], 'first_layer_norm': 10 * v, 'guard_events': [{}] * e}
            for v, c, e in ((28.0, 11, 0), (29.5, 10, 2), (30.1, 11, 1))] + [{'diverged': 'gave up'}]
    r = common.over_seeds(runs)
    done = [28.0, 29.5, 30.1]
    assert r['n_runs'] == 4 and r['n_diverged'] == 1
    assert r['recon_psnr_db'] == round(statistics.mean(done), 4)
    assert r['recon_psnr_db_std'] == round(statistics.stdev(done), 4)
    assert r['sample_coverage'] == round(32 / 3, 4)
    assert r['guard_events'] == [0, 2, 1, 1]                 # a run the guard gave up on counts once more
    assert r['z_std'] == [round(statistics.mean(done), 4), 1.0]
    one = common.over_seeds(runs[:1])
    assert one['recon_psnr_db'] == 28.0 and one['recon_psnr_db_std'] is None


def test_tile_neighbour_psnr_matches_a_direct_computation():
    """A 3 x 3 panel laid out as save_interp writes it: each neighbouring pair's PSNR, computed tile by tile."""
    rng = np.random.default_rng(0)
    size, n = 8, 3
    tiles = rng.random((n, n, size, size, 3))
    tiles[0, 1] = tiles[0, 0]                                 # one identical pair
    panel = np.ones((2 + n * (size + 2), 2 + n * (size + 2), 3))
    for r in range(n):
        for c in range(n):
            panel[2 + r * (size + 2):2 + r * (size + 2) + size, 2 + c * (size + 2):2 + c * (size + 2) + size] = tiles[r, c]
    got = sorted(learned_mosaic.tile_neighbour_db(panel, n, size).tolist())
    want = []
    for r in range(n):
        for c in range(n):
            for r2, c2 in ((r + 1, c), (r, c + 1)):
                if r2 < n and c2 < n:
                    mse = np.mean((tiles[r, c] - tiles[r2, c2]) ** 2)
                    want.append(10 * np.log10(1 / max(mse, 1e-10)))
    assert len(got) == 2 * n * (n - 1) == len(want)
    assert np.allclose(got, sorted(want), atol=1e-6)
    assert max(got) == 100.0                                  # the identical pair, at the floor of 1e-10


def test_tile_neighbours_read_the_panel_abp_writes(tmp_path):
    """On a real save_interp panel (a random generator: every tile differs) the neighbour PSNRs are those of the
    generated tiles themselves, as the PNG stores them (8 bits); a tile read one pixel off would not match."""
    torch.manual_seed(0)
    gen = abp.GenNet(nz=2, img_size=8)
    gen.apply(abp.weights_init_xavier)
    args = abp.parse_args(['--img_size', '8', '--ninterp', '4'])
    abp.save_interp(gen, args, [3.0, 3.0], 'cpu', tmp_path / 'p.png')
    from PIL import Image
    panel = np.asarray(Image.open(tmp_path / 'p.png').convert('RGB')) / 255.0
    img = abp.generate(gen, abp.interp_grid(2, 4, [3.0, 3.0], 'cpu'))
    tiles = (abp.to_unit(img) * 255 + 0.5).clamp(0, 255).floor().double().div(255).view(4, 4, 3, 8, 8)
    want = [10 * np.log10(1 / max((tiles[r, c] - tiles[r2, c2]).pow(2).mean().item(), 1e-10))
            for r in range(4) for c in range(4) for r2, c2 in ((r + 1, c), (r, c + 1)) if r2 < 4 and c2 < 4]
    got = learned_mosaic.tile_neighbour_db(panel, 4, 8).tolist()
    assert len(set(np.round(want, 3))) > 10                    # the tiles differ
    assert np.allclose(sorted(got), sorted(want), atol=1e-6)


def test_held_out_images_are_spread_over_both_groups():
    names = [f'lion_{i}.jpg' for i in range(1, 6)] + [f'tiger_{i}.jpg' for i in range(1, 7)]
    held, kept = learned_heldout.split(names, 3)
    assert len(held) == 3 and sorted(held + kept) == list(range(11))
    groups = {names[i].split('_')[0] for i in held}
    assert groups == {'lion', 'tiger'}
    assert learned_heldout.split(names[:3], 3) == ([], [0, 1, 2])    # too few images: nothing held out


def test_line_pair_is_the_closest_tiger_and_lion():
    names = ['lion_1.jpg', 'lion_2.jpg', 'tiger_1.jpg', 'tiger_2.jpg']
    z = torch.tensor([[0.0, 0.0], [3.0, 3.0], [2.9, 3.2], [-2.0, 0.0]])
    assert learned_line.line_pair(names, z) == (2, 1)              # tiger_1 and lion_2 are 0.22 apart
    i, j = learned_line.line_pair(['a.png', 'b.png', 'c.png'], torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]]))
    assert {i, j} == {0, 2}                                   # no groups: the two codes farthest apart


def test_sir_ess_leaves_training_draws_unchanged_and_is_m_for_equal_weights():
    args = abp.parse_args(['--img_size', '8', '--cold_proposals', '16'])
    model, cold = abp.Model(args), abp.chain_for(args, 'cold')
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    torch.manual_seed(5)
    ess = learned_theory.sir_ess(model.Gnet, x, cold)
    after = torch.rand(4)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(4))                  # the RNG state was put back
    assert ((ess >= 1 - 1e-4) & (ess <= 16 + 1e-4)).all()
    with torch.no_grad():                                     # a generator that ignores z: all weights equal
        model.Gnet.fc.weight.zero_()
    assert torch.allclose(learned_theory.sir_ess(model.Gnet, x, cold), torch.full((3,), 16.0), atol=1e-3)


def test_theory_measures_a_training_it_leaves_as_it_was(img_dir, tmp_path):
    """theory_run: measurements at epoch 0 and every `every` epochs, each step at most the chain's and within the
    cap, ESS between 1 and the proposals; the final PSNR is that of the same training without measurements."""
    args = abp.parse_args(tiny_argv(img_dir, tmp_path, '--n_epochs', '4', '--n_plot', '4', '--n_log', '4'))
    data = abp.load_data(args)
    series, final = learned_theory.theory_run(args, data, 'cold', every=2)
    assert [r['epoch'] for r in series] == [0, 2, 4]
    cold = abp.chain_for(args, 'cold')
    for r in series:
        assert all(0 < s <= min(cold.step_size, w) + 1e-6 for s, w in zip(r['step'], r['width']))
        assert all(1 - 1e-3 <= e <= cold.n_proposals(len(data), len(data)) + 1e-3 for e in r['ess'])
        assert r['lambda_max'] == [pytest.approx(w ** -2, rel=2e-3, abs=0.01) for w in r['width']]
    state = abp.new_state(args, len(data))
    abp.train(state, data, cold, args, tmp_path / 'plain', abp.get_logger(tmp_path / 'plain'))
    assert final == round(state.psnr.mean().item(), 3)


def test_heldout_infers_codes_for_images_left_out(img_dir, tiny_run, tmp_path, fast_figures):
    """heldout: a run on the images minus one (cached, 16 px as the default run), the left-out image's z inferred,
    its PSNR beside three references and the figure; then the same part again re-uses that run."""
    models = {m: common.load_run(tiny_run / m) for m in ('warm', 'cold')}
    data = abp.load_data(models['warm'][0])
    x, names = data.batch(None).cpu(), data.names
    a = argparse.Namespace(img_dir=str(img_dir), out_dir=str(tmp_path), holdout=1, seed=1, epochs=2, proposals=64,
                           steps=3)
    r = learned_heldout.heldout(models, x, names, a, tmp_path)
    assert r['held_out'] == [names[1]] and r['trained_on'] == [names[i] for i in (0, 2, 3)]
    for mode in ('warm', 'cold'):
        assert len(r[mode]['heldout_db']) == 1 and len(r[mode]['z'][0]) == 2
        own = abp.psnr(abp.generate(models[mode][1].model.Gnet, models[mode][1].z[1:2]), x[1:2]).item()
        assert r[mode]['own_recon_db'] == [round(own, 3)]
    assert json.loads((tmp_path / 'heldout' / 'metrics.json').read_text())['args']['img_size'] == 16
    assert (tmp_path / 'learned_heldout.jpg').exists() and sorted(p.name for p in (tmp_path / 'images').iterdir()) == \
        sorted(r['trained_on'])
    assert learned_heldout.heldout(models, x, names, a, tmp_path) == r         # cached run, seeded inference


def test_over_seeds_summarises_each_seeds_learned_json(tmp_path):
    """over_seeds reads seed 1's learned.json in OUT_DIR/learned and seed S's in seedS/, and gives per mode each
    compared figure's values, mean and sample std; a seed that lacks a part is left out of that figure."""
    import learned
    out = tmp_path / 'learned'
    for seed, share, wander in ((1, 0.1, 0.3), (2, 0.2, 0.5), (3, 0.6, None)):
        d = out if seed == 1 else out / f'seed{seed}'
        d.mkdir(parents=True, exist_ok=True)
        doc = {'neighbours': {m: {'copy_share': share} for m in ('warm', 'cold')}}
        if wander is not None:
            doc['theory'] = {m: {'z_std_late_median': wander} for m in ('warm', 'cold')}
        (d / 'learned.json').write_text(json.dumps(doc))
    s = learned.over_seeds(out)
    assert s['seeds'] == [1, 2, 3]
    assert s['warm']['copy_share']['values'] == [0.1, 0.2, 0.6]
    assert s['warm']['copy_share']['mean'] == pytest.approx(0.3, abs=1e-4)
    assert s['warm']['copy_share']['std'] == pytest.approx(float(np.std([0.1, 0.2, 0.6], ddof=1)), abs=1e-4)
    assert s['cold']['code_wander']['values'] == [0.3, 0.5] and s['cold']['heldout_db']['mean'] is None
