"""Mini-batches (--batch_size): every image once per epoch, warm codes that persist, B >= N as the one-batch
epoch, an interrupted batched run resumed, bad values; cold proposals per batch; images held as uint8."""
import json
import math

import pytest
import torch

import abp
from conftest import make_images, run_main, stop_after, strip_times, tiny_argv


@pytest.fixture(scope='module')
def five_dir(tmp_path_factory):
    """5 images: with --batch_size 2, batches of 2, 2 and 1."""
    return make_images(tmp_path_factory.mktemp('five') / 'imgs', n=5, seed=1)


def image_ids(x, images):
    """Which of images (N, 3, H, W) each row of x is: a list of indices (every row must be one of them)."""
    hits = (x.detach().cpu().flatten(1)[:, None] == images.flatten(1)[None]).all(2)
    assert torch.all(hits.sum(1) == 1), hits
    return hits.int().argmax(1).tolist()


@pytest.mark.parametrize('n,b', [(5, 2), (7, 3), (100, 64), (129, 64), (64, 64), (11, 64), (1, 1)])
def test_batches_cover_every_image_once_in_near_equal_batches(n, b):
    """abp.batches: one batch of every image, in order (None), when it fits; otherwise ceil(n / B) batches of at
    most B images whose sizes differ by at most one, together every index once; the order is a function of
    (seed, epoch): the same again on resume, another in another epoch or with another seed."""
    got = abp.batches(n, b, 1, 0)
    if n <= b:
        assert got == [None]
        return
    sizes = [len(i) for i in got]
    assert len(got) == math.ceil(n / b) and max(sizes) <= b and max(sizes) - min(sizes) <= 1, sizes
    assert sorted(torch.cat(got).tolist()) == list(range(n))
    assert all(torch.equal(p, q) for p, q in zip(got, abp.batches(n, b, 1, 0)))
    for other in (abp.batches(n, b, 1, 1), abp.batches(n, b, 2, 0)):
        assert not torch.equal(torch.cat(got), torch.cat(other))


def test_an_epoch_in_mini_batches_visits_every_image_once(five_dir, tmp_path, monkeypatch, fast_figures):
    """5 images, --batch_size 2, both modes: every epoch runs the chains of 2, 2 and 1 images and takes one
    theta step on each of those batches, on the same images as its chains; over the epoch every image exactly
    once. The PSNR the loop watches, and metrics.json's, cover all 5 images."""
    argv = tiny_argv(five_dir, tmp_path, '--n_epochs', '3', '--batch_size', '2', '--n_plot', '100')
    args = abp.parse_args(argv)
    images = abp.load_data(args).batch(None).cpu()
    events = []
    real_batches, real_langevin, real_learn = abp.batches, abp.langevin, abp.learn_step

    def batches(*a):
        events.append(('epoch', None))
        return real_batches(*a)

    def langevin(gen, z, x, chain, s, mask=None, trace=None):
        events.append((f'chain {chain.mode}', image_ids(x, images)))
        return real_langevin(gen, z, x, chain, s, mask, trace)

    def learn_step(model, optimizer, z, x, mse_sigma, mask=None):
        events.append(('learn', image_ids(x, images)))
        return real_learn(model, optimizer, z, x, mse_sigma, mask)

    for name, f in (('batches', batches), ('langevin', langevin), ('learn_step', learn_step)):
        monkeypatch.setattr(abp, name, f)
    abp.main(argv)
    epochs = []
    for kind, ids in events:
        if kind == 'epoch':
            epochs.append([])
        else:
            epochs[-1].append((kind, ids))
    assert len(epochs) == 6                                  # 3 warm, then 3 cold
    for e, steps in enumerate(epochs):
        mode = 'warm' if e < 3 else 'cold'
        assert [k for k, _ in steps] == [f'chain {mode}', 'learn'] * 3, steps
        chains, learns = steps[0::2], steps[1::2]
        assert [ids for _, ids in chains] == [ids for _, ids in learns]
        assert sorted(len(ids) for _, ids in learns) == [1, 2, 2]
        assert sorted(i for _, ids in learns for i in ids) == [0, 1, 2, 3, 4]
    assert epochs[0] != epochs[1]                            # another order each epoch
    m = json.loads((tmp_path / 'metrics.json').read_text())
    for mode in ('warm', 'cold'):
        per_image = m[mode]['recon_psnr_db_per_image']
        assert len(per_image) == 5 and m[mode]['recon_psnr_db'] == pytest.approx(sum(per_image) / 5, abs=2e-3)
        stats = torch.load(tmp_path / mode / 'checkpoint.pt', weights_only=False)['stats']
        assert stats['epoch'][-1] == 3 and stats['psnr_db'][-1] == pytest.approx(m[mode]['recon_psnr_db'], abs=1e-3)


