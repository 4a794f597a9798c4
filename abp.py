"""Alternating back-propagation (ABP) for a ConvNet generator with a 2-D latent z.

Han, Lu, Zhu, Wu, "Alternating Back-Propagation for Generator Network", AAAI 2017;
Computer Vision I, Project 5 (equations cited as in the handout).

    pip install -r requirements.txt
    python abp.py                                   # warm + cold, every figure, output/metrics.json
    python abp.py --img_dir ../shared/data/lion_tiger --start warm      # one mode: all of it in output/warm/
    python abp.py --resume                          # continue runs stopped by Ctrl-C
    python -m pytest                                # the test suite
    python bench/ablations.py                       # the report's ablation table (cached in output/)
    python bench/bench.py                           # speed: the course hyperparameters against ours
    python report/make_tex.py                       # the report's numbers, from output/*.json

The model (eq. 1): I = g(z; theta) + eps, z ~ N(0, I_d), eps ~ N(0, sigma^2 I_D).
Each epoch alternates
  (1) inferential back-propagation: Langevin dynamics on every image's z (eq. 6);
  (2) learning back-propagation: one Adam step on theta with z held fixed (eq. 7).
Warm start continues each image's chain from its z of the previous epoch. Cold start keeps no z
between epochs: each epoch draws --cold_proposals z's from the prior (a scrambled Sobol sequence, so
they cover it evenly), starts each image's chain at one of them resampled by its likelihood
(sampling-importance-resampling from the prior), and runs the Langevin steps from there.
`--cold_init prior` is the handout's cold start: one prior draw per image. Each image's Langevin step is
capped at its posterior's width, so chains stay stable however sharp the generator becomes, and a health
guard restores the last good state if training collapses.

A mode's settings (steps, s, chain start, standardisation) are resolved once from the flags into a
Chain (chain_for) in main and passed down: train_epoch, the guard's messages and metrics.json read it.
On a CPU with two or more threads, `python abp.py` trains the two modes at the same time in two
processes (--parallel); the results are those of one mode after the other.
"""
import argparse
import contextlib
import copy
import dataclasses
import functools
import io
import json
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import random
import re
import signal
import sys
import time
import traceback
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn as nn
from matplotlib.figure import Figure      # the object API: no pyplot, so importing abp sets no backend
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from matplotlib.patches import Circle, Rectangle
from PIL import Image, ImageDraw, ImageOps
from tqdm import tqdm
# torchvision alone is imported where it is used (default_transform, save_images, tile): importing it takes
# 2.7 s on a 2-core CPU, more than torch itself (2.5 s; torchvision.models pulls in torchvision.ops; measured
# with python -X importtime), and `import abp`, --help and a bad flag need none of it: 4.7 s here without it
# at the top, 8.5 s with it.

# -----------------------------------------------------------------------------
# config

device = 'cuda' if torch.cuda.is_available() else 'cpu'

N_EVAL_SAMPLES = 100   # prior samples behind sample_nn_psnr_db_median / sample_coverage
N_FIG_SAMPLES = 36     # of those, how many {epoch}_sampled.png shows (6 x 6)
INTERP_MARGIN = 1.1    # d_i = INTERP_MARGIN * max_j |z_ji|: the square holds every inferred z
GUARD_DROP_DB = 6.0    # the guard calls an epoch sick when its PSNR is this far below the run's best
GUARD_GOOD_DB = 1.5    # ... and keeps a state to return to when it is within this of the best
GUARD_EVERY = 10       # epochs between two kept states
GUARD_MAX_EVENTS = 5   # recoveries before the run stops
COLD_INITS = ('sir', 'prior', 'fixed', 'annealed', 'chains')   # --cold_init: where cold chains start
ANNEAL_STEPS = 9       # --cold_init annealed: tempered Langevin steps before the chain's own steps ...
ANNEAL_HOT = 8.0       # ... with sigma of eq. 3 lowered geometrically from ANNEAL_HOT * sigma to sigma
PHOTO_JPEG = dict(quality=90, subsampling=0)   # figures of photographs: 4:4:4 JPEG, ~37 dB to the lossless file


class UserError(Exception):
    """A problem with the user's input: reported as one line, never a traceback."""


class Diverged(Exception):
    """Training became non-finite or collapsed, and the guard's recoveries did not help."""


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


