"""Alternating back-propagation (ABP) for a ConvNet generator with a 2-D latent z.

Han, Lu, Zhu, Wu, "Alternating Back-Propagation for Generator Network", AAAI 2017;
Computer Vision I, Project 5 (equations cited as in the handout).

    pip install -r requirements.txt
    python abp.py                                   # warm + cold, every figure, output/metrics.json
    python abp.py --img_dir ../shared/data/lion_tiger --start warm
    python abp.py --resume                          # continue runs stopped by Ctrl-C
    python abp.py --ablations                       # the report's ablation table (cached in output/)
    python bench/bench.py                           # speed: the course configuration against ours
    python -m pytest                                # the test suite

The model (eq. 1): I = g(z; theta) + eps, z ~ N(0, I_d), eps ~ N(0, sigma^2 I_D).
Each epoch alternates
  (1) inferential back-propagation: Langevin dynamics on every image's z (eq. 6);
  (2) learning back-propagation: one Adam step on theta with z held fixed (eq. 7).
Warm start continues each image's chain from its z of the previous epoch; cold start
draws a fresh z from the prior every epoch and runs the same kind of chain from there.
"""
import argparse
import contextlib
import json
import logging
import math
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image, ImageOps

# -----------------------------------------------------------------------------
# config

device = 'cuda' if torch.cuda.is_available() else 'cpu'

COURSE_DEFAULTS = dict(lr=4e-4, langevin_step_size=0.05, langevin_num_steps=120, mse_sigma=1.0,
                       gamma=0.996, n_epochs=2000)  # the skeleton's values, kept for the report
N_EVAL_SAMPLES = 100   # prior samples behind sample_nn_psnr_db_median / sample_coverage
N_FIG_SAMPLES = 36     # of those, how many {epoch}_sampled.png shows (6 x 6)
INTERP_MARGIN = 1.1    # d_i = INTERP_MARGIN * max_j |z_ji|: the square holds every inferred z


class UserError(Exception):
    """A problem with the user's input: reported as one line, never a traceback."""


class Diverged(Exception):
    """Training produced a non-finite loss, latent or parameter."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived; a checkpoint has been written."""


def positive(kind):
    """argparse type: a finite number > 0 of type `kind`."""
    def check(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}")
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
        return value
    return check


def unit_interval(text):
    """argparse type: a float in (0, 1]."""
    value = positive(float)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return value


def build_parser():
    p = argparse.ArgumentParser(description='Alternating back-propagation on a folder of images '
                                '(course flags keep their names; course defaults in brackets).',
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # what to run, where
    p.add_argument('--start', default='both', choices=['warm', 'cold', 'both'],
                   help='warm: z persists across epochs; cold: z re-drawn from the prior each epoch [warm]')
    p.add_argument('--img_dir', default='data', help='folder of training images [images/]')
    p.add_argument('--out_dir', default='output', help='where run directories and comparisons go')
    p.add_argument('--resume', action='store_true', help='continue from OUT_DIR/<mode>/checkpoint.pt')
    p.add_argument('--seed', type=int, default=1, help='random seed [1]')
    # model
    p.add_argument('--nz', type=positive(int), default=2, help='latent dimension d [2]')
    p.add_argument('--img_size', type=positive(int), default=128, help='image side, 4*2^k (8, 16, ..., 256) [128]')
    p.add_argument('--gen_width', type=positive(int), default=16,
                   help='generator channels at 64 px; doubles per halving of resolution (ours)')
    p.add_argument('--gen_max_ch', type=positive(int), default=256, help='cap on generator channels (ours)')
    p.add_argument('--batchnorm', action=argparse.BooleanOptionalAction, default=False,
                   help='BatchNorm in the generator (couples the 11 images of the batch)')
    # inference (eq. 6)
    p.add_argument('--langevin_step_size', type=positive(float), default=0.02,
                   help='s of eq. 6, warm start; s/sigma = 0.01 keeps the chains stable [0.05]')
    p.add_argument('--langevin_num_steps', type=positive(int), default=2,
                   help='Langevin steps per epoch, warm start: chains persist, so few suffice [120]')
    p.add_argument('--cold_langevin_num_steps', type=positive(int), default=10,
                   help='Langevin steps per epoch, cold start: each chain starts from the prior (ours) [120]')
    p.add_argument('--cold_langevin_step_size', type=positive(float), default=0.05,
                   help='s of eq. 6, cold start: larger, so chains reach the image from a prior draw (ours) [0.05]')
    p.add_argument('--langevin_noise_scale', type=float, default=1.0,
                   help='noise is scale*s*e; eq. 6 has 1, the course skeleton 4, 0 = gradient descent')
    p.add_argument('--cold_init', default='prior', choices=['prior', 'fixed'],
                   help='cold start draws z from the prior every epoch, or restarts from the fixed z_0 (skeleton)')
    p.add_argument('--z_whiten', action=argparse.BooleanOptionalAction, default=None,
                   help='keep inferred z at mean 0, std 1 by an exact change of variables absorbed into '
                        'the first layer (ours; the skeleton has none); unset: on for warm, off for cold')
    p.add_argument('--mse_sigma', type=positive(float), default=2.0,
                   help='sigma of eq. 3, the tempering parameter: 2 broadens the posterior (ours) [1]')
    p.add_argument('--prior_sigma', type=positive(float), default=1.0, help='std of the prior of z [1]')
    # learning (eq. 7)
    p.add_argument('--lr', type=positive(float), default=3e-3, help='Adam learning rate [4e-4]')
    p.add_argument('--beta1', type=unit_interval, default=0.5, help='Adam beta1 [0.5]')
    p.add_argument('--beta2', type=unit_interval, default=0.999, help='Adam beta2 [0.999]')
    p.add_argument('--gamma', type=unit_interval, default=0.999,
                   help='per-epoch lr decay: 0.999 leaves 13%% of lr at epoch 2000; 0.996 left 1.8%% at 1000 [0.996]')
    p.add_argument('--n_epochs', type=positive(int), default=2000, help='epochs per start mode [2000]')
    # logging and figures
    p.add_argument('--ninterp', type=positive(int), default=12, help='interpolation panel side [12]')
    p.add_argument('--n_log', type=positive(int), default=100, help='log every n epochs [100]')
    p.add_argument('--n_plot', type=positive(int), default=1000,
                   help='figures + checkpoint every n epochs (also at the middle and the end) [200]')
    p.add_argument('--n_stats', type=positive(int), default=20, help='loss curve point every n epochs [100]')
    p.add_argument('--ablations', action='store_true',
                   help='instead of the main run: run the ablation table (cached in OUT_DIR/ablations/)')
    p.add_argument('--ablation_epochs', type=positive(int), default=400, help='epochs per ablation run')
    p.add_argument('--threads', type=int, default=0, help='CPU threads for torch (0 = all cores)')
    return p


def check_args(parser, args):
    """Reject flag combinations no run can use, before any work starts (argparse-style, exit 2)."""
    s = args.img_size
    if s < 8 or s & (s - 1):
        parser.error(f"--img_size {s}: the generator doubles 4x4 maps, so use a power of two >= 8 (e.g. 64, 128)")
    if not math.isfinite(args.langevin_noise_scale) or args.langevin_noise_scale < 0:
        parser.error(f"--langevin_noise_scale {args.langevin_noise_scale}: must be a finite number >= 0")
    if args.threads < 0:
        parser.error(f"--threads {args.threads}: must be >= 0")
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        parser.error(f"--out_dir {out}: is a file; name a folder")
    parent = next((p for p in [out, *out.parents] if p.exists()), Path('.'))
    if not os.access(parent, os.W_OK):
        parser.error(f"--out_dir {out}: {parent} is not writable; choose another folder")
    return args


def parse_args(argv=None):
    """Flags -> argparse.Namespace (course names kept; see --help)."""
    parser = build_parser()
    return check_args(parser, parser.parse_args(argv))


def set_seed(seed):
    """Seed PYTHONHASHSEED, random, numpy, torch (+cuda); returns seed."""
    os.environ['PYTHONHASHSEED'] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    return seed


def set_cuda():
    """cuDNN settings for reproducible runs; returns None."""
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def get_logger(exp_dir):
    """A logging.Logger writing to stdout and to exp_dir/output.log."""
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f'abp.{exp_dir.resolve()}')
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    fmt = logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S')
    for h in (logging.StreamHandler(sys.stdout), logging.FileHandler(exp_dir / 'output.log')):
        h.setFormatter(fmt)
        logger.addHandler(h)
    return logger


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it over `path` only if the write succeeded."""
    path = Path(path)
    tmp = path.with_name(f'.tmp-{path.name}')   # same folder and suffix, so writers infer the format
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(obj, path):
    """Write obj as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + '\n')