@pytest.mark.parametrize('standardize', [True, False])
def test_warm_codes_persist_across_epochs_and_batches(five_dir, tmp_path, monkeypatch, fast_figures, standardize):
    """Replaying a warm run with --batch_size 2 on 5 images from what each step saw: every batch's chains start
    from its images' codes as the last step left them (in the previous batch or the previous epoch), and
    only its images' codes change, except through the standardisation, which maps every code by one affine
    map and leaves every image's g(z) as it was. The theta step sees the batch's current codes; the
    checkpoint holds them all."""
    events = []
    real_new_state, real_batches, real_langevin = abp.new_state, abp.batches, abp.langevin
    real_std, real_learn = abp.standardize_latents, abp.learn_step

    def new_state(args, n):
        state = real_new_state(args, n)
        events.append(('init', state.z.clone()))
        return state

    def batches(*a):
        out = real_batches(*a)
        events.append(('batches', out))
        return out

    def langevin(gen, z, x, chain, s, mask=None, trace=None):
        out = real_langevin(gen, z, x, chain, s, mask, trace)
        events.append(('chain', (z.clone(), out.clone())))
        return out

    def standardize_latents(gen, z):
        g_before = abp.generate(gen, z)
        out = real_std(gen, z)
        events.append(('std', (z.clone(), out.clone(), g_before, abp.generate(gen, out))))
        return out

    def learn_step(model, optimizer, z, x, mse_sigma, mask=None):
        events.append(('learn', z.clone()))
        return real_learn(model, optimizer, z, x, mse_sigma, mask)

    for name, f in (('new_state', new_state), ('batches', batches), ('langevin', langevin),
                    ('standardize_latents', standardize_latents), ('learn_step', learn_step)):
        monkeypatch.setattr(abp, name, f)
    abp.main(tiny_argv(five_dir, tmp_path, '--start', 'warm', '--n_epochs', '3', '--batch_size', '2',
                       '--standardize_z' if standardize else '--no-standardize_z'))
    kinds = [k for k, _ in events]
    assert kinds[0] == 'init' and kinds.count('batches') == 3 and kinds.count('chain') == 9
    assert kinds.count('std') == (9 if standardize else 0) and kinds.count('learn') == 9
    queue, rows = [], None
    for kind, v in events:
        if kind == 'init':
            codes = v
        elif kind == 'batches':
            assert not queue
            queue = list(v)
        elif kind == 'chain':
            rows = queue.pop(0)
            z_in, z_out = v
            assert torch.equal(z_in, codes[rows])            # the chain continues from the persisted codes
            assert not torch.equal(z_out, z_in)
            codes = codes.clone()
            codes[rows] = z_out
        elif kind == 'std':
            z_before, z_after, g_before, g_after = v
            assert torch.equal(z_before, codes)              # the other images' codes are as they were
            m, c = z_before.mean(0), z_before.std(0)
            assert torch.allclose(z_after, (z_before - m) / c, atol=1e-5)
            assert torch.allclose(g_after, g_before, atol=1e-5), (g_after - g_before).abs().max()
            codes = z_after
        else:
            assert torch.equal(v, codes[rows])
    assert torch.equal(torch.load(tmp_path / 'warm' / 'checkpoint.pt', weights_only=False)['z'], codes)


