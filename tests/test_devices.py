"""The CUDA path, checked on the CPU: the 'meta' device stands in for a GPU (its tensors live off the CPU and mix
with CPU tensors as CUDA's do), so a checkpoint, the benchmarks' runs and the figures are tested across devices."""
import sys

import pytest
import torch

import abp
from conftest import ROOT, tiny_argv

sys.path.insert(0, str(ROOT / 'bench'))
import common  # noqa: E402


@pytest.mark.filterwarnings('ignore:for .*copying from a non-meta parameter')    # meta parameters hold no values
def test_a_checkpoint_loads_onto_another_device(tiny_run, img_dir, tmp_path, monkeypatch):
    """load_state onto a model off the CPU: torch's RNG state comes back on the CPU (set_rng_state takes nothing
    else), z, z_eval, the posterior widths and the kept good state's z on the model's device, the rest on the CPU."""
    path = tiny_run / 'warm' / 'checkpoint.pt'
    ck = torch.load(path, weights_only=False)
    args = abp.parse_args(tiny_argv(img_dir, tmp_path, '--start', 'warm'))
    monkeypatch.setattr(abp, 'device', 'meta')
    state = abp.new_state(args, 4)
    assert state.z.device.type == 'meta'
    torch.manual_seed(123)
    assert abp.load_state(state, path, args, abp.chain_for(args, 'warm')) == ''     # no GPU here: nothing to say
    assert torch.equal(torch.get_rng_state(), ck['rng'])
    for k in abp.ON_DEVICE:
        assert getattr(state, k).device.type == 'meta', k
    assert state.good['z'].device.type == 'meta' and state.epoch == ck['epoch']
    assert all(p.device.type == 'meta' for p in state.model.parameters())
    assert all(v.device.type == 'meta' for s in state.optimizer.state.values() for v in s.values() if v.dim())
    assert state.psnr.device.type == state.recon.device.type == 'cpu'
    assert all(v.device.type == 'cpu' for d in (state.snapshots, state.frames) for v in d.values())


def test_a_gpu_checkpoint_on_a_cpu_machine_says_what_it_cannot_restore(tiny_run, img_dir, tmp_path):
    """A checkpoint written on a GPU (its CUDA RNG states saved) loads on a machine without one, and says in one
    line that the GPU's random state is not restored."""
    ck = torch.load(tiny_run / 'warm' / 'checkpoint.pt', weights_only=False)
    ck['cuda_rng'] = [torch.get_rng_state()[:16]]
    torch.save(ck, tmp_path / 'gpu.pt')
    args = abp.parse_args(tiny_argv(img_dir, tmp_path, '--start', 'warm'))
    note = abp.load_state(abp.new_state(args, 4), tmp_path / 'gpu.pt', args, abp.chain_for(args, 'warm'))
    assert torch.cuda.is_available() or ('GPU' in note and '\n' not in note)


def test_the_benchmarks_rebuild_runs_on_the_cpu_whatever_the_device(tiny_run, monkeypatch, tmp_path):
    """common.load_run, the one place a benchmark picks a device, gives a CPU state even when abp trains elsewhere;
    abp's figures and the cold start's proposals then work on it (they follow the tensors, not abp.device)."""
    monkeypatch.setattr(abp, 'device', 'meta')
    args, state = common.load_run(tiny_run / 'cold')
    tensors = [state.z, state.z_eval, state.width, *state.model.parameters()]
    assert all(t.device.type == 'cpu' for t in tensors if t is not None)
    x = abp.generate(state.model.Gnet, state.z)
    zeta = abp.prior_proposals(state.model.Gnet, x, 8, args.mse_sigma, args.prior_sigma)
    assert zeta.device.type == 'cpu' and zeta.shape == state.z.shape
    abp.figure_interp('cold', state, None, args, tmp_path)
    abp.figure_latent_walk('cold', state, None, args, tmp_path)
    assert (tmp_path / 'interp_cold.jpg').is_file() and (tmp_path / 'latent_walk_cold.gif').is_file()


def test_tf32_is_off_wherever_training_starts(img_dir, tmp_path, monkeypatch):
    """The step cap's finite differences need full fp32: train() itself (the benchmarks call it directly) turns
    TF32 off in cuDNN's convolutions and in matrix products."""
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', True)
    monkeypatch.setattr(torch.backends.cuda.matmul, 'allow_tf32', True)
    args = abp.parse_args(tiny_argv(img_dir, tmp_path, '--start', 'warm', '--n_epochs', '1'))
    data = abp.load_data(args)
    abp.train(abp.new_state(args, len(data)), data, abp.chain_for(args, 'warm'), args, tmp_path,
              abp.get_logger(tmp_path))
    assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cuda.matmul.allow_tf32 is False