def non_negative(text):
    """argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a float, got {text!r}")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def unit_interval(text):
    """argparse type: a float in (0, 1]."""
    value = positive(float)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return value


def occlusion_kind(text):
    """argparse type for --occlude: 'none', 'pixels:P' with 0 < P < 1, 'block:B' or 'blocks:N:B' with N, B >= 1."""
    kind, *nums = text.strip().lower().split(':')
    forms = {'none': (), 'pixels': (float,), 'block': (int,), 'blocks': (int, int)}
    try:
        values = [t(v) for t, v in zip(forms[kind], nums, strict=True)]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r}: use none, pixels:P (e.g. pixels:0.7), block:B (e.g. block:32) "
                                         f"or blocks:N:B (e.g. blocks:4:16)")
    if kind == 'pixels' and not 0 < values[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the fraction P of hidden pixels must be between 0 and 1")
    if any(v < 1 for v in values) and kind != 'pixels':
        raise argparse.ArgumentTypeError(f"{text!r}: N and B must be whole numbers >= 1")
    return ':'.join([kind, *map(str, values)])


def build_parser():
    """Every flag and its default: the one place a default is written."""
    p = argparse.ArgumentParser(description='Alternating back-propagation on a folder of images '
                                '(course flags keep their names; course defaults in brackets).',
                                epilog='The report\'s other tables: python bench/seeds.py, bench/ablations.py, '
                                       'bench/cold_study.py, bench/generalize.py, bench/occlusion.py, bench/bench.py; '
                                       'its numbers: python report/make_tex.py (see README.md).',
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # what to run, where
    p.add_argument('--start', default='both', choices=['warm', 'cold', 'both'],
                   help='warm: z persists across epochs; cold: z re-inferred from the prior each epoch [warm]')
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
                   help='BatchNorm in the generator (couples the images of the batch)')
    # inference (eq. 6)
    p.add_argument('--langevin_step_size', type=positive(float), default=0.03,
                   help='s of eq. 6, warm start (most it can be; see --langevin_step_cap) [0.05]')
    p.add_argument('--langevin_num_steps', type=positive(int), default=2,
                   help='Langevin steps per epoch, warm start: chains persist, so few suffice [120]')
    p.add_argument('--cold_langevin_num_steps', type=positive(int), default=1,
                   help='Langevin steps per epoch, cold start, after the chain start is chosen (ours) [120]')
    p.add_argument('--cold_langevin_step_size', type=positive(float), default=0.02,
                   help='s of eq. 6, cold start (ours) [0.05]')
    p.add_argument('--cold_init', default='sir', choices=COLD_INITS,
                   help='where each cold chain starts, every epoch: sir = one of --cold_proposals prior draws, '
                        'resampled by the image\'s likelihood (ours); prior = one prior draw per image '
                        '(the handout\'s cold start); fixed = the skeleton\'s single z_0; annealed = a prior draw, '
                        f'then {ANNEAL_STEPS} Langevin steps with sigma lowered from {ANNEAL_HOT:g} sigma to sigma; '
                        'chains = --cold_chains prior draws per image, the lowest-energy one after the Langevin steps')
    p.add_argument('--cold_proposals', type=positive(int), default=32,
                   help='prior draws per epoch for --cold_init sir, shared by all images (one generator pass)')
    p.add_argument('--cold_sobol', action=argparse.BooleanOptionalAction, default=True,
                   help='draw the --cold_proposals as a scrambled Sobol sequence, which covers the prior evenly '
                        '(each draw is still a prior draw); --no-cold_sobol: independent draws (ours)')
    p.add_argument('--cold_chains', type=positive(int), default=4, help='chains per image for --cold_init chains')
    p.add_argument('--langevin_step_cap', type=non_negative, default=1.0,
                   help='cap each image\'s step s at this many posterior widths 1/sqrt(curvature of eq. 3 in z), '
                        'so a chain never overshoots however sharp g gets; 0 = off (ours)')
    p.add_argument('--curvature_every', type=positive(int), default=10,
                   help='epochs between two measurements of the posterior widths for --langevin_step_cap')
    p.add_argument('--langevin_noise_scale', type=non_negative, default=1.0,
                   help='noise is scale*s*e; eq. 6 has 1, the course skeleton 4, 0 = gradient descent')
    p.add_argument('--standardize_z', '--z_whiten', action=argparse.BooleanOptionalAction, default=None,
                   help='re-express inferred z with mean 0, std 1 after each epoch\'s chains, absorbing the affine map '
                        'into the first layer so g(z) is unchanged (ours; the skeleton has none); unset: on for warm, '
                        'off for cold')
    p.add_argument('--mse_sigma', type=positive(float), default=2.0,
                   help='sigma of eq. 3, the tempering parameter: 2 broadens the posterior (ours) [1]')
    p.add_argument('--prior_sigma', type=positive(float), default=1.0, help='std of the prior of z [1]')
    # learning (eq. 7)
    p.add_argument('--lr', type=positive(float), default=5e-3, help='Adam learning rate [4e-4]')
    p.add_argument('--beta1', type=unit_interval, default=0.5,
                   help='Adam beta1, warm start (0.8 was tried as its default: README, bench/sharpness.py) [0.5]')
    p.add_argument('--cold_beta1', type=unit_interval, default=0.5,
                   help='Adam beta1, cold start (ours: the course has one beta1 for both) [0.5]')
    p.add_argument('--beta2', type=unit_interval, default=0.999, help='Adam beta2 [0.999]')
    p.add_argument('--gamma', type=unit_interval, default=0.999,
                   help='per-epoch lr decay: 0.999 leaves 13%% of lr at epoch 2000; 0.996 left 1.8%% at 1000 [0.996]')
    p.add_argument('--n_epochs', type=positive(int), default=2000, help='epochs per start mode [2000]')
    p.add_argument('--guard', action=argparse.BooleanOptionalAction, default=True,
                   help=f'training-health guard: an epoch whose PSNR falls {GUARD_DROP_DB:g} dB below the best, '
                        'or turns non-finite, restores the last good state and halves the lr (ours)')
    # logging and figures
    p.add_argument('--ninterp', type=positive(int), default=12, help='interpolation panel side [12]')
    p.add_argument('--n_log', type=positive(int), default=100, help='log every n epochs [100]')
    p.add_argument('--n_plot', type=positive(int), default=1000,
                   help='figures + checkpoint every n epochs (also at the middle and the end) [200]')
    p.add_argument('--n_stats', type=positive(int), default=20, help='loss curve point every n epochs [100]')
    p.add_argument('--threads', type=int, default=0, help='CPU threads for torch (0 = all cores)')
    p.add_argument('--parallel', action=argparse.BooleanOptionalAction, default=None,
                   help='--start both: train warm and cold at once, as two processes with half the threads each '
                        '(the one still running then takes all); unset: on for `python abp.py` with no GPU and 2 or '
                        'more threads')
    # learning from incomplete images
    p.add_argument('--occlude', type=occlusion_kind, default='none',
                   help='hide part of every training image (fixed masks from --seed): none, pixels:P (a fraction P '
                        'of pixels), block:B (one BxB square), blocks:N:B (N squares); training sees only the rest')
    return p


@functools.cache
def flag_defaults():
    """{flag name: default} of build_parser(), made once."""
    return vars(build_parser().parse_args([]))


def with_defaults(args):
    """args with every flag it lacks filled in from build_parser()'s defaults (e.g. an autograder's
    bare Namespace): a new Namespace, or args itself when it lacks nothing."""
    if all(hasattr(args, k) for k in flag_defaults()):
        return args
    return argparse.Namespace(**{**flag_defaults(), **vars(args)})


def check_args(parser, args):
    """Reject flag combinations no run can use, before any work starts (argparse-style, exit 2)."""
    s = args.img_size
    if s < 8 or s & (s - 1):
        parser.error(f"--img_size {s}: the generator doubles 4x4 maps, so use a power of two >= 8 (e.g. 64, 128)")
    if args.threads < 0:
        parser.error(f"--threads {args.threads}: must be >= 0")
    if args.occlude.startswith('block') and int(args.occlude.split(':')[-1]) >= s:
        parser.error(f"--occlude {args.occlude}: the square must be smaller than the images (--img_size {s})")
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


@dataclasses.dataclass(frozen=True)
class Chain:
    """One start mode's settings, resolved from the flags once (chain_for) and passed down: the loop runs
    them, its messages name them and metrics.json reports them."""
    mode: str           # 'warm' or 'cold'
    init: str           # where each epoch's chains start: 'warm' (each image's current z) or a COLD_INITS name
    steps: int          # Langevin steps per epoch (eq. 6)
    step_size: float    # s of eq. 6, before the per-image cap (--langevin_step_cap)
    standardize: bool   # re-standardise z after the chains (standardize_latents)
    proposals: int      # prior draws per epoch, init 'sir'
    sobol: bool         # ... drawn as a scrambled Sobol sequence (quasi_prior), not independently
    n_chains: int       # chains per image, init 'chains'
    beta1: float        # Adam's beta1 for this mode's learning step (eq. 7)

    @property
    def step_flag(self):
        """The flag that sets step_size, for messages."""
        return '--cold_langevin_step_size' if self.mode == 'cold' else '--langevin_step_size'


def chain_for(args, mode):
    """The Chain of `mode` ('warm' or 'cold') from the flags in args: the one place a mode's settings are chosen.
    Standardisation defaults to on for warm, off for cold (cold chains restart from the prior every epoch,
    so their z is at the prior's scale already); Adam's beta1 is --beta1 for warm, --cold_beta1 for cold."""
    standardize = (mode == 'warm') if args.standardize_z is None else args.standardize_z
    if mode == 'warm':
        return Chain('warm', 'warm', args.langevin_num_steps, args.langevin_step_size, standardize,
                     args.cold_proposals, args.cold_sobol, args.cold_chains, args.beta1)
    if mode == 'cold':
        return Chain('cold', args.cold_init, args.cold_langevin_num_steps, args.cold_langevin_step_size, standardize,
                     args.cold_proposals, args.cold_sobol, args.cold_chains, args.cold_beta1)
    raise ValueError(f"start mode must be 'warm' or 'cold', got {mode!r}")


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


def make_masks(kind, n, size, seed):
    """Masks (n, 1, size, size), 1 = observed, 0 = hidden, for --occlude `kind`; None for 'none'.
    Made from their own generator seeded by `seed`, so they never disturb training's random numbers."""
    name, *nums = kind.split(':')
    if name == 'none':
        return None
    rng = torch.Generator().manual_seed(seed)
    if name == 'pixels':                                    # salt-and-pepper: each pixel hidden with chance P
        return (torch.rand(n, 1, size, size, generator=rng) >= float(nums[0])).float()
    count, side = (1, int(nums[0])) if name == 'block' else map(int, nums)
    masks = torch.ones(n, 1, size, size)
    for i in range(n):
        for y, x in torch.randint(0, size - side + 1, (count, 2), generator=rng).tolist():
            masks[i, :, y:y + side, x:x + side] = 0
    return masks


# -----------------------------------------------------------------------------
# generator g(z; theta), eq. 2: z^(l-1) = g_l(W_l z^(l) + b_l)

def channels(res, width, max_ch):
    """Channels of the feature map at resolution res: `width` at 64 px, doubling per halving."""
    return max(1, min(max_ch, width * 64 // res))


def up(cin, cout, batchnorm):
    """One stage of eq. 2: ConvTranspose2d(4, stride 2) doubles the side, then (BatchNorm,) LeakyReLU."""
    return [nn.ConvTranspose2d(cin, cout, 4, 2, 1), *([nn.BatchNorm2d(cout)] if batchnorm else []), nn.LeakyReLU(0.2)]


class GenNet(nn.Module):
    """Generator: z (N, nz) -> images (N, 3, img_size, img_size) in [-1, 1].

    With the defaults (img_size 128, width 16) the stages are
        z (nz) -> fc -> 256 x 4 x 4 -> 128 x 8 x 8 -> 64 x 16 x 16 -> 32 x 32 x 32 -> 16 x 64 x 64 -> 3 x 128 x 128
    A linear layer makes the 4x4 map; each ConvTranspose2d(4, stride 2) doubles the side and halves the
    channels (`channels`), so every stage costs about the same FLOPs; the last emits RGB through tanh.
    Other sizes add or drop stages of the same kind. No BatchNorm by default: with one batch of 11 images
    it would couple the images' reconstructions and its statistics would be disturbed by every Langevin pass."""

    def __init__(self, nz=2, img_size=128, width=16, max_ch=256, batchnorm=False):
        super().__init__()
        self.nz, self.img_size = nz, img_size
        sides = [4 * 2 ** k for k in range(img_size.bit_length() - 3)]         # 4, 8, ..., img_size / 2
        ch = [channels(r, width, max_ch) for r in sides]                         # 256, 128, 64, 32, 16
        self.fc = nn.Linear(nz, ch[0] * 16)                                      # z -> ch[0] x 4 x 4
        self.net = nn.Sequential(
            nn.Unflatten(1, (ch[0], 4, 4)), *([nn.BatchNorm2d(ch[0])] if batchnorm else []), nn.LeakyReLU(0.2),
            *[layer for cin, cout in zip(ch, ch[1:]) for layer in up(cin, cout, batchnorm)],   # 4 -> img_size / 2
            nn.ConvTranspose2d(ch[-1], 3, 4, 2, 1), nn.Tanh())                   # img_size / 2 -> img_size, RGB

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


@torch.no_grad()
def generate(gen, z, chunk=64):
    """g(z) in chunks (figures and metrics never need gradients)."""
    return torch.cat([gen(z[i:i + chunk]) for i in range(0, len(z), chunk)])


def sample_gaussian_prior(batch_size, nz, sig=1):
    """z ~ sig * N(0, I): tensor (batch_size, nz) on the module device."""
    return sig * torch.randn(batch_size, nz, device=device)


# -----------------------------------------------------------------------------
# inference: Langevin dynamics on z (eq. 6)

def sq_error(x_hat, x, mask=None):
    """||I - g(z)||^2 per image (N,), summed over the observed pixels only when a mask (N, 1, H, W) is given."""
    diff = x - x_hat
    if mask is not None:      # where, not a product: whatever lies in the holes (even NaN) never enters
        diff = torch.where(mask > 0, diff, torch.zeros((), dtype=diff.dtype, device=diff.device))
    return diff.pow(2).flatten(1).sum(1)


def energy(x_hat, x, z, mse_sigma, prior_sigma, mask=None):
    """-log p(z, I; theta) + const per image (eq. 3): ||I - g(z)||^2 / (2 sigma^2) + ||z||^2 / (2 prior_sigma^2);
    with a mask, the data term sums over the observed pixels only (learning from incomplete images)."""
    return sq_error(x_hat, x, mask) / (2 * mse_sigma ** 2) + z.pow(2).sum(1) / (2 * prior_sigma ** 2)


class Model(nn.Module):
    """Model(args): generator Gnet + Langevin inference; forward(z) -> Gnet(z)."""

    def __init__(self, args, chain=None):
        super().__init__()
        self.args = a = with_defaults(args)
        # sample_langevin's default steps and s: the given chain's (training passes its mode's), else the
        # course's: args.langevin_num_steps steps of args.langevin_step_size
        self.chain = chain or chain_for(a, 'warm')
        self.Gnet = GenNet(nz=a.nz, img_size=a.img_size, width=a.gen_width, max_ch=a.gen_max_ch,
                           batchnorm=a.batchnorm)
        self.Gnet.apply(weights_init_xavier)
        # channels-last feature maps: 1.3-1.8x faster convolutions on the CPU, same maths
        self.Gnet.to(memory_format=torch.channels_last)

    def sample_langevin(self, z, x, num_steps=None, step_size=None, trace=None, mask=None, mse_sigma=None):
        """Langevin (eq. 6) from z (N, nz) given x (N, 3, H, W) -> new z (N, nz), detached.

        num_steps and step_size (s: a number or one per image, (N, 1)) default to self.chain's; mask
        (N, 1, H, W) marks the observed pixels if only some are; mse_sigma (default args.mse_sigma) is sigma
        of eq. 3. Gradients are taken for z only (torch.autograd.grad), so theta's .grad is never touched.
        If `trace` is a list, one dict per step is appended: mean energy, |z| and step."""
        a = self.args
        s = self.chain.step_size if step_size is None else step_size
        steps = self.chain.steps if num_steps is None else num_steps
        sigma = a.mse_sigma if mse_sigma is None else mse_sigma
        noise = a.langevin_noise_scale * s                  # eq. 6 has 1 * s; the course skeleton 4 * s
        z = z.detach().clone()
        for _ in range(steps):
            z.requires_grad_(True)
            e = energy(self.Gnet(z), x, z, sigma, a.prior_sigma, mask)
            grad = torch.autograd.grad(e.sum(), z)[0]                    # = -d/dz log p(z, I; theta)
            z_new = z.detach() - 0.5 * s * s * grad + noise * torch.randn_like(z)   # eq. 6
            if trace is not None:
                trace.append({'energy': e.mean().item(), 'z_norm': z.detach().norm(dim=1).mean().item(),
                              'step': (z_new - z.detach()).norm(dim=1).mean().item()})
            z = z_new
        return z.detach()

    def forward(self, z):
        return self.Gnet(z)


@torch.no_grad()
def posterior_width(gen, z, mse_sigma, prior_sigma, mask=None, h=1e-3):
    """Per image, the posterior's std along its narrowest direction at z: 1 / sqrt(lambda_max), where
    lambda_max is the largest eigenvalue of eq. 3's curvature in z, J^T J / sigma^2 + I / prior_sigma^2
    (Gauss-Newton), and J = dg/dz comes from finite differences (nz + 1 generator passes). Returns (N, 1).

    Why: without its noise, eq. 6 is gradient descent with rate s^2/2, stable only while
    s^2/2 * lambda_max < 2, i.e. s < 2 * width. As g separates the images, J grows and a fixed s
    overshoots; the overshoot spreads z, and the warm standardisation turns that spread into a
    still larger J, until training collapses."""
    n, nz = z.shape
    probes = torch.cat([z] + [z + h * e for e in torch.eye(nz, device=z.device, dtype=z.dtype)])
    g = generate(gen, probes).flatten(1).double()
    jac = torch.stack([(g[(k + 1) * n:(k + 2) * n] - g[:n]) / h for k in range(nz)], 2)    # (N, D, nz)
    if mask is not None:                                    # only observed pixels shape the posterior
        jac = jac * mask.expand(n, 3, *mask.shape[2:]).flatten(1).unsqueeze(2).to(jac.dtype)
    lam = torch.linalg.eigvalsh(jac.transpose(1, 2) @ jac)[:, -1] / mse_sigma ** 2 + 1 / prior_sigma ** 2
    return lam.rsqrt().float().unsqueeze(1)


def capped_step(s, width, cap):
    """The step of eq. 6 per image: s, but at most cap * posterior width (N, 1); cap 0 = plain s."""
    return s if cap <= 0 or width is None else torch.clamp(cap * width, max=s)


def sq_dists(x, g, mask=None):
    """Squared distances ||x_i - g_m||^2 between every image and every generated image: (N, M); with a
    mask, over image i's observed pixels: sum m x^2 - 2 (m x) . g + m . g^2."""
    g = g.flatten(1)
    g2 = g.pow(2).sum(1)                                    # (M,): sum_p g_mp^2
    if mask is not None:
        g2 = mask.expand_as(x).flatten(1) @ g.pow(2).T      # (N, M): over image i's observed pixels
        x = torch.where(mask > 0, x, torch.zeros((), dtype=x.dtype, device=x.device))
    x = x.flatten(1)
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ g.T + g2).clamp_min(0)


def quasi_prior(n, nz, sig=1):
    """n draws (n, nz) from sig * N(0, I) that cover it evenly: a scrambled Sobol sequence (seeded from torch's
    generator) through the normal quantile. Each draw alone is distributed as the prior; together, for n a
    power of two and nz = 2, every dyadic box of prior mass 1/n (in quantile coordinates) holds exactly one of
    them, where n independent draws leave a region of mass p empty with probability (1 - p)^n."""
    seed = int(torch.randint(0, 2 ** 31 - 1, ()))
    u = torch.quasirandom.SobolEngine(nz, scramble=True, seed=seed).draw(n, dtype=torch.float64)
    return (sig * torch.special.ndtri(u.clamp(1e-9, 1 - 1e-9))).float().to(device)


@torch.no_grad()
def prior_proposals(gen, x, n_proposals, mse_sigma, prior_sigma, mask=None, qmc=False):
    """Cold-start chain starts (N, nz), drawn from the prior and resampled by each image's likelihood.

    M z's are drawn from the prior (with qmc, as one scrambled Sobol sequence: quasi_prior, so that no region
    of the prior is left without a draw by chance) and generated in one pass shared by all images; image i takes
    draw m with probability proportional to p(I_i | z_m) = N(I_i; g(z_m), sigma^2 I) (eq. 1).
    This is sampling-importance-resampling with the prior as the proposal, so the prior term of eq. 3
    cancels from the weights. The chain still starts afresh from the prior every epoch."""
    zeta = quasi_prior(n_proposals, gen.nz, prior_sigma) if qmc else sample_gaussian_prior(n_proposals, gen.nz, prior_sigma)
    log_w = (-sq_dists(x, generate(gen, zeta), mask) / (2 * mse_sigma ** 2)).nan_to_num(nan=-math.inf)
    # a sick generator (non-finite images) leaves nothing to weigh by: draw uniformly, and the guard sees the loss
    log_w = torch.where(torch.isfinite(log_w).any(1, keepdim=True), log_w, torch.zeros((), device=log_w.device))
    return zeta[torch.multinomial(torch.softmax(log_w, 1), 1).squeeze(1)]


def annealed_start(model, x, state, chain, args):
    """--cold_init annealed: a prior draw per image, then ANNEAL_STEPS Langevin steps with sigma of eq. 3
    lowered geometrically from ANNEAL_HOT * sigma to sigma (tempering: early steps see a smoother energy and
    may cross between basins). Each step is capped at the posterior width of its own temperature, which
    grows with sigma, from the widths measured last (or now, on the first epoch)."""
    z = sample_gaussian_prior(x.shape[0], args.nz, args.prior_sigma)
    width = state['width'] if state['width'] is not None else \
        posterior_width(model.Gnet, z, args.mse_sigma, args.prior_sigma, state['mask'])
    for t in range(ANNEAL_STEPS):
        temp = ANNEAL_HOT ** (1 - t / max(1, ANNEAL_STEPS - 1))
        s = capped_step(chain.step_size * temp, width * temp, args.langevin_step_cap)
        z = model.sample_langevin(z, x, 1, s, mask=state['mask'], mse_sigma=args.mse_sigma * temp)
    return z


def best_of_chains(model, x, state, chain, args):
    """--cold_init chains: chain.n_chains prior draws per image, chain.steps capped Langevin steps each,
    and per image the end of lowest energy (eq. 3)."""
    c, n, mask = chain.n_chains, x.shape[0], state['mask']
    z = sample_gaussian_prior(c * n, args.nz, args.prior_sigma)
    xx, mm = x.repeat(c, 1, 1, 1), None if mask is None else mask.repeat(c, 1, 1, 1)
    width = state['width'] if state['width'] is not None else \
        posterior_width(model.Gnet, z[:n], args.mse_sigma, args.prior_sigma, mask)
    s = capped_step(chain.step_size, width.repeat(c, 1), args.langevin_step_cap)
    z = model.sample_langevin(z, xx, chain.steps, s, mask=mm)
    e = energy(generate(model.Gnet, z), xx, z, args.mse_sigma, args.prior_sigma, mm).view(c, n)
    return z.view(c, n, -1)[e.argmin(0), torch.arange(n)]


def chain_start(chain, state, x, args):
    """Where this epoch's Langevin chains start, by chain.init: warm -> each image's current z; cold ->
    prior proposals resampled by likelihood (sir), one prior draw per image (prior), the skeleton's
    fixed z_0 (fixed), a tempered chain from a prior draw (annealed), or the best of several (chains)."""
    model, n = state['model'], x.shape[0]
    if chain.init == 'warm':
        return state['z']
    if chain.init == 'fixed':
        return state['z_0']
    if chain.init == 'prior':
        return sample_gaussian_prior(n, args.nz, args.prior_sigma)
    if chain.init == 'annealed':
        return annealed_start(model, x, state, chain, args)
    if chain.init == 'chains':
        return best_of_chains(model, x, state, chain, args)
    return prior_proposals(model.Gnet, x, chain.proposals, args.mse_sigma, args.prior_sigma, state['mask'], chain.sobol)


def langevin_step(chain, state, args):
    """This epoch's s of eq. 6 per image: the chain's step, capped at --langevin_step_cap posterior widths,
    times the guard's scale (1 unless it had to shrink the steps)."""
    return capped_step(chain.step_size, state['width'], args.langevin_step_cap) * state['health']['step_scale']


# -----------------------------------------------------------------------------
# learning: one gradient step on theta given the inferred z (eq. 7)

def recon_loss(x_hat, x, mse_sigma, mask=None):
    """Loss for theta: mean over images of ||I - g(z)||^2 / (2 sigma^2) (eq. 3's data term, over the observed
    pixels if masked; its theta-gradient is eq. 7)."""
    return sq_error(x_hat, x, mask).mean() / (2 * mse_sigma ** 2)


def learn_step(model, optimizer, z, x, mse_sigma, mask=None):
    """One Adam step on theta with z fixed; returns (loss tensor, x_hat detached)."""
    x_hat = model(z.detach())
    loss = recon_loss(x_hat, x, mse_sigma, mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), x_hat.detach()


@torch.no_grad()
def standardize_latents(gen, z):
    """Re-express z (N, nz) with mean 0 and std 1 per dimension, absorbing the affine map into the
    generator's first (linear) layer: g(z), and with it eq. 3's data term, is unchanged exactly; the prior
    term ||z||^2 / 2 is not (it is what pulls z towards N(0, I)'s scale). Returns the new z.

    Why: the data term is invariant to z -> c z + m (the first layer can undo it) and the prior's pull
    per Langevin step, s^2/2 * z, is far weaker than the likelihood's, so the scale of the inferred z
    drifts and samples from N(0, I) miss the images' z."""
    if z.shape[0] < 2:
        return z
    m, c = z.mean(0), z.std(0).clamp_min(1e-3)
    gen.fc.bias += gen.fc.weight @ m
    gen.fc.weight *= c
    return (z - m) / c


def train_epoch(state, x, chain, args, trace=None):
    """One epoch of ABP: (1) Langevin on z (eq. 6), (2) one step on theta (eq. 7). Returns (loss, x_hat)."""
    model = state['model']
    # (1) inferential back-propagation: warm continues each chain, cold starts from the prior
    z = chain_start(chain, state, x, args)
    if args.langevin_step_cap > 0 and state['epoch'] % args.curvature_every == 0:
        state['width'] = posterior_width(model.Gnet, z, args.mse_sigma, args.prior_sigma, state['mask'])
    z = model.sample_langevin(z, x, chain.steps, langevin_step(chain, state, args), trace, state['mask'])
    if chain.standardize:                                   # fix the gauge: inferred z at N(0, I)'s scale
        z = standardize_latents(model.Gnet, z)
    state['z'] = z
    # (2) learning back-propagation on the detached z
    loss, x_hat = learn_step(model, state['optimizer'], z, x, args.mse_sigma, state['mask'])
    state['scheduler'].step()
    return loss, x_hat


# -----------------------------------------------------------------------------
# training health: a seat belt that notices a collapse while it happens and backs out of it

def keep_good_state(state):
    """A copy of what a recovery restores: generator, optimiser, scheduler, latents, curves."""
    return {'epoch': state['epoch'], 'model': copy.deepcopy(state['model'].state_dict()),
            'optimizer': copy.deepcopy(state['optimizer'].state_dict()),
            'scheduler': copy.deepcopy(state['scheduler'].state_dict()), 'z': state['z'].clone(),
            'width': None if state['width'] is None else state['width'].clone(),
            'stats': copy.deepcopy(state['stats']), 'stat_epochs': list(state['stat_epochs'])}


def restore_good_state(state):
    """Put the kept good state back (the run continues from its epoch)."""
    good = state['health']['good']
    state['model'].load_state_dict(good['model'])
    state['optimizer'].load_state_dict(good['optimizer'])
    state['scheduler'].load_state_dict(good['scheduler'])
    for k in ('epoch', 'z', 'width', 'stats', 'stat_epochs'):
        state[k] = copy.deepcopy(good[k])
    for k in ('snapshots', 'traces', 'frames'):             # what the abandoned epochs recorded
        state[k] = {e: v for e, v in state[k].items() if e <= good['epoch']}


def diagnose(loss, z, psnr_db, best_db):
    """What is wrong with this epoch, in words, or None: non-finite numbers or a collapse of the PSNR.
    (A non-finite parameter shows up as a non-finite loss one epoch later.)"""
    what = ('the loss' if not torch.isfinite(loss).all() else 'the latent z' if not torch.isfinite(z).all() else None)
    if what:
        return f"{what} became non-finite"
    if psnr_db < best_db - GUARD_DROP_DB:
        return f"the reconstruction PSNR fell to {psnr_db:.1f} dB (best {best_db:.1f} dB)"
    return None


def guard_epoch(state, loss, psnr_db, chain_energy, chain, args, logger):
    """After an epoch: keep a good state now and then, or, if the epoch is sick, restore the last good
    state, halve the lr (and the Langevin step if the chain made the fit worse) and log one line.
    Raises Diverged after GUARD_MAX_EVENTS recoveries, or at once with --no-guard."""
    h, epoch = state['health'], state['epoch']
    what = diagnose(loss, state['z'], psnr_db, h['best_db'])
    if what is None:
        h['best_db'] = max(h['best_db'], psnr_db)
        if (psnr_db >= h['best_db'] - GUARD_GOOD_DB and epoch - h['good']['epoch'] >= GUARD_EVERY
                and all(torch.isfinite(p).all() for p in state['model'].parameters())):
            h['good'] = keep_good_state(state)
        return
    if not args.guard and 'non-finite' not in what:
        return                                              # --no-guard: only non-finite numbers stop a run
    lr = state['optimizer'].param_groups[0]['lr']
    if not args.guard or len(h['events']) >= GUARD_MAX_EVENTS:
        tried = f" after {len(h['events'])} recoveries" if args.guard else ''
        raise Diverged(f"{what} at epoch {epoch}{tried}; lower {chain.step_flag} (now "
                       f"{chain.step_size}) or --lr (now {args.lr}), or raise --mse_sigma")
    chain = bool(torch.isfinite(loss)) and chain_energy is not None and loss.item() > 2 * chain_energy
    restore_good_state(state)
    for group in state['optimizer'].param_groups:
        group['lr'] = lr / 2
    h['step_scale'] *= 0.5 if chain else 1.0
    h['events'].append({'epoch': epoch, 'what': what, 'back_to': state['epoch'], 'lr': lr / 2,
                        'step_scale': h['step_scale']})
    logger.warning(f"guard: {what} at epoch {epoch}; back to epoch {state['epoch']} with lr {lr / 2:.2e}"
                   + (f" and Langevin steps x{h['step_scale']:g}" if chain else ''))


# -----------------------------------------------------------------------------
# evaluation

def to_unit(x):
    """[-1, 1] -> [0, 1]."""
    return (x.clamp(-1, 1) + 1) / 2


def psnr(a, b, mask=None):
    """PSNR in dB per image of a, b (N, 3, H, W) in [-1, 1], measured in [0, 1]; with a mask (N, 1, H, W),
    over the pixels where it is > 0 only."""
    se = (to_unit(a) - to_unit(b)).pow(2)
    if mask is None:
        mse = se.flatten(1).mean(1)
    else:
        m = (mask > 0).expand_as(se)
        mse = torch.where(m, se, torch.zeros((), dtype=se.dtype, device=se.device)).flatten(1).sum(1) \
            / m.flatten(1).sum(1).clamp_min(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def nearest_neighbours(samples, images):
    """For each sample, (PSNR to its nearest image, index of that image)."""
    s, t = to_unit(samples).flatten(1), to_unit(images).flatten(1)
    mse = torch.cdist(s.double(), t.double()).pow(2) / s.shape[1]
    best, idx = mse.min(1)
    return 10 * torch.log10(1.0 / best.clamp_min(1e-10)).float(), idx


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


def mean_fill(x, mask):
    """Baseline: each hidden pixel gets its mean over the images where it is observed (the mean of all
    observed values where it is observed in none)."""
    m = (mask > 0).expand_as(x).to(x.dtype)
    count, total = m.sum(0), (x * m).sum(0)
    pixel_mean = torch.where(count > 0, total / count.clamp_min(1), total.sum() / count.sum().clamp_min(1))
    return torch.where(m > 0, x, pixel_mean)


def pca_fill(x, mask, k=2, iters=100):
    """Baseline: hidden pixels filled by a rank-k PCA of the observed ones, by iterative imputation
    (fill with mean_fill, fit PCA, refill the hidden pixels from its reconstruction, repeat)."""
    m = (mask > 0).expand_as(x)
    filled = mean_fill(x, mask)
    for _ in range(iters):
        filled = torch.where(m, x, pca_recon(filled, k))
    return filled


def occlusion_metrics(kind, x_hat, x_true, mask):
    """Recovery of the hidden pixels: PSNR there for ABP's g(z) and the two baselines, and on the observed pixels."""
    hidden = 1 - mask
    x_obs = torch.where(mask > 0, x_true, torch.zeros((), dtype=x_true.dtype, device=x_true.device))
    fills = {'abp': x_hat, 'mean': mean_fill(x_obs, mask), 'pca': pca_fill(x_obs.cpu(), mask.cpu()).to(x_true.device)}
    out = {'kind': kind, 'hidden_fraction': round(hidden.mean().item(), 4),
           'abp_observed_psnr_db': round(psnr(x_hat, x_true, mask).mean().item(), 3)}
    out.update({f'{k}_hidden_psnr_db': round(psnr(v, x_true, hidden).mean().item(), 3) for k, v in fills.items()})
    return out


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


def interp_grid(nz, ninterp, d, dev):
    """ninterp^2 latents: dims 0 and 1 span [-d[i], d[i]] (row: dim 0, column: dim 1), others 0."""
    d = torch.as_tensor(d, dtype=torch.float32, device=dev).flatten()
    axes = [torch.linspace(-float(d[i]), float(d[i]), ninterp, device=dev) for i in range(min(2, nz))]
    z = torch.zeros(ninterp * ninterp, nz, device=dev)
    rows, cols = torch.meshgrid(axes[0], axes[-1] if nz > 1 else torch.zeros(ninterp, device=dev), indexing='ij')
    z[:, 0] = rows.flatten()
    if nz > 1:
        z[:, 1] = cols.flatten()
    return z


def save_interp(model, args, z_std, device, path):
    """Save an args.ninterp x args.ninterp panel, dim i spanning [-z_std[i], z_std[i]], to path; returns None.
    (z_std is the course's name: it holds the half-widths d of the square, interp_half_width(z) here.)"""
    z = interp_grid(args.nz, args.ninterp, z_std, device)
    gen = model.Gnet if hasattr(model, 'Gnet') else model
    save_images(generate(gen, z), path, nrow=args.ninterp)


def save_fig(fig, path, dpi=120):
    """Save a matplotlib figure atomically, as its path's suffix says. Figures of photographs go to *.jpg: a
    4:4:4 JPEG (PHOTO_JPEG), about 37 dB PSNR to the lossless render, above the 31 dB of the reconstructions
    they show, at a third of a lossless PNG's size (bench/png_size.py measures both); the rest to *.png.
    Returns the lossless render (an RGB PIL image) of a JPEG, None for a PNG."""
    with atomic_path(path) as tmp:
        if Path(path).suffix.lower() not in ('.jpg', '.jpeg'):
            fig.savefig(tmp, dpi=dpi, bbox_inches='tight')
            return None
        buf = io.BytesIO()
        fig.savefig(buf, format='png', dpi=dpi, bbox_inches='tight')
        img = Image.open(buf).convert('RGB')
        img.save(tmp, format='JPEG', **PHOTO_JPEG)
    return img


def plot_stats(exp_dir, stats, interval):
    """One panel per key of stats (name -> values) against interval; writes stat.png and stat.pdf; returns None."""
    keys = list(stats)
    fig = Figure(figsize=(6, 2.6 * len(keys)))
    axes = fig.subplots(len(keys), 1, squeeze=False)
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


def tile(img, nrow, pad_value):
    """(N, C, H, W) -> numpy H' x W' x C grid of nrow images per row, 2-px padding of pad_value."""
    from torchvision.utils import make_grid
    return make_grid(img, nrow=nrow, padding=2, pad_value=pad_value).permute(1, 2, 0).numpy()


def grid_image(img, nrow):
    """(N, 3, H, W) in [-1, 1] -> numpy HxWx3 grid for matplotlib."""
    return tile(to_unit(img.float().cpu()), nrow, 1.0)


def shown_images(n, most=12):
    """Indices of at most `most` of n images, evenly spread: the comparison strips stay readable."""
    return list(range(n)) if n <= most else np.linspace(0, n - 1, most).round().astype(int).tolist()


def plot_recon_comparison(rows, path, title=''):
    """rows: list of (label, images (N, 3, H, W)); one labelled strip per row."""
    n = rows[0][1].shape[0]
    fig = Figure(figsize=(1.0 * max(n, 4), 1.15 * len(rows)))
    axes = fig.subplots(len(rows), 1, squeeze=False)
    for ax, (label, img) in zip(axes[:, 0], rows):
        ax.imshow(grid_image(img, n))
        ax.set_ylabel(label, rotation=0, ha='right', va='center', fontsize=12)   # >= 7 pt at text width
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        axes[0, 0].set_title(title, fontsize=12)
    fig.subplots_adjust(hspace=0.05)
    save_fig(fig, path)


def plot_side_by_side(panels, path, title=''):
    """panels: list of (title, numpy image); drawn side by side."""
    fig = Figure(figsize=(6 * len(panels), 6.3))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (t, im) in zip(axes[0], panels):
        ax.imshow(im)
        ax.set_title(t, fontsize=14)                        # >= 7 pt at text width
        ax.axis('off')
    if title:
        fig.suptitle(title, fontsize=15)
    fig.tight_layout(rect=(0, 0, 1, 0.95) if title else None)   # the title above the panels' own
    save_fig(fig, path)


def plot_interp_panel(img, d, n, path, title):
    """One n x n interpolation panel (n^2 images in interp_grid's order) with its z values on the axes: rows
    are z[0] from -d[0] at the top to d[0] at the bottom, columns z[1] from -d[1] on the left to d[1] on the
    right, as plot_latent_map draws the plane."""
    d = first_two_dims(d)[0]
    size = img.shape[-1] + 2                                # a tile and its padding, in pixels
    fig = Figure(figsize=(7.2, 7.6))
    ax = fig.subplots()
    ax.imshow(grid_image(img, n))
    centres = [2 + size * k + (size - 2) / 2 for k in range(n)]
    ax.set_xticks(centres, [f'{v:.2f}' for v in torch.linspace(-float(d[1]), float(d[1]), n).tolist()], fontsize=9)
    ax.set_yticks(centres, [f'{v:.2f}' for v in torch.linspace(-float(d[0]), float(d[0]), n).tolist()], fontsize=9)
    ax.tick_params(length=2, pad=1)
    ax.set_xlabel('z[1] (columns)', fontsize=10)
    ax.set_ylabel('z[0] (rows)', fontsize=10)
    ax.set_title(title, fontsize=11)
    save_fig(fig, path)


def plot_losses(curves, path, events=None):
    """curves: dict mode -> (epochs, losses); one log-scale plot; guard events (mode -> list) as crosses."""
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    for mode, (ep, loss) in curves.items():
        line, = ax.plot(ep, loss, label=mode)
        hits = [e['epoch'] for e in (events or {}).get(mode, [])]
        if hits and loss:
            ax.plot(hits, [max(loss)] * len(hits), 'x', color=line.get_color(), label=f'{mode}: guard recovery')
    ax.set_yscale('log')
    ax.set_xlabel('epoch')
    ax.set_ylabel('loss = mean ||I - g(z)||^2 / (2 sigma^2)')
    ax.grid(alpha=0.3)
    ax.legend()
    save_fig(fig, path)


def image_groups(names):
    """A label per file, its name's leading letters (lion_3.jpg -> lion), when that groups the images
    meaningfully: 2 to 10 groups of 2 or more. Otherwise every image is in one group, 'images'."""
    prefix = [(re.match(r'[^\W\d_]+', Path(n).stem) or [''])[0].lower() for n in names]
    sizes = {p: prefix.count(p) for p in prefix}
    if 2 <= len(sizes) <= 10 and '' not in sizes and min(sizes.values()) >= 2:
        return prefix
    return ['images'] * len(names)


def first_two_dims(v):
    """(N, nz) or (nz,) -> (N, 2) on the CPU: the plane the maps show; a 1-D latent sits on the z[0] axis."""
    v = v.detach().cpu().float().reshape(-1, v.shape[-1])
    return torch.cat([v, torch.zeros(len(v), 2)], 1)[:, :2]


def plot_latent_map(z, x, names, d, path, title):
    """The images' inferred z on the plane as thumbnails framed by group (image_groups), prior 1- and
    2-sigma circles and the interpolation square (-d, d)^2. Any number of images and names. Oriented as the
    interpolation panel (plot_interp_panel): z[1] to the right, z[0] downwards; the legend sits below the plane."""
    z, d = first_two_dims(z), first_two_dims(d)[0].clamp_min(1e-3)
    groups = image_groups(names)
    colours = dict(zip(sorted(set(groups)), matplotlib.colormaps['tab10'].colors))
    fig = Figure(figsize=(4.6, 5.2))
    ax = fig.subplots()
    for r, ls in ((1, '-'), (2, '--')):
        ax.add_patch(Circle((0, 0), r, fill=False, ls=ls, color='grey', label=f'prior {r} sigma'))
    ax.add_patch(Rectangle((-d[1], -d[0]), 2 * d[1], 2 * d[0], fill=False, color='black', lw=1.5,
                           label='interpolation square'))
    thumbs = to_unit(x).cpu().permute(0, 2, 3, 1).numpy()
    zoom = 22 / thumbs.shape[1] * min(1.0, (40 / len(thumbs)) ** 0.5)   # smaller thumbnails for many images
    for zi, im, g in zip(z, thumbs, groups):
        ab = AnnotationBbox(OffsetImage(im, zoom=zoom), (zi[1].item(), zi[0].item()),
                            bboxprops=dict(edgecolor=colours[g], lw=2), pad=0.1)
        ax.add_artist(ab)
    for g, c in colours.items():
        ax.plot([], [], 's', color=c, label=g)
    lim = max(2.3, float(d.max()) * 1.15, float(z.abs().max()) * 1.2)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(lim, -lim)                                  # z[0] grows downwards, as the panel's rows
    ax.set_aspect('equal')
    ax.set_xlabel('z[1] (interpolation columns)', fontsize=10)   # >= 7 pt at half the text width
    ax.set_ylabel('z[0] (interpolation rows)', fontsize=10)
    ax.tick_params(labelsize=10)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=10, frameon=False)
    save_fig(fig, path)


def plot_langevin_traces(traces, path):
    """traces: dict label -> list of per-step dicts (energy, z_norm, step); three panels."""
    fig = Figure(figsize=(12, 3.2))
    axes = fig.subplots(1, 3)
    for label, tr in traces.items():
        steps = range(1, len(tr) + 1)
        for ax, key in zip(axes, ('energy', 'z_norm', 'step')):
            ax.plot(steps, [t[key] for t in tr], marker='.', label=label)
    for ax, t in zip(axes, ('energy per image (eq. 3), log scale', 'mean ||z||', 'mean ||z_{t+1} - z_t||')):
        ax.set_title(t, fontsize=10)
        ax.set_xlabel('Langevin step')
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    axes[0].set_yscale('log')
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_fig(fig, path)


def blacken_hidden(x, mask):
    """The occluded input as a person sees it: hidden pixels black."""
    return torch.where(mask > 0, x, torch.full((), -1.0, dtype=x.dtype, device=x.device))


def walk_path(codes, frames):
    """A closed, smooth path through every code (K, nz): the codes in order of their angle around their
    mean (in the first two dimensions), joined by a Catmull-Rom spline; `frames` points at equal arc
    length. Returns (frames, nz)."""
    c = codes.detach().cpu().double()
    if len(c) < 2:
        return c.repeat(frames, 1).float()
    if c.shape[1] > 1:
        d = c[:, :2] - c[:, :2].mean(0)
        c = c[torch.atan2(d[:, 1], d[:, 0]).argsort()]
    else:
        c = c[c[:, 0].argsort()]
    p = torch.cat([c[-1:], c, c[:2]])                     # closed: wrap around
    t = torch.linspace(0, 1, 33, dtype=c.dtype)[:-1, None]
    pieces = [0.5 * (2 * p[i + 1] + (p[i + 2] - p[i]) * t + (2 * p[i] - 5 * p[i + 1] + 4 * p[i + 2] - p[i + 3]) * t ** 2
                     + (3 * p[i + 1] - p[i] - 3 * p[i + 2] + p[i + 3]) * t ** 3) for i in range(len(c))]
    dense = torch.cat(pieces)
    arc = torch.cat([torch.zeros(1, dtype=c.dtype), dense.diff(dim=0).norm(dim=1).cumsum(0)])   # length so far
    at = torch.linspace(0, float(arc[-1]), frames + 1, dtype=c.dtype)[:-1]
    return dense[torch.searchsorted(arc, at).clamp(max=len(dense) - 1)].float()


def minimap(codes, point, d, size):
    """A size x size picture of the latent square (-d, d)^2: the codes as dots, the current point in red."""
    img = Image.new('RGB', (size, size), (245, 245, 245))
    draw = ImageDraw.Draw(img)
    d2 = first_two_dims(d)[0].clamp_min(1e-3)
    xy = (first_two_dims(torch.cat([codes.reshape(-1, codes.shape[-1]), point.reshape(1, -1)])) / d2 + 1) / 2
    xy = torch.stack([xy[:, 0], 1 - xy[:, 1]], 1).clamp(0, 1) * (size - 1)     # image rows grow downwards
    draw.rectangle([0, 0, size - 1, size - 1], outline=(0, 0, 0))
    for (x, y), r, colour in [(v, 2, (60, 60, 60)) for v in xy[:-1].tolist()] + [(xy[-1].tolist(), 4, (220, 30, 30))]:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    return img


def save_gif(frames, path, ms_per_frame):
    """PIL images -> an endlessly looping GIF at path, atomically."""
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format='GIF', save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0,
                       optimize=True)


def save_latent_walk(gen, codes, d, path, frames=48):
    """latent_walk_<mode>.gif: g(z) along walk_path through the codes, beside a map of where z is."""
    path_z = walk_path(codes, frames).to(next(gen.parameters()).device)
    imgs = to_uint8(generate(gen, path_z)).permute(0, 2, 3, 1).numpy()
    size = imgs.shape[1]
    out = []
    for im, z in zip(imgs, path_z):
        frame = Image.new('RGB', (2 * size, size), (255, 255, 255))
        frame.paste(Image.fromarray(im), (0, 0))
        frame.paste(minimap(codes, z, d, size), (size, 0))
        out.append(frame)
    save_gif(out, path, 100)


def save_training_gif(frames, path, label):
    """training_<mode>.gif: the reconstructions as training went on, one frame per kept epoch."""
    out = []
    for epoch, img in sorted(frames.items()):
        grid = tile(img, min(len(img), 6), 255)
        frame = Image.new('RGB', (grid.shape[1], grid.shape[0] + 16), (255, 255, 255))
        frame.paste(Image.fromarray(grid), (0, 16))
        ImageDraw.Draw(frame).text((4, 2), f'{label}, epoch {epoch}', fill=(0, 0, 0))
        out.append(frame)
    save_gif(out, path, 400)


# -----------------------------------------------------------------------------
# training: one start mode

def fmt_vector(v):
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


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it between epochs so a checkpoint is always consistent."""
    requested = False


def request_stop(signum, frame):
    """SIGINT/SIGTERM handler: stop after this epoch (StopFlag)."""
    StopFlag.requested = True


class Worker:
    """Set only in a process that trains one mode of a --parallel run (run_worker): its progress bar's line,
    and the event a mode's process sets when it finishes, after which the one still running takes every thread."""
    position = 0
    finished = None
    threads_after = 0


def take_freed_cores():
    """In a --parallel worker: once the other mode has finished, use its threads too (checked every epoch)."""
    if Worker.finished is not None and Worker.finished.is_set():
        torch.set_num_threads(Worker.threads_after)
        Worker.finished = None


def new_state(args, n, chain=None):
    """Everything training changes, in one dict: model, optimiser, schedule, latents, curves, guard."""
    set_seed(args.seed)
    model = Model(args, chain).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(model.chain.beta1, args.beta2))
    z_0 = sample_gaussian_prior(n, args.nz, args.prior_sigma)
    state = {'model': model, 'optimizer': optimizer,
             'scheduler': torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.gamma),
             'z': z_0.clone(), 'z_0': z_0,
             'z_eval': sample_gaussian_prior(N_EVAL_SAMPLES, args.nz, args.prior_sigma),  # fixed prior samples
             'epoch': 0, 'seconds': 0.0, 'stats': {'loss': [], 'psnr_db': []}, 'stat_epochs': [],
             'snapshots': {}, 'traces': {}, 'frames': {}, 'width': None, 'saved_epoch': 0,
             'mask': None if args.occlude == 'none' else make_masks(args.occlude, n, args.img_size, args.seed).to(device),
             'health': {'best_db': -math.inf, 'events': [], 'step_scale': 1.0, 'good': None}}
    state['health']['good'] = keep_good_state(state)
    return state