# -----------------------------------------------------------------------------
# data

def list_images(img_dir):
    """Sorted image files in img_dir (by extension Pillow knows, any case); hidden files skipped."""
    img_dir = Path(img_dir)
    if not img_dir.is_dir():
        raise UserError(f"image folder {img_dir} does not exist: put the course images "
                        f"(lion_1..5.jpg, tiger_1..6.jpg) there or pass --img_dir FOLDER")
    exts = {e.lower() for e in Image.registered_extensions()}
    return sorted(p for p in img_dir.iterdir()
                  if p.is_file() and not p.name.startswith('.') and p.suffix.lower() in exts)


def to_rgb(img):
    """Any Pillow image -> 8-bit RGB: EXIF rotation applied, alpha composited on white, 16-bit rescaled."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F'):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith('I;16') or a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), 'L')
    if img.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La') or (img.mode == 'P' and 'transparency' in img.info):
        rgba = img.convert('RGBA')
        white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert('RGB')


def default_transform(img_size):
    """Shorter side -> img_size, centre crop to a square, tensor in [-1, 1]."""
    from torchvision import transforms
    return transforms.Compose([
        transforms.Resize(img_size, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True),
        transforms.CenterCrop(img_size),
        transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])


def load_images(img_dir, transform, logger=None):
    """(tensor (N, 3, H, W) on the CPU, list of file names); unreadable files skipped with a warning."""
    tensors, names = [], []
    for path in list_images(img_dir):
        try:
            with Image.open(path) as img:
                img.load()
                rgb = to_rgb(img)
        except Exception as e:  # Pillow raises many kinds for truncated or foreign files
            msg = f"warning: skipping {path}: not a readable image ({type(e).__name__}: {e})"
            (logger.warning if logger else print)(msg)
            continue
        tensors.append(transform(rgb).clamp(-1, 1))
        names.append(path.name)
    if not tensors:
        raise UserError(f"no readable images in {img_dir}: put the course images "
                        f"(lion_1..5.jpg, tiger_1..6.jpg) or any .jpg/.png files there, or pass --img_dir FOLDER")
    return torch.stack(tensors), names


def load_img_tensors(img_dir, transform, device):
    """Every image in img_dir through transform -> tensor (N, 3, H, W) on device."""
    return load_images(img_dir, transform)[0].to(device)


# -----------------------------------------------------------------------------
# generator g(z; theta), eq. 2: z^(l-1) = g_l(W_l z^(l) + b_l)

def channels(res, width, max_ch):
    """Channels of the feature map at resolution res: `width` at 64 px, doubling per halving."""
    return max(1, min(max_ch, width * 64 // res))


class GenNet(nn.Module):
    """Generator: z (N, nz) -> images (N, 3, img_size, img_size) in [-1, 1].

    A linear layer makes a 4x4 map; each ConvTranspose2d(4, stride 2) doubles the side. Channels
    halve as resolution doubles, so every layer costs about the same FLOPs; the 128-px layer emits
    RGB directly. No BatchNorm by default: with one batch of 11 images it would couple the images'
    reconstructions and its statistics would be disturbed by every Langevin pass."""

    def __init__(self, nz=2, img_size=128, width=16, max_ch=256, batchnorm=False):
        super().__init__()
        c0 = channels(4, width, max_ch)
        self.nz, self.img_size = nz, img_size
        self.fc = nn.Linear(nz, c0 * 16)
        layers = [nn.Unflatten(1, (c0, 4, 4))] + ([nn.BatchNorm2d(c0)] if batchnorm else []) + [nn.LeakyReLU(0.2)]
        res = 4
        while res < img_size // 2:
            cin, cout = channels(res, width, max_ch), channels(2 * res, width, max_ch)
            layers.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1))
            layers += [nn.BatchNorm2d(cout)] if batchnorm else []
            layers.append(nn.LeakyReLU(0.2))
            res *= 2
        layers += [nn.ConvTranspose2d(channels(res, width, max_ch), 3, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(self.fc(z))


def weights_init_xavier(m):
    """Xavier-normal weights, zero biases for Linear/Conv layers; use as module.apply(...); returns None."""
    if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.xavier_normal_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def sample_gaussian_prior(batch_size, nz, sig=1):
    """z ~ sig * N(0, I): tensor (batch_size, nz) on the module device."""
    return sig * torch.randn(batch_size, nz, device=device)


# -----------------------------------------------------------------------------
# inference: Langevin dynamics on z (eq. 6)

def energy(x_hat, x, z, mse_sigma, prior_sigma):
    """-log p(z, I; theta) + const per image (eq. 3): ||I - g(z)||^2 / (2 sigma^2) + ||z||^2 / (2 prior_sigma^2)."""
    recon = (x - x_hat).pow(2).flatten(1).sum(1) / (2 * mse_sigma ** 2)
    return recon + z.pow(2).sum(1) / (2 * prior_sigma ** 2)


class Model(nn.Module):
    """Model(args): generator Gnet + Langevin inference; forward(z) -> Gnet(z)."""

    def __init__(self, args):
        super().__init__()
        self.args = args
        self.Gnet = GenNet(nz=args.nz, img_size=args.img_size, width=getattr(args, 'gen_width', 16),
                           max_ch=getattr(args, 'gen_max_ch', 256), batchnorm=getattr(args, 'batchnorm', False))
        self.Gnet.apply(weights_init_xavier)

    def sample_langevin(self, z, x, num_steps=None, step_size=None, trace=None):
        """Langevin (eq. 6) from z (N, nz) given x (N, 3, H, W) -> new z (N, nz), detached.

        Gradients are taken for z only (torch.autograd.grad), so theta's .grad is never touched.
        If `trace` is a list, one dict per step is appended: energy, |z| and step displacement."""
        a = self.args
        s = a.langevin_step_size if step_size is None else step_size
        noise = getattr(a, 'langevin_noise_scale', 1.0) * s
        steps = a.langevin_num_steps if num_steps is None else num_steps
        z = z.detach().clone()
        for _ in range(steps):
            z.requires_grad_(True)
            e = energy(self.Gnet(z), x, z, a.mse_sigma, a.prior_sigma)
            grad = torch.autograd.grad(e.sum(), z)[0]                    # = -d/dz log p(z, I; theta)
            z_new = z.detach() - 0.5 * s * s * grad + noise * torch.randn_like(z)   # eq. 6
            if trace is not None:
                trace.append({'energy': e.mean().item(), 'z_norm': z.detach().norm(dim=1).mean().item(),
                              'step': (z_new - z.detach()).norm(dim=1).mean().item()})
            z = z_new
        return z.detach()

    def forward(self, z):
        return self.Gnet(z)


# -----------------------------------------------------------------------------
# learning: one gradient step on theta given the inferred z (eq. 7)

def recon_loss(x_hat, x, mse_sigma):
    """Loss for theta: mean over images of ||I - g(z)||^2 / (2 sigma^2) (eq. 3's data term; its theta-gradient is eq. 7)."""
    return (x - x_hat).pow(2).flatten(1).sum(1).mean() / (2 * mse_sigma ** 2)


def learn_step(model, optimizer, z, x, mse_sigma):
    """One Adam step on theta with z fixed; returns (loss tensor, x_hat detached)."""
    x_hat = model(z.detach())
    loss = recon_loss(x_hat, x, mse_sigma)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), x_hat.detach()