def test_a_batch_as_large_as_the_folder_is_the_one_batch_epoch(tiny_run, img_dir, tmp_path, monkeypatch,
                                                              fast_figures):
    """--batch_size 4 on the 4 images gives tiny_run's metrics (--batch_size 64, the default) exactly, with one
    theta step per epoch on all of them; --batch_size 3 (two batches of 2) gives others, in both modes."""
    assert json.loads((tiny_run / 'metrics.json').read_text())['args']['batch_size'] == 64
    real, steps = abp.learn_step, []

    def learn_step(model, optimizer, z, x, mse_sigma, mask=None):
        steps.append(len(x))
        return real(model, optimizer, z, x, mse_sigma, mask)

    monkeypatch.setattr(abp, 'learn_step', learn_step)
    want = strip_times(json.loads((tiny_run / 'metrics.json').read_text()))
    abp.main(tiny_argv(img_dir, tmp_path / 'b4', '--batch_size', '4'))
    assert steps == [4] * 12
    assert strip_times(json.loads((tmp_path / 'b4' / 'metrics.json').read_text())) == want
    steps.clear()
    abp.main(tiny_argv(img_dir, tmp_path / 'b3', '--batch_size', '3'))
    assert steps == [2] * 24
    got = strip_times(json.loads((tmp_path / 'b3' / 'metrics.json').read_text()))
    assert got['warm'] != want['warm'] and got['cold'] != want['cold']


def test_an_interrupted_batched_run_resumed_ends_as_an_uninterrupted_one(img_dir, tmp_path, monkeypatch,
                                                                        fast_figures):
    """--batch_size 2 on the 4 images: stopped after warm's epoch 2, resumed, stopped after cold's epoch 3,
    resumed again: codes, generator, Adam's moments, RNG and metrics equal those of the same run without a
    stop (and the step cap's widths were restored: without them the resumed steps differ)."""
    # steps of 1: each image's step is its posterior width (the cap), measured at epoch 0 and kept in the checkpoint
    argv = ('--batch_size', '2', '--n_epochs', '4', '--langevin_step_size', '1', '--cold_langevin_step_size', '1')
    abp.main(tiny_argv(img_dir, tmp_path / 'full', *argv))
    cut = tmp_path / 'cut'
    stops = stop_after(monkeypatch, ('warm', 2), ('cold', 3))
    for stopped in ('warm', 'cold'):
        with pytest.raises(SystemExit) as e:
            abp.main(tiny_argv(img_dir, cut, *argv, '--resume'))
        assert e.value.code == 130
        ck = torch.load(cut / stopped / 'checkpoint.pt', weights_only=False)
        assert ck['epoch'] == {'warm': 2, 'cold': 3}[stopped]
    assert not stops
    abp.main(tiny_argv(img_dir, cut, *argv, '--resume'))
    for mode in ('warm', 'cold'):
        want, got = (torch.load(d / mode / 'checkpoint.pt', weights_only=False) for d in (tmp_path / 'full', cut))
        assert got['epoch'] == 4 and torch.equal(want['z'], got['z']), mode
        assert torch.equal(want['rng'], got['rng']), mode
        for k, v in want['model'].items():
            assert torch.equal(v, got['model'][k]), (mode, k)
        for p, moments in want['optimizer']['state'].items():
            for k, v in moments.items():
                assert torch.equal(v, got['optimizer']['state'][p][k]), (mode, p, k)
    a, b = (json.loads((d / 'metrics.json').read_text()) for d in (tmp_path / 'full', cut))
    assert strip_times(a) == strip_times(b)


@pytest.mark.parametrize('value,says', [('0', 'must be > 0'), ('-3', 'must be > 0'), ('x', 'a whole number'),
                                        ('2.5', 'a whole number')])
def test_a_bad_batch_size_is_a_one_line_error(img_dir, tmp_path, capsys, value, says, fast_figures):
    """--batch_size 0, -3, x or 2.5: argparse's exit status 2, and one error line naming the flag, what it
    accepts and the value given; nothing is trained."""
    code, err = run_main(tiny_argv(img_dir, tmp_path / 'out', '--batch_size', value), capsys)
    assert code == 2
    errors = [line for line in err if 'error' in line]
    assert len(errors) == 1 and errors[0] == err[-1], err
    assert 'argument --batch_size' in err[-1] and says in err[-1] and repr(value) in err[-1], err[-1]
    assert 'Traceback' not in '\n'.join(err) and not (tmp_path / 'out').exists()


@pytest.mark.parametrize('proposals', [0, 1, 5, 32, 100])
def test_cold_proposals_per_batch_are_two_per_image_of_the_folder_at_most_eight_per_image_of_the_batch(proposals):
    """Chain.n_proposals(b, n) = max(--cold_proposals, min(2n, 8b) rounded up to a power of two), written out here
    with logarithms."""
    chain = abp.chain_for(abp.parse_args(['--cold_proposals', str(proposals)]), 'cold')
    for b in range(1, 200):
        for n in (b, 3 * b + 1, 50 * b):
            assert chain.n_proposals(b, n) == max(proposals, 2 ** math.ceil(math.log2(min(2 * n, 8 * b)))), (b, n)