MODULES = ('model', 'optimizer', 'scheduler')   # saved through state_dict(); the rest of the state as is


def save_state(state, args, chain, path):
    """The one checkpoint dict: generator, optimiser, scheduler, z, epoch, flags and the mode's chain settings,
    curves, guard, RNG states."""
    state['saved_epoch'] = state['epoch']
    ck = {k: v for k, v in state.items() if k not in MODULES}
    ck.update(generator=state['model'].state_dict(), optimizer=state['optimizer'].state_dict(),
              scheduler=state['scheduler'].state_dict(), args=vars(args), chain=dataclasses.asdict(chain),
              rng=rng_state())
    save_checkpoint(path, ck)


RESUME_MUST_MATCH = ('nz', 'img_size', 'gen_width', 'gen_max_ch', 'batchnorm', 'occlude')


def load_state(state, path, args, chain):
    """Restore a checkpoint written by save_state into state (and the RNGs), in place.
    Raises UserError if it is unreadable or was written by a run with another model or data."""
    try:
        ck = torch.load(path, map_location=device, weights_only=False)
    except Exception as e:
        raise UserError(f"cannot read checkpoint {path} ({type(e).__name__}); delete it or run without --resume")
    old = ck.get('args', {})
    diff = [f"--{k} {old.get(k)}" for k in RESUME_MUST_MATCH if old.get(k) != getattr(args, k, None)]
    old_mode = ck.get('chain', {}).get('mode', old.get('start'))      # checkpoints before Chain: args.start
    if old_mode != chain.mode:
        diff.append(f"--start {old_mode}")
    missing = [k for k in state if k not in MODULES and k not in ck]
    if diff or missing or ck['z'].shape != state['z'].shape:
        what = (', '.join(diff) if diff else 'an older abp.py' if missing else f"{ck['z'].shape[0]} images")
        raise UserError(f"checkpoint {path} was written with {what}; resume with the same flags and images, "
                        f"or run without --resume")
    state['model'].load_state_dict(ck['generator'])
    state['optimizer'].load_state_dict(ck['optimizer'])
    state['scheduler'].load_state_dict(ck['scheduler'])
    for k in state:
        if k not in MODULES:
            state[k] = ck[k]
    set_rng_state(ck['rng'])