def chain_start(start, z, z_0, args):
    """Where this epoch's Langevin chain starts: warm -> the current z; cold -> a prior draw (or fixed z_0)."""
    if start == 'warm':
        return z
    if getattr(args, 'cold_init', 'prior') == 'fixed':
        return z_0
    return sample_gaussian_prior(z.shape[0], z.shape[1], args.prior_sigma)


@torch.no_grad()
def standardize_latents(gen, z):
    """Re-express z (N, nz) with mean 0 and std 1 per dimension, absorbing the affine map into the
    generator's first (linear) layer: g(z) is unchanged exactly, so is eq. 3's likelihood. Returns new z.

    Why: the likelihood is invariant to z -> c z + m (the first layer can undo it) and the prior's pull
    per Langevin step, s^2/2 * z, is far weaker than the likelihood's, so the scale of the inferred z
    drifts (the course defaults end with std ~5) and samples from N(0, I) miss the images' z."""
    if z.shape[0] < 2:
        return z
    m, c = z.mean(0), z.std(0).clamp_min(1e-3)
    gen.fc.bias += gen.fc.weight @ m
    gen.fc.weight *= c
    return (z - m) / c


def whiten_latents(start, args):
    """Standardise z each epoch? --z_whiten / --no-z_whiten decide; unset: warm yes, cold no
    (cold chains held at the prior's scale become unstable at s = 0.05 and wreck the generator)."""
    flag = getattr(args, 'z_whiten', None)
    return (start == 'warm') if flag is None else flag


def chain_settings(start, args):
    """(Langevin steps per epoch, step size s) for this start mode: cold has its own, when given."""
    if start == 'cold':
        return (getattr(args, 'cold_langevin_num_steps', None) or args.langevin_num_steps,
                getattr(args, 'cold_langevin_step_size', None) or args.langevin_step_size)
    return args.langevin_num_steps, args.langevin_step_size


# -----------------------------------------------------------------------------
# evaluation

def to_unit(x):
    """[-1, 1] -> [0, 1]."""
    return (x.clamp(-1, 1) + 1) / 2


