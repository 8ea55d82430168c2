"""Checkpoints: the registry of published weights, resolving and downloading them, and loading
or saving any checkpoint safely (``torch.load(..., weights_only=True)`` only).

A name resolves to, in order: the file in ``$FACEDET_WEIGHTS_DIR`` (if set); the user cache
(``$FACEDET_CACHE_DIR``, default ``~/.cache/facedet``); a download from the authors' URL, checked
against its sha256 and written atomically into the cache. A path loads that file. The peer detectors' files (YuNet's ONNX, ``PEERS``; run by
``facedet.peers``) resolve the same way.
"""

import hashlib
import json
import os
import pickle
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from facedet.atomic import atomic_file, is_no_space, write_failure
from facedet.errors import WeightsError
from facedet.numerics import first_non_finite
from facedet.paths import cache_dir

_REGISTRY_FILE = Path(__file__).with_name("pretrained.json")
CHECKPOINT_FORMAT = "facedet"
SCATTER_BUFFERS = (".fill", ".order")  # see facedet.models.scatter


@dataclass(frozen=True)
class Pretrained:
    name: str
    arch: str
    criterion: str | None
    rate: float  # the model's overall pruning rate (B-FPGM: its target sparsity)
    url: str
    sha256: str
    bytes: int
    family: str = "paper"  # whose release: "paper" (the 2024 authors) or "bfpgm"
    group_rates: tuple | None = None  # B-FPGM: its per-group rates (groups 1..6), from the upstream README
    nonzero_parameters: int | None = None  # as published, where the release states it
    file: str | None = None  # the file's name when it is not ``<name>.pth`` (a peer's ONNX file)

    @property
    def filename(self):
        return self.file or f"{self.name}.pth"

    @property
    def license(self):
        return {**FAMILIES, **PEER_FAMILIES}[self.family]["license"]


def _entry(c):
    rates = c.get("group_rates")
    return Pretrained(c["name"], c["detector"], c["criterion"], c["pruning_rate"], c["url"], c["sha256"], c["bytes"],
                      c["family"], tuple(rates) if rates else None, c.get("nonzero_parameters"))


_REGISTRY = json.loads(_REGISTRY_FILE.read_text())
FAMILIES = _REGISTRY["families"]  # family -> title, license, source
# One dict per family: PRETRAINED stays the paper's 22 (the app's pages and the upstream-agreement
# fixtures are about those); every name of every family resolves and downloads alike.
_BY_FAMILY = {family: {c["name"]: _entry(c) for c in _REGISTRY["checkpoints"] if c["family"] == family} for family in FAMILIES}
PRETRAINED = _BY_FAMILY["paper"]
BFPGM = _BY_FAMILY["bfpgm"]
# Peer detectors: published files of other detectors (no PyTorch checkpoint; facedet.peers runs them).
PEER_FAMILIES = _REGISTRY["peer_families"]  # family -> title, license, source, runtime
PEERS = {c["name"]: Pretrained(c["name"], c["detector"], None, 0.0, c["url"], c["sha256"], c["bytes"], c["family"],
                               nonzero_parameters=c["parameters_published"], file=c["file"])
         for c in _REGISTRY["peers"]}


def published(family=None):
    """The published checkpoints of one family (``"paper"``, ``"bfpgm"``), or of all of them."""
    if family is not None:
        return _BY_FAMILY[family]
    return {name: entry for registry in _BY_FAMILY.values() for name, entry in registry.items()}


def pretrained_name(arch, criterion=None, rate=0.0):
    """Registry name of a published model: ``extd``, ``eresfd-fpgm-30`` ..."""
    if not criterion or not rate:
        return arch
    return f"{arch}-{criterion}-{round(rate * 100)}"


def bfpgm_name(arch, rate=0.0):
    """Registry name of B-FPGM's checkpoint of ``arch`` at target sparsity ``rate``: ``bfpgm-eresfd-30``
    (``bfpgm-eresfd``: its retrained dense model)."""
    return f"bfpgm-{arch}-{round(rate * 100)}" if rate else f"bfpgm-{arch}"


def bfpgm_rates(arch):
    """The target sparsities (percent, 0 = dense) B-FPGM released for ``arch``, ascending."""
    return sorted(round(e.rate * 100) for e in BFPGM.values() if e.arch == arch)


def weights_dir():
    value = os.environ.get("FACEDET_WEIGHTS_DIR")
    return Path(value).expanduser() if value else None


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _resolvable():
    """Every registry name a file resolves for: the published checkpoints and the peers' files."""
    return {**published(), **PEERS}


def local_copy(name):
    """The path of a published checkpoint (or peer's file) already on this machine, or None."""
    entry = _resolvable()[name]
    for folder in (weights_dir(), cache_dir()):
        if folder is not None and (folder / entry.filename).is_file():
            return folder / entry.filename
    return None