def log_progress(state, x_hat, loss, psnr_db, mode, args, exp_dir, logger, bar):
    """Loss-curve points, stat.png, the progress bar and log lines, on their schedules."""
    epoch, z = state['epoch'], state['z']
    if epoch % args.n_stats == 0 or epoch == args.n_epochs:
        state['stats']['loss'].append(loss.item())
        state['stats']['psnr_db'].append(psnr_db)
        state['stat_epochs'].append(epoch)
    if epoch % args.n_log == 0 or epoch == args.n_epochs:      # plotting costs ~0.3 s: not every point
        plot_stats(exp_dir, state['stats'], state['stat_epochs'])
    if epoch % args.n_log == 0 or epoch == 1:
        bar.set_postfix(loss=f'{loss.item():.1f}', psnr=f'{psnr_db:.1f}dB')
        logger.info(f"{mode} epoch {epoch:5d} loss {loss.item():10.3f} psnr {psnr_db:6.2f} dB "
                    f"z mean {fmt_vector(z.mean(0))} std {fmt_vector(z.std(0)) if len(z) > 1 else '-'} "
                    f"lr {state['optimizer'].param_groups[0]['lr']:.2e}")


def frame_epochs(n_epochs, count=16):
    """Epochs that get a frame of training_<mode>.gif: evenly spaced in log(epoch), since most of what
    changes on screen changes early."""
    return set(np.unique(np.geomspace(1, n_epochs, count).round().astype(int)).tolist())