def psnr(a, b):
    """PSNR in dB per image of a, b (N, 3, H, W) in [-1, 1], measured in [0, 1]."""
    mse = (to_unit(a) - to_unit(b)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def nearest_neighbours(samples, images):
    """For each sample, (PSNR to its nearest image, index of that image)."""
    s, t = to_unit(samples).flatten(1), to_unit(images).flatten(1)
    mse = torch.cdist(s.double(), t.double()).pow(2) / s.shape[1]
    best, idx = mse.min(1)
    return 10 * torch.log10(1.0 / best.clamp_min(1e-10)).float(), idx


@torch.no_grad()
def generate(gen, z, chunk=64):
    """g(z) in chunks (figures and metrics never need gradients)."""
    return torch.cat([gen(z[i:i + chunk]) for i in range(0, len(z), chunk)])


def interp_half_width(z):
    """The interpolation square's half-width d per dimension: INTERP_MARGIN * max |z| over the images."""
    return INTERP_MARGIN * z.abs().amax(0).clamp_min(1e-3)


def pca_recon(x, k=2):
    """Reconstruct x (N, 3, H, W) from its mean and top-k principal components (the linear factor model)."""
    flat = x.flatten(1).double()
    mean = flat.mean(0, keepdim=True)
    u, sv, vt = torch.linalg.svd(flat - mean, full_matrices=False)
    k = min(k, vt.shape[0])
    rec = mean + (flat - mean) @ vt[:k].T @ vt[:k]
    return rec.float().view_as(x)


def evaluate(model, x, x_hat, z, z_eval):
    """Metrics of one mode: reconstruction PSNR, prior-sample quality and coverage, latent statistics."""
    samples = generate(model.Gnet, z_eval)
    nn_psnr, nn_idx = nearest_neighbours(samples, x)
    return {
        'recon_psnr_db': round(psnr(x_hat, x).mean().item(), 3),
        'recon_psnr_db_per_image': [round(v, 3) for v in psnr(x_hat, x).tolist()],
        'sample_nn_psnr_db_median': round(nn_psnr.median().item(), 3),
        'sample_coverage': int(nn_idx.unique().numel()),
        'z_mean': [round(v, 4) for v in z.mean(0).tolist()],
        'z_std': [round(v, 4) for v in z.std(0).tolist()] if len(z) > 1 else [0.0] * z.shape[1],
    }


# -----------------------------------------------------------------------------
# figures

def save_images(img, path, nrow):
    """Save img (N, 3, H, W) in [-1, 1] as a grid with nrow images per row to path; returns None."""
    from torchvision.utils import save_image
    with atomic_path(path) as tmp:
        save_image(to_unit(img.detach().float().cpu()), tmp, nrow=nrow, padding=2, pad_value=1.0)


def interp_grid(nz, ninterp, z_std, dev):
    """ninterp^2 latents: dims 0 and 1 span [-z_std[i], z_std[i]] (row: dim 0, column: dim 1), others 0."""
    d = torch.as_tensor(z_std, dtype=torch.float32, device=dev).flatten()
    axes = [torch.linspace(-float(d[i]), float(d[i]), ninterp, device=dev) for i in range(min(2, nz))]
    z = torch.zeros(ninterp * ninterp, nz, device=dev)
    rows, cols = torch.meshgrid(axes[0], axes[-1] if nz > 1 else torch.zeros(ninterp, device=dev), indexing='ij')
    z[:, 0] = rows.flatten()
    if nz > 1:
        z[:, 1] = cols.flatten()
    return z


def save_interp(model, args, z_std, device, path):
    """Save an args.ninterp x args.ninterp panel, dim i spanning [-z_std[i], z_std[i]], to path; returns None."""
    z = interp_grid(args.nz, args.ninterp, z_std, device)
    gen = model.Gnet if hasattr(model, 'Gnet') else model
    save_images(generate(gen, z), path, nrow=args.ninterp)


def save_fig(fig, path):
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches='tight')
    plt.close(fig)


def plot_stats(exp_dir, stats, interval):
    """One panel per key of stats (name -> values) against interval; writes stat.png and stat.pdf; returns None."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    keys = list(stats)
    fig, axes = plt.subplots(len(keys), 1, figsize=(6, 2.6 * len(keys)), squeeze=False)
    for ax, k in zip(axes[:, 0], keys):
        ax.plot(list(interval)[:len(stats[k])], stats[k])
        ax.set_title(k)
        ax.set_xlabel('epoch')
        if k == 'loss' and min(stats[k], default=0) > 0:
            ax.set_yscale('log')
        ax.grid(alpha=0.3)
    fig.tight_layout()
    for ext in ('png', 'pdf'):
        with atomic_path(Path(exp_dir) / f'stat.{ext}') as tmp:
            fig.savefig(tmp, dpi=120)
    plt.close(fig)


def grid_image(img, nrow):
    """(N, 3, H, W) in [-1, 1] -> numpy HxWx3 grid for matplotlib."""
    from torchvision.utils import make_grid
    return make_grid(to_unit(img.float().cpu()), nrow=nrow, padding=2, pad_value=1.0).permute(1, 2, 0).numpy()


def plot_recon_comparison(rows, path):
    """rows: list of (label, images (N, 3, H, W)); one labelled strip per row."""
    import matplotlib.pyplot as plt
    n = rows[0][1].shape[0]
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.0 * n, 1.15 * len(rows)), squeeze=False)
    for ax, (label, img) in zip(axes[:, 0], rows):
        ax.imshow(grid_image(img, n))
        ax.set_ylabel(label, rotation=0, ha='right', va='center', fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.subplots_adjust(hspace=0.05)
    save_fig(fig, path)


def plot_side_by_side(panels, path, title=''):
    """panels: list of (title, numpy image); drawn side by side."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 6.3), squeeze=False)
    for ax, (t, im) in zip(axes[0], panels):
        ax.imshow(im)
        ax.set_title(t)
        ax.axis('off')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_fig(fig, path)