def resolve(name_or_path, download=True, progress=True):
    """The local file for a registry name or a path (downloading a published model if needed)."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        if path.is_dir():
            raise WeightsError(f"{text} is a directory, not a checkpoint file")
        if not path.is_file():  # a device never ends, a FIFO waits for a writer forever
            raise WeightsError(f"{text} is not a regular file (a device, FIFO or socket), not a checkpoint")
        return path
    known = _resolvable()
    if text not in known:
        if os.sep in text or path.suffix in (".pth", ".pt", ".ckpt", ".onnx"):
            raise WeightsError(f"no such checkpoint file: {text}")
        raise WeightsError(f"unknown weights {text!r}: give a file path or one of {', '.join(known)}")
    entry = known[text]
    found = local_copy(text)
    if found is not None:
        if sha256_of(found) != entry.sha256:
            raise WeightsError(f"{found} does not match the published sha256 of {text}: delete it or replace it with the original file")
        return found
    if not download:
        raise WeightsError(f"{text} is not on this machine (looked in $FACEDET_WEIGHTS_DIR and {cache_dir()})")
    return fetch(entry, cache_dir(), progress=progress)


def fetch(entry, folder, progress=True):
    """Download ``entry`` into ``folder``, verify its sha256, move it into place atomically."""
    from tqdm import tqdm

    folder = Path(folder)
    target = folder / entry.filename
    try:
        folder.mkdir(parents=True, exist_ok=True)
        response = urllib.request.urlopen(entry.url, timeout=30)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise WeightsError(
            f"cannot download {entry.name} from {entry.url} ({reason}); put {entry.filename} in a folder "
            f"named by $FACEDET_WEIGHTS_DIR, or in {folder}"
        ) from None
    digest = hashlib.sha256()
    try:
        with response, atomic_file(target) as out:
            total = int(response.headers.get("Content-Length") or entry.bytes)
            with tqdm(total=total, unit="B", unit_scale=True, desc=entry.filename, disable=not progress) as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            if digest.hexdigest() != entry.sha256:  # raised inside: the file is not kept
                raise WeightsError(f"download of {entry.name} from {entry.url} is corrupt (sha256 mismatch); try again")
    except OSError as err:
        if is_no_space(err):
            raise WeightsError(write_failure(target, err)) from None
        raise WeightsError(f"cannot save {entry.filename} into {folder}: {err.strerror or err}") from None
    return target


@dataclass
class Checkpoint:
    arch: str
    state_dict: dict
    path: Path | None = None
    sha256: str | None = None
    compact: bool = False
    meta: dict = field(default_factory=dict)


@lru_cache(maxsize=None)
def _expected_keys(arch):
    from facedet.models import create_model

    return frozenset(create_model(arch).state_dict())


def identify(state_dict):
    """(best matching architecture, share of keys in common) for a state dict."""
    from facedet.models import ARCHITECTURES

    keys = set(state_dict)
    scores = {a: len(keys & _expected_keys(a)) / len(keys | _expected_keys(a)) for a in ARCHITECTURES}
    arch = max(scores, key=scores.get)
    return arch, scores[arch]


def _describe_key_mismatch(state_dict, arch):
    keys, expected = set(state_dict), _expected_keys(arch)
    missing, unexpected = sorted(expected - keys), sorted(keys - expected)
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    return "; ".join(parts)


def _unwrap(obj):
    """The state dict inside the common wrappers (ours, {'state_dict': ...}, {'weight': ...})."""
    meta, compact, arch = {}, False, None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        arch, compact = obj.get("detector"), bool(obj.get("compact"))
        meta = {k: v for k, v in obj.items() if k != "state_dict"}
        obj = obj.get("state_dict")
    elif isinstance(obj, dict):
        for key in ("state_dict", "weight", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    return obj, arch, compact, meta


def _display(arch):
    from facedet.models import DETECTORS

    return DETECTORS[arch].display_name if arch in DETECTORS else str(arch)


def load_checkpoint(name_or_path, arch=None):
    import torch

    path = resolve(name_or_path)
    label = str(name_or_path)
    if path.stat().st_size == 0:
        raise WeightsError(f"{label} is empty")
    with open(path, "rb") as f:
        magic = f.read(4)
    # torch.save writes a zip archive; very old versions wrote a raw pickle (protocol byte 0x80).
    if magic != b"PK\x03\x04" and magic[:1] != b"\x80":
        raise WeightsError(f"{label} is not a PyTorch checkpoint file")
    try:
        with warnings.catch_warnings():
            # torch warns about odd pickle protocols of garbage files: the error below says it in one line.
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # weights_only refuses anything but tensors and plain containers: never execute a file's code.
        raise WeightsError(f"{label} was refused: it holds Python objects other than tensors, which are unsafe to load") from None
    except Exception as err:  # zip/EOF errors of truncated or corrupt files
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise WeightsError(f"{label} is a corrupt or truncated checkpoint ({reason[:100]})") from None
    state_dict, saved_arch, compact, meta = _unwrap(obj)
    if not isinstance(state_dict, dict) or not state_dict or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise WeightsError(f"{label} holds no state dict of tensors; it is not a detector checkpoint")
    _check_saved_arch(saved_arch, label)
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    state_dict = drop_alias_keys(state_dict, label)
    bad = first_non_finite(state_dict)
    if bad is not None:
        raise WeightsError(f"{label} holds NaN or infinite values (first in {bad}); it cannot be used")
    # A compact model's ScatterBatchNorm layers carry two extra buffers; the rest is the architecture's.
    core = {k: v for k, v in state_dict.items() if not (compact and k.endswith(SCATTER_BUFFERS))}
    guessed, overlap = identify(core)
    detected = saved_arch or guessed
    if overlap < 0.5 and saved_arch is None:
        raise WeightsError(f"{label} is not an EXTD or EResFD checkpoint ({_describe_key_mismatch(core, guessed)} keys)")
    if arch is not None and arch != detected:
        raise WeightsError(f"{label} looks like an {_display(detected)} checkpoint, not {_display(arch)}")
    if overlap < 1.0:
        raise WeightsError(f"{label} does not fit {_display(detected)}: {_describe_key_mismatch(core, detected)} keys")
    return Checkpoint(detected, state_dict, path, sha256_of(path), compact, meta)


def _canonical_key(key, aliases):
    for alias, canonical in aliases:
        if key.startswith(alias):
            return canonical + key[len(alias):]
    return None


def drop_alias_keys(state_dict, label="checkpoint"):
    """``state_dict`` without the keys that name a tensor a second time (a detector's
    ``key_aliases``); each is dropped only if it equals its canonical tensor, else the file is refused
    (which of the two would the model use?). A key whose canonical one is absent is kept: the key
    check then reports it."""
    import torch

    from facedet.models import DETECTORS

    aliases = tuple(pair for spec in DETECTORS.values() for pair in spec.key_aliases)
    kept = {}
    for key, tensor in state_dict.items():
        canonical = _canonical_key(key, aliases)
        if canonical is None or canonical not in state_dict:
            kept[key] = tensor
            continue
        twin = state_dict[canonical]
        if twin.shape != tensor.shape or twin.dtype != tensor.dtype or not torch.equal(twin, tensor):
            raise WeightsError(f"{label} stores {key} as a second copy of {canonical}, but with different values; "
                               f"refused (it is unclear which one the model should use)")
    return kept


def _check_saved_arch(saved_arch, label):
    """A facedet-format file names its detector: refuse one this version does not know."""
    from facedet.models import ARCHITECTURES

    if saved_arch is not None and saved_arch not in ARCHITECTURES:
        shown = repr(saved_arch) if isinstance(saved_arch, str) else type(saved_arch).__name__
        raise WeightsError(f"{label} is saved for an unknown detector {shown[:60]}; known: {', '.join(ARCHITECTURES)}")


def load_model(name_or_path, arch=None, device="cpu"):
    """``(model in eval mode on device, Checkpoint)`` for a registry name or a checkpoint path."""
    from facedet.models import create_model, resize_to_state_dict

    ckpt = load_checkpoint(name_or_path, arch)
    model = create_model(ckpt.arch)
    if ckpt.compact:
        resize_to_state_dict(model, ckpt.state_dict)
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as err:
        detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err).splitlines()[0])
        raise WeightsError(f"{name_or_path} does not fit {ckpt.arch}: {detail[:200]}") from None
    return model.to(device).eval(), ckpt


def save_checkpoint(path, model, arch, provenance=None, compact=False):
    """Save a self-describing checkpoint atomically (a crash or full disk never leaves half a file)."""
    import torch

    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "detector": arch,
        "compact": bool(compact),
        "channels": {n: int(m.out_channels) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)},
        "provenance": dict(provenance or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_torch_file(path, payload)
    except OSError as err:
        raise WeightsError(write_failure(path, err)) from None
    return path



def save_torch_file(path, obj):
    """``torch.save(obj)`` into ``path`` atomically; OSError if it cannot be written.

    Serialised in memory first: torch turns an error of the file's own writes (a full disk) into
    an unreadable RuntimeError, while a plain write of the bytes keeps the OSError and its errno.
    """
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_file(path) as f:
        f.write(buffer.getbuffer())