def gif_frame(x_hat):
    """Up to 12 reconstructions as uint8 for training_<mode>.gif, at half size from 64 px up (small GIFs)."""
    img = x_hat[shown_images(len(x_hat))].detach().float()
    if img.shape[-1] >= 64:
        img = torch.nn.functional.interpolate(img, scale_factor=0.5, mode='area')
    return to_uint8(img)


def to_uint8(img):
    """(N, 3, H, W) in [-1, 1] -> uint8 on the CPU (a quarter of the memory, for frames kept in the checkpoint)."""
    return (to_unit(img.detach().float().cpu()) * 255 + 0.5).to(torch.uint8)


def recon_nrow(n):
    """Images per row of {epoch}_recon.png: one row for up to 16 images, rows of 16 beyond."""
    return min(n, 16)


def save_snapshot(state, x_hat, args, exp_dir):
    """The skeleton's three figures for this epoch: reconstructions, prior samples, interpolation."""
    epoch, gen = state['epoch'], state['model'].Gnet
    state['snapshots'][epoch] = x_hat.cpu()
    save_images(x_hat, exp_dir / f'{epoch:04d}_recon.png', nrow=recon_nrow(x_hat.shape[0]))
    save_images(generate(gen, state['z_eval'][:N_FIG_SAMPLES]), exp_dir / f'{epoch:04d}_sampled.png', nrow=6)
    save_interp(state['model'], args, interp_half_width(state['z']), device, exp_dir / f'{epoch:04d}_interp.png')