def plot_losses(curves, path):
    """curves: dict mode -> (epochs, losses); one log-scale plot."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for mode, (ep, loss) in curves.items():
        ax.plot(ep, loss, label=mode)
    ax.set_yscale('log')
    ax.set_xlabel('epoch')
    ax.set_ylabel('loss = mean ||I - g(z)||^2 / (2 sigma^2)')
    ax.grid(alpha=0.3)
    ax.legend()
    save_fig(fig, path)


def image_groups(names):
    """Group label per file name: the part before the first '_' or digit (lion_3.jpg -> lion)."""
    import re
    return [re.split(r'[_\d.]', n, maxsplit=1)[0] or n for n in names]


def plot_latent_map(z, x, names, d, path, title):
    """The images' inferred z on the plane as thumbnails framed by group, prior 1- and 2-sigma circles
    and the interpolation square (-d, d)^2."""
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage
    z, d = z.detach().cpu().float(), d.detach().cpu().float()
    groups = image_groups(names)
    colours = dict(zip(sorted(set(groups)), plt.cm.tab10.colors))
    fig, ax = plt.subplots(figsize=(6.2, 6.2))
    for r, ls in ((1, '-'), (2, '--')):
        ax.add_patch(plt.Circle((0, 0), r, fill=False, ls=ls, color='grey', label=f'prior {r} sigma'))
    ax.add_patch(plt.Rectangle((-d[0], -d[1]), 2 * d[0], 2 * d[1], fill=False, color='black', lw=1.5,
                               label='interpolation square'))
    thumbs = to_unit(x).cpu().permute(0, 2, 3, 1).numpy()
    zoom = 28 / thumbs.shape[1]
    for zi, im, g in zip(z, thumbs, groups):
        ab = AnnotationBbox(OffsetImage(im, zoom=zoom), (zi[0].item(), zi[1].item() if len(zi) > 1 else 0.0),
                            bboxprops=dict(edgecolor=colours[g], lw=2.5), pad=0.1)
        ax.add_artist(ab)
    for g, c in colours.items():
        ax.plot([], [], 's', color=c, label=g)
    lim = max(2.3, float(d.max()) * 1.15, float(z.abs().max()) * 1.2)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect('equal')
    ax.set_xlabel('z[0] (interpolation rows)')
    ax.set_ylabel('z[1] (interpolation columns)')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper right', fontsize=8)
    save_fig(fig, path)


def plot_langevin_traces(traces, path):
    """traces: dict label -> list of per-step dicts (energy, z_norm, step); three panels."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for label, tr in traces.items():
        steps = range(1, len(tr) + 1)
        for ax, key in zip(axes, ('energy', 'z_norm', 'step')):
            ax.plot(steps, [t[key] for t in tr], marker='.', label=label)
    for ax, t in zip(axes, ('energy per image (eq. 3), log scale', 'mean ||z||', 'mean ||z_{t+1} - z_t||')):
        ax.set_title(t, fontsize=10)
        ax.set_xlabel('Langevin step')
        ax.grid(alpha=0.3)
    axes[0].set_yscale('log')
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_fig(fig, path)


# -----------------------------------------------------------------------------
# training: one start mode

def fmt(v):
    """A short vector for log lines: (+0.12, -1.30)."""
    return '(' + ', '.join(f'{x:+.2f}' for x in v.tolist()) + ')'


def snapshot_epochs(n_epochs, n_plot):
    """Epochs that get figures and a checkpoint: every n_plot, the middle one and the last."""
    return sorted({e for e in range(n_plot, n_epochs + 1, n_plot)} | {max(1, n_epochs // 2), n_epochs})


def rng_state():
    return {'torch': torch.get_rng_state(), 'numpy': np.random.get_state(), 'random': random.getstate(),
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state):
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['random'])
    if state.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def save_checkpoint(path, state):
    """The one checkpoint dict, written atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def check_finite(epoch, loss, z, model):
    """Raise Diverged naming what went non-finite at this epoch."""
    what = ('the loss' if not torch.isfinite(loss).all() else
            'the latent z' if not torch.isfinite(z).all() else
            'a generator parameter' if not all(torch.isfinite(p).all() for p in model.parameters()) else None)
    if what:
        raise Diverged(f"{what} became non-finite at epoch {epoch}; lower --langevin_step_size "
                       f"(now {model.args.langevin_step_size}) or --lr (now {model.args.lr}), "
                       f"or raise --mse_sigma")


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it between epochs so a checkpoint is always consistent."""
    requested = False


def new_state(args, n):
    """Everything training changes, in one dict: model, optimiser, schedule, latents, curves."""
    set_seed(args.seed)
    model = Model(args).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(args.beta1, args.beta2))
    z_0 = sample_gaussian_prior(n, args.nz, args.prior_sigma)
    return {'model': model, 'optimizer': optimizer,
            'scheduler': torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.gamma),
            'z': z_0.clone(), 'z_0': z_0,
            'z_eval': sample_gaussian_prior(N_EVAL_SAMPLES, args.nz, args.prior_sigma),  # fixed prior samples
            'epoch': 0, 'seconds': 0.0, 'stats': {'loss': [], 'psnr_db': []}, 'stat_epochs': [],
            'snapshots': {}, 'traces': {}}


MODULES = ('model', 'optimizer', 'scheduler')   # saved through state_dict(); the rest of the state as is


def save_state(state, args, path):
    """The one checkpoint dict: generator, optimiser, scheduler, z, epoch, args, curves, RNG states."""
    ck = {k: v for k, v in state.items() if k not in MODULES}
    ck.update(generator=state['model'].state_dict(), optimizer=state['optimizer'].state_dict(),
              scheduler=state['scheduler'].state_dict(), args=vars(args), rng=rng_state())
    save_checkpoint(path, ck)


RESUME_MUST_MATCH = ('nz', 'img_size', 'gen_width', 'gen_max_ch', 'batchnorm', 'start')


def load_state(state, path, args):
    """Restore a checkpoint written by save_state into state (and the RNGs), in place.
    Raises UserError if it is unreadable or was written by a run with another model or data."""
    try:
        ck = torch.load(path, map_location=device, weights_only=False)
    except Exception as e:
        raise UserError(f"cannot read checkpoint {path} ({type(e).__name__}); delete it or run without --resume")
    old = ck.get('args', {})
    diff = [f"--{k} {old.get(k)}" for k in RESUME_MUST_MATCH if old.get(k) != getattr(args, k, None)]
    if diff or ck['z'].shape != state['z'].shape:
        what = ', '.join(diff) if diff else f"{ck['z'].shape[0]} images"
        raise UserError(f"checkpoint {path} was written with {what}; resume with the same flags and images, "
                        f"or run without --resume")
    state['model'].load_state_dict(ck['generator'])
    state['optimizer'].load_state_dict(ck['optimizer'])
    state['scheduler'].load_state_dict(ck['scheduler'])
    for k in state:
        if k not in MODULES:
            state[k] = ck[k].to(device) if torch.is_tensor(ck[k]) else ck[k]
    set_rng_state(ck['rng'])