@pytest.mark.parametrize('proposals,drawn', [(1, [8, 16, 16]), (20, [20, 20, 20])])
def test_each_cold_batch_draws_its_own_proposals(five_dir, tmp_path, monkeypatch, fast_figures, proposals, drawn):
    """A cold epoch on 5 images with --batch_size 2 (batches of 2, 2 and 1) draws fresh proposals once per batch,
    as many as Chain.n_proposals says: two per image of the folder (10), at most eight per image of the batch
    (16 and 8), rounded up to a power of two, or --cold_proposals if more."""
    real, calls = abp.quasi_prior, []

    def quasi_prior(n, nz, sig=1, dev=None):
        calls.append(n)
        return real(n, nz, sig, dev)

    monkeypatch.setattr(abp, 'quasi_prior', quasi_prior)
    abp.main(tiny_argv(five_dir, tmp_path, '--start', 'cold', '--n_epochs', '2', '--batch_size', '2',
                       '--cold_proposals', str(proposals)))
    assert sorted(calls[:3]) == drawn and sorted(calls[3:]) == drawn
    assert json.loads((tmp_path / 'cold' / 'metrics.json').read_text())['cold_init'] == 'sir'


def test_images_are_held_as_uint8_and_converted_as_torchvision_does(img_dir, monkeypatch):
    """load_data keeps the images as uint8 on the CPU; to_float, a batch at a time, gives exactly the values of
    torchvision's ToTensor + Normalize(0.5, 0.5) (load_img_tensors with default_transform); Data.chunks
    covers every image once, EVAL_CHUNK at a time."""
    data = abp.load_data(abp.parse_args(['--img_dir', str(img_dir), '--img_size', '16']))
    assert data.images.dtype == torch.uint8 and data.images.device.type == 'cpu'
    assert data.images.shape == (4, 3, 16, 16) and data.names == [f'img_{i}.png' for i in range(4)]
    want = abp.load_img_tensors(img_dir, abp.default_transform(16), 'cpu')
    assert torch.equal(abp.to_float(data.images).cpu(), want)
    idx = torch.tensor([2, 0])
    assert torch.equal(data.batch(idx).cpu(), want[idx]) and torch.equal(data.batch(None).cpu(), want)
    monkeypatch.setattr(abp, 'EVAL_CHUNK', 3)
    chunks = list(data.chunks())
    assert [r.tolist() for r, _ in chunks] == [[0, 1, 2], [3]]
    assert torch.equal(torch.cat([x.cpu() for _, x in chunks]), want)


@pytest.mark.slow
def test_the_course_images_as_uint8_are_torchvisions_values(real_dir):
    """The same on the 11 course photographs (JPEG) at 64 px."""
    data = abp.load_data(abp.parse_args(['--img_dir', str(real_dir), '--img_size', '64']))
    assert data.images.dtype == torch.uint8 and len(data) == 11
    want = abp.load_img_tensors(real_dir, abp.default_transform(64), 'cpu')
    assert torch.equal(abp.to_float(data.images).cpu(), want)


def test_nearest_neighbours_in_chunks_equal_all_at_once(five_dir, monkeypatch):
    """The sample metrics search every image, EVAL_CHUNK at a time (2 here): the same nearest image and PSNR
    as one search over all of them held in float."""
    data = abp.load_data(abp.parse_args(['--img_dir', str(five_dir), '--img_size', '16']))
    torch.manual_seed(0)
    samples = torch.rand(30, 3, 16, 16, device=abp.device) * 2 - 1
    samples[:5] = data.batch(None) + 0.05 * samples[:5]     # near each image, so every chunk holds a winner
    want_db, want_idx = abp.nearest_neighbours(samples, data.batch(None))
    monkeypatch.setattr(abp, 'EVAL_CHUNK', 2)
    assert len(list(data.chunks())) == 3
    got_db, got_idx = abp.nearest_neighbours(samples, data)
    assert torch.equal(got_idx, want_idx) and torch.allclose(got_db, want_db, atol=1e-4)
    assert want_idx[:5].tolist() == [0, 1, 2, 3, 4]