def train(state, x, chain, args, exp_dir, logger):
    """Epochs from state['epoch'] + 1 to args.n_epochs, with the guard, figures and checkpoints on their
    schedules. Returns the last x_hat (None if there was nothing left to train)."""
    t_begin, seconds_before = time.perf_counter(), state['seconds']
    snap_at, frame_at = snapshot_epochs(args.n_epochs, args.n_plot), frame_epochs(args.n_epochs)
    ckpt_path, x_hat = exp_dir / 'checkpoint.pt', None
    bar = tqdm(desc=chain.mode, unit='ep', disable=None, initial=state['epoch'], total=args.n_epochs,
               dynamic_ncols=True, position=Worker.position)
    while state['epoch'] < args.n_epochs:
        take_freed_cores()
        trace = []
        loss, x_hat = train_epoch(state, x, chain, args, trace)
        state['epoch'] += 1
        epoch, psnr_db = state['epoch'], psnr(x_hat, x, state['mask']).mean().item()   # observed pixels
        state['seconds'] = seconds_before + time.perf_counter() - t_begin
        n_events = len(state['health']['events'])
        guard_epoch(state, loss, psnr_db, trace[0]['energy'] if trace else None, chain, args, logger)
        if len(state['health']['events']) > n_events:           # rewound to the last good state
            bar.n = state['epoch']
            continue
        bar.update(1)
        if epoch in (1, args.n_epochs):
            state['traces'][epoch] = trace                      # Langevin diagnostics, early and late
        if epoch in frame_at:
            state['frames'][epoch] = gif_frame(x_hat)           # for training_<mode>.gif
        log_progress(state, x_hat, loss, psnr_db, chain.mode, args, exp_dir, logger, bar)
        if epoch in snap_at:
            save_snapshot(state, x_hat, args, exp_dir)
            save_state(state, args, chain, ckpt_path)
        if StopFlag.requested:
            save_state(state, args, chain, ckpt_path)
            raise Interrupted(f"stopped at epoch {epoch} of {chain.mode}; checkpoint in {ckpt_path}; "
                              f"continue with --resume")
    bar.close()
    return x_hat