def train_epoch(state, x, args, start, trace=None):
    """One epoch of ABP: (1) Langevin on z (eq. 6), (2) one step on theta (eq. 7). Returns (loss, x_hat)."""
    model = state['model']
    steps, step_size = chain_settings(start, args)
    # (1) inferential back-propagation: warm continues each chain, cold starts from the prior
    z = model.sample_langevin(chain_start(start, state['z'], state['z_0'], args), x, steps, step_size, trace)
    if whiten_latents(start, args):                         # fix the gauge: inferred z at N(0, I)'s scale
        z = standardize_latents(model.Gnet, z)
    state['z'] = z
    # (2) learning back-propagation on the detached z
    loss, x_hat = learn_step(model, state['optimizer'], z, x, args.mse_sigma)
    state['scheduler'].step()
    return loss, x_hat


def log_progress(state, x, x_hat, loss, args, exp_dir, logger, bar):
    """Loss-curve points, stat.png, the progress bar and log lines, on their schedules."""
    epoch, z, start = state['epoch'], state['z'], args.start
    if epoch % args.n_stats == 0 or epoch == args.n_epochs:
        state['stats']['loss'].append(loss.item())
        state['stats']['psnr_db'].append(psnr(x_hat, x).mean().item())
        state['stat_epochs'].append(epoch)
    if epoch % args.n_log == 0 or epoch == args.n_epochs:      # plotting costs ~0.3 s: not every point
        plot_stats(exp_dir, state['stats'], state['stat_epochs'])
    if epoch % args.n_log == 0 or epoch == 1:
        p = psnr(x_hat, x).mean().item()
        bar.set_postfix(loss=f'{loss.item():.1f}', psnr=f'{p:.1f}dB')
        logger.info(f"{start} epoch {epoch:5d} loss {loss.item():10.3f} psnr {p:6.2f} dB "
                    f"z mean {fmt(z.mean(0))} std {fmt(z.std(0)) if len(z) > 1 else '-'} "
                    f"lr {state['scheduler'].get_last_lr()[0]:.2e}")


def save_snapshot(state, x_hat, args, exp_dir):
    """The skeleton's three figures for this epoch: reconstructions, prior samples, interpolation."""
    epoch, gen = state['epoch'], state['model'].Gnet
    state['snapshots'][epoch] = x_hat.cpu()
    save_images(x_hat, exp_dir / f'{epoch:04d}_recon.png', nrow=x_hat.shape[0])
    save_images(generate(gen, state['z_eval'][:N_FIG_SAMPLES]), exp_dir / f'{epoch:04d}_sampled.png', nrow=6)
    save_interp(state['model'], args, interp_half_width(state['z']), device, exp_dir / f'{epoch:04d}_interp.png')


def run(args, exp_dir, logger):
    """Train one start mode (args.start is 'warm' or 'cold'), write its figures into exp_dir; returns metrics."""
    from tqdm import tqdm
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    start, t_begin = args.start, time.perf_counter()

    # data
    x, names = load_images(args.img_dir, default_transform(args.img_size), logger)
    x = x.to(device)
    logger.info(f"{start} start: {len(x)} images from {args.img_dir} ({', '.join(names)}), device {device}")

    # model, optimiser, latents: new, or where an interrupted run stopped
    state = new_state(args, len(x))
    ckpt_path = exp_dir / 'checkpoint.pt'
    if getattr(args, 'resume', False) and ckpt_path.exists():
        load_state(state, ckpt_path, args)
        logger.info(f"resumed from {ckpt_path} at epoch {state['epoch']}")
    seconds_before = state['seconds']

    snap_at = snapshot_epochs(args.n_epochs, args.n_plot)
    x_hat = None
    bar = tqdm(range(state['epoch'] + 1, args.n_epochs + 1), desc=start, unit='ep', disable=None,
               initial=state['epoch'], total=args.n_epochs, dynamic_ncols=True)
    for epoch in bar:
        trace = [] if epoch in (1, args.n_epochs) else None        # Langevin diagnostics, early and late
        loss, x_hat = train_epoch(state, x, args, start, trace)
        check_finite(epoch, loss, state['z'], state['model'])
        state['epoch'] = epoch
        state['seconds'] = seconds_before + time.perf_counter() - t_begin
        if trace is not None:
            state['traces'][epoch] = trace
        log_progress(state, x, x_hat, loss, args, exp_dir, logger, bar)
        if epoch in snap_at:
            save_snapshot(state, x_hat, args, exp_dir)
            save_state(state, args, ckpt_path)
        if StopFlag.requested:
            save_state(state, args, ckpt_path)
            raise Interrupted(f"stopped at epoch {epoch} of {start}; checkpoint in {ckpt_path}; "
                              f"continue with --resume")
    bar.close()

    # evaluation of the final state
    model, z = state['model'], state['z']
    if x_hat is None:   # resumed from a finished run: recompute the last reconstruction
        x_hat = generate(model.Gnet, z)
    seconds = seconds_before + time.perf_counter() - t_begin
    steps, step_size = chain_settings(start, args)
    metrics = evaluate(model, x, x_hat, z, state['z_eval'])
    metrics.update(epochs=args.n_epochs, seconds=round(seconds, 2),
                   seconds_per_epoch=round(seconds / args.n_epochs, 4),
                   interp_d=[round(v, 4) for v in interp_half_width(z).tolist()],
                   langevin_steps=steps, langevin_step_size=step_size, images=names)
    write_json(metrics, exp_dir / 'metrics.json')
    write_json({str(k): v for k, v in state['traces'].items()}, exp_dir / 'langevin_trace.json')
    logger.info(f"{start} done in {seconds:.1f} s: recon {metrics['recon_psnr_db']:.2f} dB, samples NN "
                f"{metrics['sample_nn_psnr_db_median']:.2f} dB, coverage {metrics['sample_coverage']}/{len(x)}")
    return {'metrics': metrics, 'model': model, 'z': z, 'x': x, 'names': names, 'snapshots': state['snapshots'],
            'loss': (state['stat_epochs'], state['stats']['loss']), 'z_eval': state['z_eval'],
            'traces': state['traces']}


# -----------------------------------------------------------------------------
# comparison of warm and cold