def keep_best_checkpoint(state, args, chain, path):
    """After a run gave up: the kept good state becomes the checkpoint if it is newer than the one on disk."""
    if state['health']['good']['epoch'] > state['saved_epoch']:
        restore_good_state(state)
        save_state(state, args, chain, path)


def load_data(args, logger=None):
    """The training images of args.img_dir at args.img_size, on the device as training holds them
    (channels-last), and their file names."""
    list_images(args.img_dir)           # a missing folder fails in one line before torchvision is even imported
    x, names = load_images(args.img_dir, default_transform(args.img_size), logger)
    return x.to(device).contiguous(memory_format=torch.channels_last), names


def run(args, exp_dir, logger, chain=None, data=None):
    """Train one start mode (chain, by default chain_for(args, args.start)), write its figures into exp_dir;
    data is (x, names) from load_data, loaded here if not given. Returns {'metrics', 'model', 'z', 'x', 'names',
    'snapshots', 'loss', 'z_eval', 'traces', 'events', 'frames', 'mask', 'x_hat'}. With --occlude, training
    sees only the observed pixels of x (the masked energy of eq. 3)."""
    args = with_defaults(args)
    chain = chain or chain_for(args, args.start)
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)

    # data
    x, names = data or load_data(args, logger)
    logger.info(f"{chain.mode} start: {len(x)} images from {args.img_dir} ({', '.join(names)}), device {device}"
                + ('' if args.occlude == 'none' else f", occluded: {args.occlude}"))

    # model, optimiser, latents (and masks, with --occlude): new, or where an interrupted run stopped
    state = new_state(args, len(x), chain)
    if state['mask'] is not None:                       # what training sees: hidden pixels black
        save_images(blacken_hidden(x, state['mask']), exp_dir / 'occluded_input.png', nrow=recon_nrow(len(x)))
    ckpt_path = exp_dir / 'checkpoint.pt'
    if args.resume and ckpt_path.exists():
        load_state(state, ckpt_path, args, chain)
        logger.info(f"resumed from {ckpt_path} at epoch {state['epoch']}")

    # alternating back-propagation, epoch by epoch
    try:
        x_hat = train(state, x, chain, args, exp_dir, logger)
    except Diverged:
        keep_best_checkpoint(state, args, chain, ckpt_path)
        raise

    # evaluation of the final state
    model, z = state['model'], state['z']
    if x_hat is None:   # resumed from a finished run: recompute the last reconstruction
        x_hat = generate(model.Gnet, z)
    seconds = state['seconds']
    events = list(state['health']['events'])
    metrics = evaluate(model, x, x_hat, z, state['z_eval'])
    if state['mask'] is not None:       # the true images' hidden pixels are used here, for evaluation only
        metrics['occlusion'] = occlusion_metrics(args.occlude, x_hat, x, state['mask'])
    metrics.update(epochs=args.n_epochs, seconds=round(seconds, 2),
                   seconds_per_epoch=round(seconds / args.n_epochs, 4),
                   interp_d=[round(v, 4) for v in interp_half_width(z).tolist()],
                   langevin_steps=chain.steps, langevin_step_size=chain.step_size, beta1=chain.beta1,
                   langevin_step_mean=round(float(torch.as_tensor(langevin_step(chain, state, args)).mean()), 5),
                   first_layer_norm=round(model.Gnet.fc.weight.norm().item(), 3),    # grows if chains overshoot
                   cold_init=chain.init if chain.mode == 'cold' else None, guard_events=events, images=names)
    write_json(metrics, exp_dir / 'metrics.json')
    write_json({str(k): v for k, v in state['traces'].items()}, exp_dir / 'langevin_trace.json')
    logger.info(f"{chain.mode} done in {seconds:.1f} s: recon {metrics['recon_psnr_db']:.2f} dB, samples NN "
                f"{metrics['sample_nn_psnr_db_median']:.2f} dB, coverage {metrics['sample_coverage']}/{len(x)}"
                + (f", {len(events)} guard recoveries" if events else ''))
    return {'metrics': metrics, 'model': model, 'z': z, 'x': x, 'names': names, 'snapshots': state['snapshots'],
            'loss': (state['stat_epochs'], state['stats']['loss']), 'z_eval': state['z_eval'],
            'traces': state['traces'], 'events': events, 'frames': state['frames'], 'mask': state['mask'],
            'x_hat': x_hat}


# -----------------------------------------------------------------------------
# comparison of warm and cold

def summary(results):
    """The metrics of output/metrics.json: each mode's, PCA's (the linear two-factor model), n_images."""
    x = next(iter(results.values()))['x'].cpu()
    pca_psnr = psnr(pca_recon(x, k=2), x).mean().item()
    return {**{m: r['metrics'] for m, r in results.items()}, 'pca': {'recon_psnr_db': round(pca_psnr, 3)},
            'n_images': x.shape[0]}