def compare(results, args, out_dir):
    """Figures that put warm and cold side by side, and the metrics dict for output/metrics.json."""
    modes = list(results)
    any_r = results[modes[0]]
    x, n = any_r['x'], any_r['x'].shape[0]
    mid, last = max(1, args.n_epochs // 2), args.n_epochs
    pca = pca_recon(x.cpu(), k=2)
    rows = [('training', x.cpu()), ('PCA, k=2', pca)]
    for m in modes:
        for e in (mid, last):
            if e in results[m]['snapshots']:
                rows.append((f'{m} @ {e}', results[m]['snapshots'][e]))
    plot_recon_comparison(rows, out_dir / 'compare_recon.png')
    sample_panels, interp_panels = [], []
    for m in modes:
        r = results[m]
        gen = r['model'].Gnet
        sample_panels.append((f'{m} start: g(z), z ~ N(0, I)', grid_image(generate(gen, r['z_eval'][:N_FIG_SAMPLES]), 6)))
        d = interp_half_width(r['z'])
        z_grid = interp_grid(args.nz, args.ninterp, d, device)
        interp_panels.append((f'{m} start: d = ({", ".join(f"{v:.2f}" for v in d.tolist())})',
                              grid_image(generate(gen, z_grid), args.ninterp)))
    plot_side_by_side(sample_panels, out_dir / 'compare_samples.png', 'random samples from the prior')
    plot_side_by_side(interp_panels, out_dir / 'compare_interp.png', 'interpolation over (-d, d)^2')
    plot_losses({m: results[m]['loss'] for m in modes}, out_dir / 'compare_loss.png')
    for m in modes:
        r = results[m]
        plot_latent_map(r['z'], x, r['names'], interp_half_width(r['z']), out_dir / f'latent_map_{m}.png',
                        f'{m} start: inferred z of the training images')
    plot_langevin_traces({f'{m}, epoch {e}': tr for m in modes for e, tr in sorted(results[m]['traces'].items())},
                         out_dir / 'langevin_diagnostics.png')
    pca_psnr = psnr(pca, x.cpu()).mean().item()
    return {**{m: results[m]['metrics'] for m in modes}, 'pca': {'recon_psnr_db': round(pca_psnr, 3)},
            'n_images': n}


# -----------------------------------------------------------------------------
# numbers for the report: LaTeX macros and tables generated from the metrics (never typed by hand)

def tex_macros(metrics):
    """\\newcommand lines for every figure the report quotes, e.g. \\warmReconPsnr."""
    lines = []

    def put(name, value):
        lines.append(f'\\newcommand{{\\{name}}}{{{value}}}')

    for m in ('warm', 'cold'):
        r = metrics.get(m)
        if not r:
            continue
        put(f'{m}ReconPsnr', f"{r['recon_psnr_db']:.2f}")
        put(f'{m}NnPsnr', f"{r['sample_nn_psnr_db_median']:.2f}")
        put(f'{m}Coverage', r['sample_coverage'])
        put(f'{m}ZMean', ', '.join(f'{v:+.2f}' for v in r['z_mean']))
        put(f'{m}ZStd', ', '.join(f'{v:.2f}' for v in r['z_std']))
        put(f'{m}Epochs', r['epochs'])
        put(f'{m}Seconds', f"{r['seconds']:.0f}")
        put(f'{m}MsPerEpoch', f"{1000 * r['seconds_per_epoch']:.0f}")
        put(f'{m}Steps', r['langevin_steps'])
        put(f'{m}StepSize', r['langevin_step_size'])
        put(f'{m}InterpD', ', '.join(f'{v:.2f}' for v in r['interp_d']))
    put('pcaReconPsnr', f"{metrics['pca']['recon_psnr_db']:.2f}")
    put('nImages', metrics['n_images'])
    put('totalSeconds', f"{metrics['total_seconds']:.0f}")
    put('totalMinutes', f"{metrics['total_seconds'] / 60:.1f}")
    a = metrics.get('args', {})
    for k in ('lr', 'gamma', 'mse_sigma', 'prior_sigma', 'n_epochs', 'gen_width', 'beta1', 'seed'):
        if k in a:
            digits = {'1': 'One', '2': 'Two'}                 # TeX macro names are letters only
            put('arg' + ''.join(digits.get(c, c) for c in ''.join(w.capitalize() for w in k.split('_'))), a[k])
    return '\n'.join(lines) + '\n'


def results_table(metrics):
    """Rows of the warm / cold / PCA table for the report."""
    rows = []
    for m in ('warm', 'cold'):
        r = metrics.get(m)
        if r:
            rows.append(f"{m} start & {r['recon_psnr_db']:.2f} & {r['sample_nn_psnr_db_median']:.2f} & "
                        f"{r['sample_coverage']}/{metrics['n_images']} & ({', '.join(f'{v:+.2f}' for v in r['z_mean'])}) & "
                        f"({', '.join(f'{v:.2f}' for v in r['z_std'])}) & {1000 * r['seconds_per_epoch']:.0f} & {r['seconds']:.0f} \\\\")
    rows.append(f"PCA, $k=2$ & {metrics['pca']['recon_psnr_db']:.2f} & -- & -- & -- & -- & -- & -- \\\\")
    return '\n'.join(rows) + '\n'


def write_text(text, path):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# -----------------------------------------------------------------------------
# ablations: one change at a time from the defaults, at reduced epochs, cached in OUT_DIR/ablations/

ABLATIONS = [  # (label, start mode, flags changed from the defaults)
    ('defaults', 'warm', []),
    ('noise $4s\\,e$ (skeleton)', 'warm', ['--langevin_noise_scale', '4']),
    ('no noise (gradient descent)', 'warm', ['--langevin_noise_scale', '0']),
    ('$\\sigma = 1$ (course), $s = 0.01$', 'warm', ['--mse_sigma', '1', '--langevin_step_size', '0.01']),
    ('$\\sigma = 0.5$, $s = 0.005$', 'warm', ['--mse_sigma', '0.5', '--langevin_step_size', '0.005']),
    ('$\\sigma = 0.5$, $s = 0.02$', 'warm', ['--mse_sigma', '0.5']),
    ('5 Langevin steps', 'warm', ['--langevin_num_steps', '5']),
    ('20 Langevin steps', 'warm', ['--langevin_num_steps', '20']),
    ('BatchNorm', 'warm', ['--batchnorm']),
    ('no $z$ standardisation', 'warm', ['--no-z_whiten']),
    ('$s = 0.1$, no standardisation', 'warm', ['--langevin_step_size', '0.1', '--no-z_whiten']),
    ('course lr, $\\gamma$ (4e-4, 0.996)', 'warm', ['--lr', '4e-4', '--gamma', '0.996']),
    ('defaults', 'cold', []),
    ('from fixed $z_0$ (skeleton)', 'cold', ['--cold_init', 'fixed']),
    ('with $z$ standardisation', 'cold', ['--z_whiten']),
    ('$\\sigma = 1$ (course)', 'cold', ['--mse_sigma', '1']),
    ('$s = 0.1$', 'cold', ['--cold_langevin_step_size', '0.1']),
    ('20 Langevin steps', 'cold', ['--cold_langevin_num_steps', '20']),
]


def ablation_argv(args, i, mode, extra):
    """Flags of ablation i: the defaults at args.ablation_epochs, plus its own change."""
    e = args.ablation_epochs
    return ['--img_dir', str(args.img_dir), '--out_dir', str(Path(args.out_dir) / 'ablations' / f'{i:02d}'),
            '--start', mode, '--n_epochs', str(e), '--n_plot', str(e), '--n_stats', str(max(1, e // 20)),
            '--n_log', str(max(1, e // 5)), '--seed', str(args.seed), '--threads', str(args.threads), *extra]


def ablation_key(a):
    """Every setting of a run, for the cache: a cached result is re-used only if all of them match."""
    return {k: v for k, v in sorted(vars(a).items()) if k not in ('threads', 'resume')}


def run_ablations(args):
    """Run (or re-use) every ablation at args.ablation_epochs; write ablations.json and ablations.tex."""
    rows = []
    for i, (label, mode, extra) in enumerate(ABLATIONS):
        a = parse_args(ablation_argv(args, i, mode, extra))
        exp_dir = Path(a.out_dir) / mode
        done = exp_dir / 'metrics.json'
        key = ablation_key(a)
        if done.exists() and json.loads(done.read_text()).get('ablation_args') == key:
            m = json.loads(done.read_text())
            print(f"ablation {i:2d} {mode} {label}: cached")
        else:
            try:
                m = run(a, exp_dir, get_logger(exp_dir))['metrics']
            except Diverged as err:
                m = {'diverged': str(err)}
            m['ablation_args'] = key
            write_json(m, done)
        rows.append({'label': label, 'start': mode, 'flags': ' '.join(extra), **m})
    write_json(rows, Path(args.out_dir) / 'ablations.json')
    write_text(ablation_table(rows), Path(args.out_dir) / 'ablations.tex')
    write_text(ablation_macros(rows), Path(args.out_dir) / 'ablations_macros.tex')
    return rows


def ablation_macros(rows):
    """Per row i (letters A, B, ...): \\ablPsnrA, \\ablNnA, \\ablCovA, \\ablZstdA, \\ablMsA for the report's text."""
    done = [r['epochs'] for r in rows if 'epochs' in r]
    out = [f'\\newcommand{{\\ablEpochs}}{{{done[0] if done else "--"}}}']
    for i, r in enumerate(rows):
        key = chr(ord('A') + i)
        if 'diverged' in r:
            vals = dict(Psnr='diverged', Nn='--', Cov='--', Zstd='--', Ms='--')
        else:
            vals = dict(Psnr=f"{r['recon_psnr_db']:.2f}", Nn=f"{r['sample_nn_psnr_db_median']:.2f}",
                        Cov=r['sample_coverage'], Zstd=', '.join(f'{v:.2f}' for v in r['z_std']),
                        Ms=f"{1000 * r['seconds_per_epoch']:.0f}")
        out += [f'\\newcommand{{\\abl{k}{key}}}{{{v}}}' for k, v in vals.items()]
    return '\n'.join(out) + '\n'


def ablation_table(rows):
    """LaTeX rows: start, change, PSNR, sample NN-PSNR, coverage, z std, ms/epoch."""
    out = []
    for r in rows:
        if 'diverged' in r:
            out.append(f"{r['start']} & {r['label']} & \\multicolumn{{5}}{{l}}{{diverged}} \\\\")
            continue
        out.append(f"{r['start']} & {r['label']} & {r['recon_psnr_db']:.2f} & {r['sample_nn_psnr_db_median']:.2f} & "
                   f"{r['sample_coverage']} & ({', '.join(f'{v:.2f}' for v in r['z_std'])}) & "
                   f"{1000 * r['seconds_per_epoch']:.0f} \\\\")
    return '\n'.join(out) + '\n'


# -----------------------------------------------------------------------------
# main

def main(argv=None):
    """Parse flags, train the requested start mode(s), write figures and metrics; returns None."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    set_cuda()
    out_dir = Path(args.out_dir)
    modes = ['warm', 'cold'] if args.start == 'both' else [args.start]
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum, frame):
        StopFlag.requested = True

    t0 = time.perf_counter()
    try:
        list_images(args.img_dir)                        # fail on a missing folder before any work
        out_dir.mkdir(parents=True, exist_ok=True)
        for s in old:
            signal.signal(s, request_stop)
        if args.ablations:
            run_ablations(args)
            return
        results = {}
        for mode in modes:
            margs = argparse.Namespace(**{**vars(args), 'start': mode})
            exp_dir = out_dir / mode
            results[mode] = run(margs, exp_dir, get_logger(exp_dir))
        metrics = compare(results, args, out_dir)
        metrics.update(total_seconds=round(time.perf_counter() - t0, 2), device=device,
                       torch=torch.__version__, args=vars(args))
        if args.start == 'both':
            write_json(metrics, out_dir / 'metrics.json')
            write_text(tex_macros(metrics), out_dir / 'metrics.tex')
            write_text(results_table(metrics), out_dir / 'results_table.tex')
        print(f"done in {time.perf_counter() - t0:.0f} s; figures and metrics in {out_dir}/")
    except UserError as e:
        sys.exit(f"abp.py: error: {e}")
    except Diverged as e:
        sys.exit(f"abp.py: diverged: {e}; the last good checkpoint is kept")
    except Interrupted as e:
        print(f"abp.py: {e}", file=sys.stderr)
        sys.exit(130)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        StopFlag.requested = False


if __name__ == '__main__':
    main()