def figure_recon(results, args, path):
    """Training images, PCA and each mode's reconstructions at the middle and final epochs (12 images at most)."""
    x = next(iter(results.values()))['x'].cpu()
    keep = shown_images(x.shape[0])
    rows = [('training', x[keep]), ('PCA, k=2', pca_recon(x, k=2)[keep])]
    for m, r in results.items():
        rows += [(f'{m} @ {e}', r['snapshots'][e][keep]) for e in (max(1, args.n_epochs // 2), args.n_epochs)
                 if e in r['snapshots']]
    title = f'{len(keep)} of {x.shape[0]} images' if len(keep) < x.shape[0] else ''
    plot_recon_comparison(rows, path, title)


def figure_samples(results, args, path):
    panels = [(f'{m} start: g(z), z ~ N(0, I)', grid_image(generate(r['model'].Gnet, r['z_eval'][:N_FIG_SAMPLES]), 6))
              for m, r in results.items()]
    plot_side_by_side(panels, path, 'random samples from the prior')


def figure_interp(results, args, out_dir):
    """interp_<mode>.jpg: each mode's args.ninterp^2 panel over (-d, d)^2, its z values on the axes."""
    for m, r in results.items():
        d = interp_half_width(r['z'])
        z_grid = interp_grid(args.nz, args.ninterp, d, device)
        plot_interp_panel(generate(r['model'].Gnet, z_grid), d, args.ninterp, out_dir / f'interp_{m}.jpg',
                          f'{m} start: g(z) over (-d, d)^2, d = ({", ".join(f"{v:.2f}" for v in d.tolist())})')


def figure_loss(results, args, path):
    plot_losses({m: r['loss'] for m, r in results.items()}, path, {m: r['events'] for m, r in results.items()})


def figure_latent_maps(results, args, out_dir):
    for m, r in results.items():
        plot_latent_map(r['z'], r['x'], r['names'], interp_half_width(r['z']), out_dir / f'latent_map_{m}.png',
                        f'{m} start: inferred z of the training images')


def figure_langevin(results, args, path):
    plot_langevin_traces({f'{m}, epoch {e}': tr for m, r in results.items() for e, tr in sorted(r['traces'].items())},
                         path)


def figure_occlusion(results, args, path):
    """True images, the occluded input, each mode's recovery g(z) and the PCA baseline's (12 images at most)."""
    r0 = next(iter(results.values()))
    x, mask = r0['x'].cpu(), r0['mask'].cpu()
    keep = shown_images(x.shape[0])
    x_obs = torch.where(mask > 0, x, torch.zeros(()))
    rows = [('true', x[keep]), (f'input: {args.occlude}', blacken_hidden(x, mask)[keep])]
    rows += [(f'{m} recovery', r['x_hat'].cpu()[keep]) for m, r in results.items()]
    rows.append(('PCA recovery', pca_fill(x_obs, mask)[keep]))
    plot_recon_comparison(rows, path, 'learning from incomplete images: hidden pixels black in the input')


def figure_gifs(results, args, out_dir):
    for m, r in results.items():
        save_training_gif(r['frames'], out_dir / f'training_{m}.gif', f'{m} start')
        save_latent_walk(r['model'].Gnet, r['z'][shown_images(len(r['z']), 24)], interp_half_width(r['z']),
                         out_dir / f'latent_walk_{m}.gif')


def compare(results, args, out_dir):
    """Figures that put the modes side by side. A figure that fails is reported in one line and
    skipped: the modes' own results, already written, are never lost to it. Returns summary(results)."""
    for name, draw, target in (('compare_recon.jpg', figure_recon, out_dir / 'compare_recon.jpg'),
                               ('compare_samples.jpg', figure_samples, out_dir / 'compare_samples.jpg'),
                               ('interp_*.jpg', figure_interp, out_dir),
                               ('compare_loss.png', figure_loss, out_dir / 'compare_loss.png'),
                               ('latent_map_*.png', figure_latent_maps, out_dir),
                               ('langevin_diagnostics.png', figure_langevin, out_dir / 'langevin_diagnostics.png'),
                               ('training_*.gif, latent_walk_*.gif', figure_gifs, out_dir),
                               *([('occlusion.jpg', figure_occlusion, out_dir / 'occlusion.jpg')]
                                 if args.occlude != 'none' else [])):
        try:
            draw(results, args, target)
        except Exception as e:       # a figure is never worth the run: say so and go on
            print(f"warning: could not draw {name} ({type(e).__name__}: {e})", file=sys.stderr)
    return summary(results)


# -----------------------------------------------------------------------------
# main

def start_modes(start):
    """The start modes that --start trains: ['warm', 'cold'] for 'both'."""
    return ['warm', 'cold'] if start == 'both' else [start]


def figures_dir(out_dir, start):
    """Where a run's comparison figures, latent maps and GIFs go: OUT_DIR for --start both; a one-mode run
    keeps them in its own OUT_DIR/<mode>/, so it never overwrites, or leaves stale beside new ones, what a
    run of both modes put in OUT_DIR."""
    return Path(out_dir) if start == 'both' else Path(out_dir) / start


def summary_path(out_dir, start):
    """The run's summary (every mode's metrics, PCA, n_images, time, flags): OUT_DIR/metrics.json for
    --start both, OUT_DIR/<mode>/summary.json for one mode (beside that mode's own metrics.json)."""
    return figures_dir(out_dir, start) / ('metrics.json' if start == 'both' else 'summary.json')


def launched_as_script():
    """Is this file the program being run (`python abp.py`), rather than a module imported by another?"""
    main_file = getattr(sys.modules.get('__main__'), '__file__', None)
    return main_file is not None and Path(main_file).resolve() == Path(__file__).resolve()


def use_parallel(args, n_modes):
    """Train the modes as parallel processes? --parallel if given; unset: with two modes, no GPU, >= 2 threads,
    and only when run as `python abp.py`: a spawned process re-imports the program's main script, so a
    caller's script without an `if __name__ == '__main__'` guard (an autograder's, say) must not be spawned."""
    if n_modes < 2:
        return False
    if args.parallel is not None:
        return args.parallel
    return device == 'cpu' and torch.get_num_threads() >= 2 and launched_as_script()


def run_worker(args, chain, data, threads, finished, conn):
    """One mode of a --parallel run, in its own process: run(...) with `threads` torch threads (all of them,
    threads[1], once the other mode has set `finished`), Ctrl-C and SIGTERM stopping at the next epoch as in
    main. Sends ('ok', run's result with the model as its state_dict) or (the exception's class name, its
    message) through conn, then sets `finished`."""
    torch.set_num_threads(threads[0])
    Worker.position, Worker.finished, Worker.threads_after = int(chain.mode == 'cold'), finished, threads[1]
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, request_stop)
    exp_dir = Path(args.out_dir) / chain.mode
    try:
        result = run(args, exp_dir, get_logger(exp_dir), chain, data)
        # the generator as its weights: classes pickled here would be this process's module's, not the parent's
        result['model'] = result['model'].state_dict()
        buf = io.BytesIO()      # bytes, not torch's shared-memory handles, which die with this process
        torch.save(result, buf)
        conn.send(('ok', buf.getvalue()))
    except (UserError, Diverged, Interrupted) as e:
        conn.send((type(e).__name__, str(e)))
    except Exception:           # a bug: its traceback, as text, for the parent to show
        conn.send(('RuntimeError', f"the {chain.mode} process failed:\n{traceback.format_exc()}"))
    finally:
        finished.set()


def run_parallel(args, chains, data):
    """{mode: run(...)} for every chain, each in its own process (spawned: a clean torch, no forked thread
    pool), at the same time. Each takes half the threads; the one still running takes all once the other is
    done. A stop request (Ctrl-C reaches every process; SIGTERM to this one is passed on) checkpoints both.
    Raises the first mode's error, after both have ended."""
    errors = {'UserError': UserError, 'Diverged': Diverged, 'Interrupted': Interrupted, 'RuntimeError': RuntimeError}
    ctx = multiprocessing.get_context('spawn')
    total = args.threads or torch.get_num_threads()
    finished = ctx.Event()                         # set by the first mode to finish: the other takes its threads
    procs, conns = [], []
    for chain in chains:
        recv, send = ctx.Pipe(duplex=False)
        procs.append(ctx.Process(target=run_worker, name=f'abp-{chain.mode}', daemon=True,
                                 args=(args, chain, data, (max(1, total // len(chains)), total), finished, send)))
        procs[-1].start()
        send.close()
        conns.append(recv)
    replies, told = {}, False
    while len(replies) < len(chains):
        if StopFlag.requested and not told:         # SIGTERM to this process only: pass it on
            for proc in procs:
                if proc.is_alive():
                    os.kill(proc.pid, signal.SIGTERM)
            told = True
        for conn in multiprocessing.connection.wait([c for c in conns if c not in replies], timeout=0.5):
            try:
                replies[conn] = conn.recv()
            except EOFError:       # the process died without a word (killed, out of memory)
                mode = chains[conns.index(conn)].mode
                replies[conn] = ('UserError', f"the {mode} process ended unexpectedly; "
                                              f"continue with --resume, or run with --no-parallel")
    for proc in procs:
        proc.join()
    failed = [replies[c] for c in conns if replies[c][0] in errors]
    if failed:          # the first mode's kind of error, with every mode's message of that kind
        raise errors[failed[0][0]]('; '.join(msg for kind, msg in failed if kind == failed[0][0]))
    results = {chain.mode: torch.load(io.BytesIO(replies[conn][1]), map_location=device, weights_only=False)
               for chain, conn in zip(chains, conns)}
    for chain in chains:
        model = Model(args, chain).to(device)
        model.load_state_dict(results[chain.mode]['model'])
        results[chain.mode]['model'] = model
    return results


def train_modes(args, chains, data, parallel):
    """{mode: run(...)} for every chain: one after the other, or, if parallel, at once (run_parallel)."""
    if parallel:
        return run_parallel(args, chains, data)
    out_dir = Path(args.out_dir)
    return {chain.mode: run(args, out_dir / chain.mode, get_logger(out_dir / chain.mode), chain, data)
            for chain in chains}


def main(argv=None):
    """Parse flags, train the requested start mode(s), write figures and metrics; returns None."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    set_cuda()
    out_dir = Path(args.out_dir)
    chains = [chain_for(args, mode) for mode in start_modes(args.start)]   # each mode's settings, resolved once
    parallel = use_parallel(args, len(chains))
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    t0 = time.perf_counter()
    try:
        data = load_data(args)                           # once for every mode; a bad folder fails here
        out_dir.mkdir(parents=True, exist_ok=True)
        for s in old:
            signal.signal(s, request_stop)
        results = train_modes(args, chains, data, parallel)
        metrics = compare(results, args, figures_dir(out_dir, args.start))
        metrics.update(total_seconds=round(time.perf_counter() - t0, 2), device=device,
                       parallel=parallel,
                       torch=torch.__version__, args=vars(args))
        write_json(metrics, summary_path(out_dir, args.start))
        both_run = args.start != 'both' and summary_path(out_dir, 'both').exists()   # an earlier --start both's
        print(f"done in {time.perf_counter() - t0:.0f} s; figures and metrics in {figures_dir(out_dir, args.start)}/"
              + (f" ({out_dir}/metrics.json and the comparison figures in {out_dir}/ come from --start both and "
                 "are left as they were)" if both_run else ''))
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
